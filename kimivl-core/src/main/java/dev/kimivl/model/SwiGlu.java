package dev.kimivl.model;

import dev.kimivl.tensor.Kernels;
import dev.kimivl.tensor.QuantizedInput;
import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.QuantMatrix;
import dev.kimivl.tensor.VectorMath;

/** FFN(x) = W_down·(SiLU(W_gate·x) ⊙ W_up·x): the dense layer, each routed expert and the fused shared experts. */
public final class SwiGlu {
    final Matrix gate, up, down;   // [I, D], [I, D], [D, I]
    final RowBlocks gateBlocks, upBlocks, downBlocks;

    SwiGlu(Matrix gate, Matrix up, Matrix down) {
        this.gate = gate;
        this.up = up;
        this.down = down;
        this.gateBlocks = new RowBlocks(gate);
        this.upBlocks = new RowBlocks(up);
        this.downBlocks = new RowBlocks(down);
    }

    /** The same weights with their quantized products on other kernels. */
    SwiGlu withKernels(Kernels k) { return new SwiGlu(k.bind(gate), k.bind(up), k.bind(down)); }

    int inter() { return gate.rows(); }

    long bytes() { return gate.bytes() + up.bytes() + down.bytes(); }

    void forEachRowProduct(java.util.function.Consumer<Matrix> f) { f.accept(gate); f.accept(up); f.accept(down); }

    /** x [n, D] → y [n, D]. */
    float[] forward(float[] x, int n) {
        if (n == 1) return forwardOne(x);
        int inter = gate.rows();
        float[] g = new float[n * inter], u = new float[n * inter];
        if (gate instanceof QuantMatrix qg && up instanceof QuantMatrix qu && qg.usesIntegerMatmul() && qu.usesIntegerMatmul()) {
            QuantizedInput xq = QuantizedInput.ofRows(x, n, gate.cols());   // once for both
            qg.matmul(xq, g);
            qu.matmul(xq, u);
        } else {
            gate.matmul(x, g, n);
            up.matmul(x, u, n);
        }
        VectorMath.siluMul(g, u, g.length);
        float[] y = new float[n * down.rows()];
        down.matmul(g, y, n);
        return y;
    }

    /**
     * x [n, D] → y [n, D] with {@link RowProducts}: each row's result is the same whatever the other rows are (a
     * batched decode step's routed experts and shared expert).
     */
    float[] forwardRows(float[] x, int n) {
        int inter = gate.rows();
        float[] g = new float[n * inter], u = new float[n * inter];
        RowProducts.matmul(gate, x, g, n);
        RowProducts.matmul(up, x, u, n);
        VectorMath.siluMul(g, u, g.length);
        float[] y = new float[n * down.rows()];
        RowProducts.matmul(down, g, y, n);
        return y;
    }

    /** One token: gate and up in one dispatch, then down. */
    private float[] forwardOne(float[] x) {
        return forwardOne(x, gateBlocks.quantized(x, 0));
    }

    /**
     * One token with its input already quantized the way gate's integer matvec does (xq, or null: floats); from inside
     * a pool task (MoeBlock's experts, one per thread) the dispatches run on the calling thread.
     */
    float[] forwardOne(float[] x, QuantizedInput xq) {
        int inter = gate.rows();
        float[] g = new float[inter], u = new float[inter];
        int ng = gateBlocks.count();
        RowBlocks.run(ng + upBlocks.count(), i -> {
            if (i < ng) gateBlocks.block(i, xq, x, 0, g, 0);
            else upBlocks.block(i - ng, xq, x, 0, u, 0);
        });
        VectorMath.siluMul(g, u, inter);
        float[] y = new float[down.rows()];
        down.matvec(g, 0, y, 0);
        return y;
    }
}
