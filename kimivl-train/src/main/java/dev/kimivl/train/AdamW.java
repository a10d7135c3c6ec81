package dev.kimivl.train;

/**
 * AdamW (decoupled weight decay) for one parameter tensor, in PyTorch's order of operations, which the golden
 * (golden/train/adamw) follows to 9.3e-10:
 * <pre>
 * p = p·(1 − lr·wd)
 * m = β1·m + (1 − β1)·g;   v = β2·v + (1 − β2)·g²
 * p = p − lr/(1 − β1ᵗ) · m / (sqrt(v)/sqrt(1 − β2ᵗ) + eps)
 * </pre>
 * Muon's partner in Moonlight's recipe: it takes the embeddings, norms, biases and the output head.
 */
public final class AdamW {
    private final float lr, beta1, beta2, eps, weightDecay;
    private final float[] m, v;
    private int t;

    public AdamW(int size, float lr, float beta1, float beta2, float eps, float weightDecay) {
        this.lr = lr;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
        this.m = new float[size];
        this.v = new float[size];
    }

    /** One update of param in place from its gradient. */
    public void step(float[] param, float[] grad) { step(param, grad, 1f); }

    /** One update with the learning rate scaled by {@code lrScale} (a schedule's factor for this step). */
    public void step(float[] param, float[] grad, float lrScale) {
        float lr = this.lr * lrScale;
        if (param.length != m.length || grad.length != m.length) {
            throw new IllegalArgumentException("AdamW of " + m.length + " values: param has " + param.length + ", grad " + grad.length);
        }
        t++;
        float bc1 = 1 - (float) Math.pow(beta1, t), bc2Sqrt = (float) Math.sqrt(1 - Math.pow(beta2, t)), stepSize = lr / bc1;
        for (int i = 0; i < m.length; i++) {
            float g = grad[i];
            param[i] *= 1 - lr * weightDecay;
            m[i] = beta1 * m[i] + (1 - beta1) * g;
            v[i] = beta2 * v[i] + (1 - beta2) * g * g;
            param[i] -= stepSize * m[i] / ((float) Math.sqrt(v[i]) / bc2Sqrt + eps);
        }
    }

    public float[] expAvg() { return m.clone(); }

    public float[] expAvgSq() { return v.clone(); }

    /** Steps taken. */
    public int steps() { return t; }

    /** The live moment arrays and step count, for a checkpoint to save and restore exactly. */
    public float[] firstMoment() { return m; }

    public float[] secondMoment() { return v; }

    public void restoreSteps(int steps) { this.t = steps; }
}
