package dev.kimivl.train.probe;

/**
 * Ridge regression from n feature rows to k targets, in double: the linear read-out the token probes measure with.
 *
 * <p>The features are standardised (each column to mean 0 and standard deviation 1 over the fitted rows) before the
 * penalty applies, so one λ means the same for every tower whatever the scale of its features, and the intercept is
 * not penalised (targets are centred). With Z the standardised rows and Yc the centred targets the weights solve
 * <pre>
 * (ZᵀZ / n + λ·I) · W = Zᵀ·Yc / n          (d × d, by Cholesky)
 * </pre>
 * i.e. they minimise mean ‖y − ŷ‖² + λ‖W‖². The fitted model is returned in the original units (weights divided by
 * the column scales, the intercept taking the means), so {@link Model#predict} takes raw features.
 *
 * <p>{@link #of} does the O(n·d²) pass over the rows once; {@link #solve} is then O(d³) per λ, so choosing λ costs
 * little.
 */
public final class Ridge {
    private final int n, d, k;
    private final double[] mean, scale, yMean;
    private final double[] gram;     // [d, d] ZᵀZ / n
    private final double[] cross;    // [d, k] Zᵀ·Yc / n

    private Ridge(int n, int d, int k, double[] mean, double[] scale, double[] yMean, double[] gram, double[] cross) {
        this.n = n;
        this.d = d;
        this.k = k;
        this.mean = mean;
        this.scale = scale;
        this.yMean = yMean;
        this.gram = gram;
        this.cross = cross;
    }

    /** A fitted linear map: y [k] = x [d] · weights [d, k] + bias [k]. */
    public record Model(int d, int k, double[] weights, double[] bias) {
        /** x [rows, d] (row-major) → [rows, k]. */
        public double[] predict(float[] x, int rows) {
            if (x.length != rows * d) throw new IllegalArgumentException("predict: " + x.length + " values for " + rows + " rows of " + d);
            double[] y = new double[rows * k];
            for (int r = 0; r < rows; r++) {
                for (int j = 0; j < k; j++) y[r * k + j] = bias[j];
                for (int i = 0; i < d; i++) {
                    double v = x[r * d + i];
                    if (v == 0) continue;
                    for (int j = 0; j < k; j++) y[r * k + j] += v * weights[i * k + j];
                }
            }
            return y;
        }
    }

    /**
     * The sufficient statistics of rows x [n, d] (row-major) and targets y [n, k]. A constant column gets scale 1 (it
     * carries nothing; its weight is then 0 for any λ &gt; 0).
     */
    public static Ridge of(float[] x, int n, int d, double[] y, int k) {
        if (n < 1 || d < 1 || k < 1) throw new IllegalArgumentException("ridge: need n, d, k ≥ 1, got " + n + ", " + d + ", " + k);
        if (x.length != (long) n * d) throw new IllegalArgumentException("ridge: features hold " + x.length + " values, expected n·d = " + n + "·" + d);
        if (y.length != (long) n * k) throw new IllegalArgumentException("ridge: targets hold " + y.length + " values, expected n·k = " + n + "·" + k);
        double[] mean = new double[d], scale = new double[d], yMean = new double[k];
        for (int r = 0; r < n; r++) {
            for (int i = 0; i < d; i++) mean[i] += x[r * d + i];
            for (int j = 0; j < k; j++) yMean[j] += y[r * k + j];
        }
        for (int i = 0; i < d; i++) mean[i] /= n;
        for (int j = 0; j < k; j++) yMean[j] /= n;
        for (int r = 0; r < n; r++) for (int i = 0; i < d; i++) { double c = x[r * d + i] - mean[i]; scale[i] += c * c; }
        for (int i = 0; i < d; i++) {
            double s = Math.sqrt(scale[i] / n);
            scale[i] = s > 1e-12 ? s : 1;
        }
        double[] gram = new double[d * d], cross = new double[d * k], z = new double[d];
        for (int r = 0; r < n; r++) {
            for (int i = 0; i < d; i++) z[i] = (x[r * d + i] - mean[i]) / scale[i];
            for (int i = 0; i < d; i++) {
                double zi = z[i];
                if (zi == 0) continue;
                for (int j = i; j < d; j++) gram[i * d + j] += zi * z[j];     // upper triangle; mirrored below
                for (int j = 0; j < k; j++) cross[i * k + j] += zi * (y[r * k + j] - yMean[j]);
            }
        }
        for (int i = 0; i < d; i++) {
            for (int j = i; j < d; j++) { gram[i * d + j] /= n; gram[j * d + i] = gram[i * d + j]; }
            for (int j = 0; j < k; j++) cross[i * k + j] /= n;
        }
        return new Ridge(n, d, k, mean, scale, yMean, gram, cross);
    }

    /** Rows fitted. */
    public int rows() { return n; }

    /** The model for penalty λ ≥ 0 (λ = 0: least squares; the standardised rows must then have full column rank). */
    public Model solve(double lambda) {
        if (!(lambda >= 0) || Double.isInfinite(lambda)) throw new IllegalArgumentException("ridge: λ must be a finite number ≥ 0, got " + lambda);
        double[] a = gram.clone();
        for (int i = 0; i < d; i++) a[i * d + i] += lambda;
        double[] w = cholesky(a, d, cross.clone(), k);
        double[] weights = new double[d * k], bias = yMean.clone();
        for (int i = 0; i < d; i++) {
            for (int j = 0; j < k; j++) {
                weights[i * k + j] = w[i * k + j] / scale[i];
                bias[j] -= mean[i] * weights[i * k + j];
            }
        }
        return new Model(d, k, weights, bias);
    }

    /** Solves A·X = B for symmetric positive definite A [d, d] (overwritten by its factor), B [d, k]; returns X. */
    static double[] cholesky(double[] a, int d, double[] b, int k) {
        for (int j = 0; j < d; j++) {
            double s = a[j * d + j];
            for (int p = 0; p < j; p++) s -= a[j * d + p] * a[j * d + p];
            if (!(s > 1e-12 * Math.max(1, Math.abs(a[j * d + j])))) {
                throw new IllegalArgumentException("ridge: the features are linearly dependent (pivot " + j + " is " + s + "); use a penalty λ > 0");
            }
            double l = Math.sqrt(s);
            a[j * d + j] = l;
            for (int i = j + 1; i < d; i++) {
                double t = a[i * d + j];
                for (int p = 0; p < j; p++) t -= a[i * d + p] * a[j * d + p];
                a[i * d + j] = t / l;
            }
        }
        for (int c = 0; c < k; c++) {                     // L·u = b, then Lᵀ·x = u, column by column
            for (int i = 0; i < d; i++) {
                double t = b[i * k + c];
                for (int p = 0; p < i; p++) t -= a[i * d + p] * b[p * k + c];
                b[i * k + c] = t / a[i * d + i];
            }
            for (int i = d - 1; i >= 0; i--) {
                double t = b[i * k + c];
                for (int p = i + 1; p < d; p++) t -= a[p * d + i] * b[p * k + c];
                b[i * k + c] = t / a[i * d + i];
            }
        }
        return b;
    }

    /**
     * The coefficient of determination of predictions against truth, column {@code col} of k: 1 − SS_res / SS_tot, SS_tot
     * about the truth's own mean (so predicting that mean scores 0, and worse than it scores below 0).
     */
    public static double r2(double[] pred, double[] truth, int k, int col) {
        int rows = truth.length / k;
        double m = 0;
        for (int r = 0; r < rows; r++) m += truth[r * k + col];
        m /= rows;
        double res = 0, tot = 0;
        for (int r = 0; r < rows; r++) {
            double t = truth[r * k + col], e = t - pred[r * k + col];
            res += e * e;
            tot += (t - m) * (t - m);
        }
        return tot > 0 ? 1 - res / tot : Double.NaN;
    }
}
