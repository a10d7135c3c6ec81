package dev.kimivl.model;

import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.VectorMath;

/** FFN(x) = W_down·(SiLU(W_gate·x) ⊙ W_up·x): the dense layer, each routed expert and the fused shared experts. */
public final class SwiGlu {
    final Matrix gate, up, down;   // [I, D], [I, D], [D, I]

    SwiGlu(Matrix gate, Matrix up, Matrix down) {
        this.gate = gate;
        this.up = up;
        this.down = down;
    }

    /** x [n, D] → y [n, D]. */
    float[] forward(float[] x, int n) {
        int inter = gate.rows();
        float[] g = new float[n * inter], u = new float[n * inter];
        gate.matmul(x, g, n);
        up.matmul(x, u, n);
        for (int i = 0; i < g.length; i++) g[i] = VectorMath.silu(g[i]) * u[i];
        float[] y = new float[n * down.rows()];
        down.matmul(g, y, n);
        return y;
    }
}
