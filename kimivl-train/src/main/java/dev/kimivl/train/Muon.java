package dev.kimivl.train;

/**
 * Muon for one weight matrix, in the variant Moonlight was trained with (Kimi-VL's language model; "Muon is Scalable
 * for LLM Training"): Nesterov momentum, the update orthogonalised by a quintic Newton–Schulz iteration, decoupled
 * weight decay, and the update scaled by 0.2·sqrt(max(rows, cols)) so that its RMS matches AdamW's (which is what
 * lets one learning rate serve both optimizers). Per step, in float32:
 * <pre>
 * buf = μ·buf + g;  G = g + μ·buf (Nesterov) or buf
 * X = G (transposed when rows &gt; cols);  X = X / (‖X‖_F + eps)
 * 5×:  A = X·Xᵀ;  B = b·A + c·A·A;  X = a·X + B·X          (a, b, c) = (3.4445, −4.7750, 2.0315)
 * U = X (transposed back);  p = p·(1 − lr·wd) − lr·0.2·sqrt(max(rows, cols))·U
 * </pre>
 * Moonlight's code iterates in bfloat16; this runs float32 products on the packed GEMM (the goldens in
 * golden/train/muon are float32: their float32 vs float64 spread is ≤ 8.3e-7 on U, ≤ 1.3e-7 on the parameters).
 * Embeddings, norms and other vectors take {@link AdamW}, as in Moonlight.
 */
public final class Muon {
    private final int rows, cols;
    private final float lr, momentum, weightDecay, eps;
    private final boolean nesterov;
    private final int nsSteps;
    private final float a, b, c;
    private final float[] buf;                 // [rows·cols] momentum buffer
    private float[] lastInput, lastUpdate;

    /** Moonlight's settings: momentum 0.95 (Nesterov), 5 Newton–Schulz steps with its coefficients, eps 1e-7. */
    public Muon(int rows, int cols, float lr, float weightDecay) {
        this(rows, cols, lr, weightDecay, 0.95f, true, 5, 3.4445f, -4.7750f, 2.0315f, 1e-7f);
    }

    public Muon(int rows, int cols, float lr, float weightDecay, float momentum, boolean nesterov, int nsSteps,
                float a, float b, float c, float eps) {
        if (rows <= 0 || cols <= 0) throw new IllegalArgumentException("Muon needs a matrix, got [" + rows + ", " + cols + "]");
        this.rows = rows;
        this.cols = cols;
        this.lr = lr;
        this.weightDecay = weightDecay;
        this.momentum = momentum;
        this.nesterov = nesterov;
        this.nsSteps = nsSteps;
        this.a = a;
        this.b = b;
        this.c = c;
        this.eps = eps;
        this.buf = new float[rows * cols];
    }

    /**
     * Whether a language-model tensor is one of the 2-D hidden matrices Muon takes (Moonlight's split): not the
     * embeddings, the output head or a router's gate, which AdamW takes with the vectors.
     */
    public static boolean takesLanguageModelTensor(String name, long[] shape) {
        return shape.length == 2 && !name.contains("embed_tokens") && !name.contains("lm_head") && !name.endsWith("mlp.gate.weight");
    }

    /** One update of param [rows·cols] in place from its gradient. */
    public void step(float[] param, float[] grad) { step(param, grad, 1f); }

    /** One update with the learning rate scaled by {@code lrScale} (a schedule's factor for this step). */
    public void step(float[] param, float[] grad, float lrScale) {
        float lr = this.lr * lrScale;
        int n = rows * cols;
        if (param.length != n || grad.length != n) {
            throw new IllegalArgumentException("Muon [" + rows + ", " + cols + "]: param has " + param.length + " values, grad " + grad.length);
        }
        float[] g = new float[n];
        for (int i = 0; i < n; i++) {
            buf[i] = momentum * buf[i] + grad[i];
            g[i] = nesterov ? grad[i] + momentum * buf[i] : buf[i];
        }
        lastInput = g;
        float[] u = orthogonalize(g, rows, cols, nsSteps, a, b, c, eps);
        lastUpdate = u;
        float decay = 1 - lr * weightDecay, scale = lr * 0.2f * (float) Math.sqrt(Math.max(rows, cols));
        for (int i = 0; i < n; i++) param[i] = param[i] * decay - scale * u[i];
    }

    /** The live momentum buffer, for a checkpoint to save and restore exactly. */
    public float[] buffer() { return buf; }

    /** The momentum buffer after the last step. */
    public float[] momentumBuffer() { return buf.clone(); }

    /** What the last step orthogonalised (the Nesterov input), or null before a step. */
    public float[] lastInput() { return lastInput == null ? null : lastInput.clone(); }

    /** The last step's orthogonalised update U (before scaling), or null before a step. */
    public float[] lastUpdate() { return lastUpdate == null ? null : lastUpdate.clone(); }

    /**
     * The Newton–Schulz approximation of the orthogonal factor of G [rows, cols] (U·Vᵀ of its SVD, singular values
     * pushed towards 1): iterated on the wide orientation, so that X·Xᵀ is the smaller square.
     */
    static float[] orthogonalize(float[] g, int rows, int cols, int steps, float a, float b, float c, float eps) {
        boolean tall = rows > cols;
        int r = tall ? cols : rows, k = tall ? rows : cols;      // X [r, k], r ≤ k
        float[] x = tall ? transpose(g, rows, cols) : g.clone();
        double ss = 0;
        for (float v : x) ss += (double) v * v;
        float inv = 1f / ((float) Math.sqrt(ss) + eps);
        for (int i = 0; i < x.length; i++) x[i] *= inv;
        for (int s = 0; s < steps; s++) {
            float[] A = gram(x, r, k);                       // X·Xᵀ [r, r]
            float[] AA = gram(A, r, r);                      // A·A = A·Aᵀ (A is symmetric to the bit)
            float[] B = new float[r * r];
            for (int i = 0; i < B.length; i++) B[i] = b * A[i] + c * AA[i];
            float[] BX = mul(B, r, r, x, k);                 // B·X [r, k]
            for (int i = 0; i < x.length; i++) x[i] = a * x[i] + BX[i];
        }
        return tall ? transpose(x, r, k) : x;
    }

    private static float[] transpose(float[] m, int rows, int cols) { return LinearOps.transpose(m, rows, cols); }

    /** X·Xᵀ [r, r] for X [r, k]: the lower triangle's tiles on the packed GEMM, mirrored (the full product's floats). */
    private static float[] gram(float[] x, int r, int k) {
        float[] g = new float[r * r];
        dev.kimivl.tensor.Gemm.gram(x, r, k, g);
        return g;
    }

    /** P [m, n]·Q [n, k] on the packed GEMM (Gemm.matmulNN: no transpose of Q; the same floats as P·(Qᵀ)ᵀ). */
    private static float[] mul(float[] p, int m, int n, float[] q, int k) {
        if (!dev.kimivl.tensor.Gemm.packed(m)) return LinearOps.forward(p, m, n, LinearOps.transpose(q, n, k), k);
        float[] y = new float[m * k];
        dev.kimivl.tensor.Gemm.matmulNN(p, m, n, q, k, y);
        return y;
    }
}
