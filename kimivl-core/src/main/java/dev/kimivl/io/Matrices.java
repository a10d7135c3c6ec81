package dev.kimivl.io;

import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.QuantMatrix;
import dev.kimivl.tensor.SegmentMatrix;

/** Builds the {@link Matrix} kernel that fits a stored tensor's dtype. */
public final class Matrices {
    private Matrices() {}

    public static Matrix of(TensorData t) {
        if (t.shape().length != 2) throw new CheckpointException(t.origin() + ": tensor '" + t.name() + "' is not 2-D: " + t.shapeString());
        long r = t.shape()[0], c = t.shape()[1];
        if (r < 0 || c < 0 || r > Integer.MAX_VALUE || c > Integer.MAX_VALUE || (c > 0 && r > Long.MAX_VALUE / 8 / c)) {
            throw new CheckpointException(t.origin() + ": tensor '" + t.name() + "' " + t.shapeString() + " is not a matrix kimivl can index");
        }
        // An empty dimension holds no weights, yet rows x 0 would cost the kernels a pass over up to 2^31 rows (and
        // the caller an output of that many floats) without one byte read: a header could declare [2^24, 0] for free
        // (NativeBoundaryFuzzTest's regress-empty-rows timed out on it). No layer of a model has one; refused here.
        if (r == 0 || c == 0) {
            throw new CheckpointException(t.origin() + ": tensor '" + t.name() + "' " + t.shapeString() + " " + t.dtype()
                    + " has an empty dimension: not a weight matrix");
        }
        int rows = (int) r, cols = (int) c;
        return switch (t.dtype()) {
            case F32, BF16, F16 -> {
                // checked here, naming the tensor: SegmentMatrix's own check does not know the name
                long need = t.dtype().bytesFor((long) rows * cols);
                if (t.data().byteSize() < need) {
                    throw new CheckpointException(t.origin() + ": tensor '" + t.name() + "' " + t.shapeString() + " " + t.dtype()
                            + " needs " + need + " bytes, has " + t.data().byteSize());
                }
                yield new SegmentMatrix(t.data(), t.dtype(), rows, cols);
            }
            case Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, Q2_K, Q3_K, IQ4_NL, IQ4_XS -> {
                if (cols % t.dtype().blockSize != 0) {
                    throw new CheckpointException(t.origin() + ": tensor '" + t.name() + "' " + t.shapeString() + " " + t.dtype()
                            + ": rows of " + cols + " are not a whole number of " + t.dtype().blockSize + "-element blocks");
                }
                long need = t.dtype().bytesFor((long) rows * cols);
                if (t.data().byteSize() < need) {
                    throw new CheckpointException(t.origin() + ": tensor '" + t.name() + "' " + t.shapeString() + " " + t.dtype()
                            + " needs " + need + " bytes, has " + t.data().byteSize());
                }
                QuantMatrix q = new QuantMatrix(t.data(), t.dtype(), rows, cols);
                // -Dkimivl.repackQ4K: the rows regrouped 4 at a time for the AVX-512 decode matvec, kept on disk for the
                // next load (RepackCache); the file's pages of this tensor then leave the resident set
                if (QuantMatrix.repackedAtLoad(t.dtype(), t.shape())) yield RepackCache.repacked(q, t.data());
                yield q;
            }
            default -> throw new CheckpointException(t.origin() + ": tensor '" + t.name() + "': no matrix kernel for dtype " + t.dtype());
        };
    }
}
