package dev.kimivl.train;

import dev.kimivl.io.SafeTensorsFile;
import dev.kimivl.io.TensorData;
import dev.kimivl.testing.Golden;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Muon and AdamW against the PyTorch goldens (golden/train/muon, golden/train/adamw; see golden/README.md §3): three
 * steps each, every intermediate compared. Tolerances: the goldens' own float32 vs float64 spread is ≤ 8.3e-7 on the
 * Newton–Schulz output and ≤ 1.3e-7 on the Muon parameters; AdamW matches torch.optim.AdamW to 9.3e-10.
 */
class OptimizerGoldenTest {

    @Test
    void muonFollowsTheGoldenForThreeSteps() throws Exception {
        Map<String, TensorData> g = SafeTensorsFile.open(Golden.root().resolve("train/muon/muon.safetensors")).tensors();
        for (String w : new String[]{"w0", "w1", "w2"}) {               // tall, wide and square
            long[] shape = g.get(w + ".param0").shape();
            int rows = (int) shape[0], cols = (int) shape[1];
            Muon opt = new Muon(rows, cols, 0.02f, 0.1f);
            assertNull(opt.lastUpdate());
            float[] p = g.get(w + ".param0").toFloats();
            for (int t = 1; t <= 3; t++) {
                opt.step(p, g.get(w + ".grad" + t).toFloats());
                String s = w + ".step" + t + ".";
                Golden.assertClose(s + "momentum_buffer", g.get(s + "momentum_buffer").toFloats(), opt.momentumBuffer(), 1e-6);
                Golden.assertClose(s + "nesterov_input", g.get(s + "nesterov_input").toFloats(), opt.lastInput(), 1e-6);
                double du = Golden.assertClose(s + "ns_output", g.get(s + "ns_output").toFloats(), opt.lastUpdate(), 5e-6);
                double dp = Golden.assertClose(s + "param", g.get(s + "param").toFloats(), p, 1e-6);
                if (t == 3) System.out.printf("Muon %s [%d, %d] step 3: max |ΔU| %.1e, max |Δparam| %.1e%n", w, rows, cols, du, dp);
            }
        }
    }

    @Test
    void adamWFollowsTheGoldenForThreeSteps() throws Exception {
        Map<String, TensorData> g = SafeTensorsFile.open(Golden.root().resolve("train/adamw/adamw.safetensors")).tensors();
        float[] p = g.get("param0").toFloats();
        AdamW opt = new AdamW(p.length, 0.01f, 0.9f, 0.95f, 1e-8f, 0.1f);
        for (int t = 1; t <= 3; t++) {
            opt.step(p, g.get("grad" + t).toFloats());
            Golden.assertClose("step" + t + ".exp_avg", g.get("step" + t + ".exp_avg").toFloats(), opt.expAvg(), 1e-7);
            Golden.assertClose("step" + t + ".exp_avg_sq", g.get("step" + t + ".exp_avg_sq").toFloats(), opt.expAvgSq(), 1e-7);
            Golden.assertClose("step" + t + ".param", g.get("step" + t + ".param").toFloats(), p, 1e-7);
        }
        assertEquals(3, opt.steps());
    }

    /** Newton–Schulz pushes every singular value towards 1: U·Uᵀ of a wide matrix is near the identity (loosely). */
    @Test
    void newtonSchulzOrthogonalizes() {
        java.util.Random rnd = new java.util.Random(3);
        int r = 16, k = 40;
        float[] g = new float[r * k];
        for (int i = 0; i < g.length; i++) g[i] = (float) rnd.nextGaussian();
        float[] u = Muon.orthogonalize(g, r, k, 5, 3.4445f, -4.7750f, 2.0315f, 1e-7f);
        for (int i = 0; i < r; i++) {
            for (int j = 0; j < r; j++) {
                double s = 0;
                for (int t = 0; t < k; t++) s += (double) u[i * k + t] * u[j * k + t];
                // the quintic's coefficients trade exactness for speed: singular values land in ~[0.7, 1.2]
                if (i == j) assertEquals(1.0, s, 0.5, "diagonal " + i);
                else assertEquals(0.0, s, 0.35, "off-diagonal " + i + "," + j);
            }
        }
        assertThrows(IllegalArgumentException.class, () -> new Muon(2, 3, 0.02f, 0.1f).step(new float[5], new float[6]));
    }
}
