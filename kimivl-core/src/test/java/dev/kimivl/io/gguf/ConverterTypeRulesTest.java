package dev.kimivl.io.gguf;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.TensorData;
import dev.kimivl.io.WeightSource;
import dev.kimivl.tensor.DType;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.zip.GZIPInputStream;

import static dev.kimivl.io.gguf.GgmlType.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Issue 15 item 6: {@code kimivl convert} gives every tensor of Kimi-VL-A3B-Instruct the type llama.cpp's tools give
 * it. The checkpoint is the real tensor manifest (reference/tensor_manifest.derived.tsv.gz: the 5679 names of the
 * Hugging Face checkpoint, shapes from its config, copied gzipped from ../shared/reference) behind a weight source
 * without data: the converter plans both files (names, dims, types) and nothing is written.
 *
 * <p>The expected types are a table written by hand from llama.cpp's {@code convert_hf_to_gguf.py} (f32, bf16, q8_0)
 * and {@code src/llama-quant.cpp} (q4_0, q4_k_m of the bf16 file), one row per GGUF tensor family, not computed by the
 * code under test. Every GGUF tensor must match exactly one row.
 */
class ConverterTypeRulesTest {
    private static final Converter.Type[] TYPES = {Converter.Type.F32, Converter.Type.BF16, Converter.Type.Q8_0, Converter.Type.Q4_0, Converter.Type.Q4_K_M};

    /**
     * use_more_bits(i, 27) of llama-quantize (i &lt; 27/8 = 3, i ≥ 7·27/8 = 23, or (i − 3) % 3 == 2), by hand:
     * the layers whose ffn_down tensors get more bits in a Q4_K_M file.
     */
    private static final Set<Integer> MORE_BITS = Set.of(0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26);

    private record Row(Pattern name, GgmlType[] types, String why) {}

    /** pattern ("N" = a layer number), then the type for f32, bf16, q8_0, q4_0, q4_k_m, and where the rule is from. */
    private static Row row(String pattern, GgmlType f32, GgmlType bf16, GgmlType q8, GgmlType q4, GgmlType q4km, String why) {
        return new Row(Pattern.compile(Pattern.quote(pattern).replace("N", "\\E\\d+\\Q")), new GgmlType[]{f32, bf16, q8, q4, q4km}, why);
    }

    private static final List<Row> TEXT = List.of(
            row("token_embd.weight", F32, BF16, Q8_0, Q4_0, Q4_K, "token_embd: the default type (its quantize rule only changes IQ/TQ files)"),
            row("output.weight", F32, BF16, Q8_0, Q6_K, Q6_K, "OUTPUT: Q6_K unless the default is Q8_0"),
            row("output_norm.weight", F32, F32, F32, F32, F32, "norm: F32"),
            row("blk.N.attn_norm.weight", F32, F32, F32, F32, F32, "norm"),
            row("blk.N.ffn_norm.weight", F32, F32, F32, F32, F32, "norm"),
            row("blk.N.attn_kv_a_norm.weight", F32, F32, F32, F32, F32, "norm"),
            row("blk.N.attn_q.weight", F32, BF16, Q8_0, Q4_0, Q4_K, "no rule: default"),
            row("blk.N.attn_kv_a_mqa.weight", F32, BF16, Q8_0, Q4_0, Q4_K, "no rule"),
            row("blk.N.attn_k_b.weight", F32, BF16, Q8_0, Q4_0, Q5_0, "ne[0] = 128: Q4_K falls back to Q5_0"),
            row("blk.N.attn_v_b.weight", F32, BF16, Q8_0, Q4_0, Q4_K, "ne[0] = 512; not an attn_v-like name"),
            row("blk.N.attn_output.weight", F32, BF16, Q8_0, Q4_0, Q4_K, "only 8-expert models change it"),
            row("blk.0.ffn_gate.weight", F32, BF16, Q8_0, Q4_0, Q4_K, "no rule"),
            row("blk.0.ffn_up.weight", F32, BF16, Q8_0, Q4_0, Q4_K, "no rule"),
            row("blk.0.ffn_down.weight", F32, BF16, Q8_0, Q4_0, Q6_K, "ffn_down of layer 0: use_more_bits"),
            row("blk.N.ffn_gate_inp.weight", F32, F32, F32, F32, F32, "router: F32 in convert, not quantized"),
            row("blk.N.exp_probs_b.bias", F32, F32, F32, F32, F32, "1-D, not a .weight"),
            row("blk.N.ffn_gate_exps.weight", F32, BF16, Q8_0, Q4_0, Q4_K, "no rule"),
            row("blk.N.ffn_up_exps.weight", F32, BF16, Q8_0, Q4_0, Q4_K, "no rule"),
            row("blk.N.ffn_gate_shexp.weight", F32, BF16, Q8_0, Q4_0, Q4_K, "no rule"),
            row("blk.N.ffn_up_shexp.weight", F32, BF16, Q8_0, Q4_0, Q4_K, "no rule"),
            // ffn_down_exps (ne[0] = 1408) and ffn_down_shexp (2816 = 11·256): q4_k_m depends on the layer, below
            row("blk.N.ffn_down_exps.weight", F32, BF16, Q8_0, Q4_0, null, "Q6_K → Q8_0 / Q4_K → Q5_0 (1408 columns)"),
            row("blk.N.ffn_down_shexp.weight", F32, BF16, Q8_0, Q4_0, null, "Q6_K on use_more_bits layers, else Q4_K"));

    /** The mmproj: convert_hf_to_gguf for f32/bf16/q8_0; written as q8_0 next to q4_0 and q4_k_m text files. */
    private static final List<Row> VISION = List.of(
            row("v.patch_embd.weight", F32, F32, F32, F32, F32, "MmprojModel.tensor_force_quant: F32 unless f16"),
            row("v.patch_embd.bias", F32, F32, F32, F32, F32, "1-D"),
            row("v.position_embd.weight", F32, F32, F32, F32, F32, "V_ENC_EMBD_POS: F32 (llama-mtmd-cli aborts on Q8_0)"),
            row("v.blk.N.attn_q.weight", F32, BF16, Q8_0, Q8_0, Q8_0, "default"),
            row("v.blk.N.attn_k.weight", F32, BF16, Q8_0, Q8_0, Q8_0, "default"),
            row("v.blk.N.attn_v.weight", F32, BF16, Q8_0, Q8_0, Q8_0, "default"),
            row("v.blk.N.attn_out.weight", F32, BF16, Q8_0, Q8_0, Q8_0, "default"),
            row("v.blk.N.ffn_up.weight", F32, BF16, Q8_0, Q8_0, Q8_0, "default (ne[0] = 1152)"),
            row("v.blk.N.ffn_down.weight", F32, BF16, F16, F16, F16, "ne[0] = 4304 is not a multiple of 32: gguf-py's QuantError → F16"),
            row("mm.1.weight", F32, BF16, Q8_0, Q8_0, Q8_0, "default"),
            row("mm.2.weight", F32, BF16, Q8_0, Q8_0, Q8_0, "default"),
            row("v.blk.N.attn_q.bias", F32, F32, F32, F32, F32, "1-D"),
            row("v.blk.N.attn_k.bias", F32, F32, F32, F32, F32, "1-D"),
            row("v.blk.N.attn_v.bias", F32, F32, F32, F32, F32, "1-D"),
            row("v.blk.N.attn_out.bias", F32, F32, F32, F32, F32, "1-D"),
            row("v.blk.N.ffn_up.bias", F32, F32, F32, F32, F32, "1-D"),
            row("v.blk.N.ffn_down.bias", F32, F32, F32, F32, F32, "1-D"),
            row("v.blk.N.ln1.weight", F32, F32, F32, F32, F32, "1-D"),
            row("v.blk.N.ln1.bias", F32, F32, F32, F32, F32, "1-D"),
            row("v.blk.N.ln2.weight", F32, F32, F32, F32, F32, "1-D"),
            row("v.blk.N.ln2.bias", F32, F32, F32, F32, F32, "1-D"),
            row("v.post_ln.weight", F32, F32, F32, F32, F32, "1-D"),
            row("v.post_ln.bias", F32, F32, F32, F32, F32, "1-D"),
            row("mm.input_norm.weight", F32, F32, F32, F32, F32, "norm"),
            row("mm.input_norm.bias", F32, F32, F32, F32, F32, "1-D"),
            row("mm.1.bias", F32, F32, F32, F32, F32, "1-D"),
            row("mm.2.bias", F32, F32, F32, F32, F32, "1-D"));

    /** The manifest: HF name → shape (PyTorch order). */
    static Map<String, long[]> manifest() throws IOException {
        Map<String, long[]> m = new LinkedHashMap<>();
        try (InputStream in = ConverterTypeRulesTest.class.getResourceAsStream("/reference/tensor_manifest.derived.tsv.gz")) {
            assertNotNull(in, "reference/tensor_manifest.derived.tsv.gz is missing from the test resources");
            BufferedReader r = new BufferedReader(new InputStreamReader(new GZIPInputStream(in), StandardCharsets.UTF_8));
            for (String line; (line = r.readLine()) != null; ) {
                if (line.startsWith("#") || line.isBlank()) continue;
                String[] f = line.split("\t");
                m.put(f[0], Arrays.stream(f[1].split("x")).mapToLong(Long::parseLong).toArray());
            }
        }
        return m;
    }

    /** The checkpoint's tensors with their shapes and no data (a zero-address segment of the right size: never read). */
    private static WeightSource source(Map<String, long[]> shapes) {
        return new WeightSource() {
            @Override public Set<String> names() { return shapes.keySet(); }
            @Override public boolean has(String name) { return shapes.containsKey(name); }
            @Override public TensorData tensor(String name) {
                long[] s = shapes.get(name);
                if (s == null) throw new CheckpointException("manifest: no tensor '" + name + "'");
                long n = 1;
                for (long d : s) n *= d;
                return new TensorData(name, DType.BF16, s, MemorySegment.NULL.reinterpret(2 * n), "manifest");
            }
            @Override public String description() { return "Kimi-VL-A3B-Instruct tensor manifest"; }
            @Override public void close() {}
        };
    }

    private static int layer(String name) {
        String[] p = name.split("\\.");
        return Integer.parseInt(p[1]);
    }

    private static GgmlType expected(List<Row> rows, String name, int typeIndex) {
        List<Row> hits = new ArrayList<>();
        for (Row r : rows) if (r.name.matcher(name).matches()) hits.add(r);
        assertEquals(1, hits.size(), "GGUF tensor '" + name + "' must match exactly one row of the table, matched " + hits.size());
        GgmlType t = hits.get(0).types[typeIndex];
        if (t != null) return t;
        // q4_k_m of the layer-dependent ffn_down tensors
        boolean more = MORE_BITS.contains(layer(name));
        if (name.endsWith("ffn_down_exps.weight")) return more ? Q8_0 : Q5_0;
        return more ? Q6_K : Q4_K;
    }

    @Test
    void everyTensorOfKimiVlA3BHasLlamaCppsType() throws Exception {
        Map<String, long[]> shapes = manifest();
        assertEquals(5679, shapes.size(), "tensors in the manifest");
        ModelConfig cfg = ModelConfig.parse(new String(ConverterTypeRulesTest.class.getResourceAsStream("/reference/config.reconstructed.json").readAllBytes(),
                StandardCharsets.UTF_8), "reference config");
        int textNames = 0, visionNames = 0, experts = 0;
        for (String n : shapes.keySet()) {
            if (n.startsWith("language_model.") && !n.endsWith("rotary_emb.inv_freq")) {
                textNames++;
                if (n.contains(".mlp.experts.")) experts++;
            }
            if (n.startsWith("vision_tower.") || n.startsWith("multi_modal_projector.")) visionNames++;
        }
        try (WeightSource src = source(shapes)) {
            for (int ti = 0; ti < TYPES.length; ti++) {
                Converter.Type type = TYPES[ti];
                List<GgufWriter.TensorEntry> text = Converter.textWriter(src, cfg, null, type, null).tensors();
                // experts stacked per layer and projection (26 × 3), kv_b split in two (27), the rest one to one
                assertEquals(textNames - experts + 26 * 3 + 27, text.size(), type + ": text tensors");
                for (GgufWriter.TensorEntry t : text) {
                    assertEquals(expected(TEXT, t.name(), ti), t.type(), type.label() + " " + t.name() + " " + Arrays.toString(t.ne()));
                }
                List<GgufWriter.TensorEntry> mm = Converter.mmprojWriter(src, cfg, null, type, null).tensors();
                // wqkv weight and bias split into q, k, v (27 blocks × 2 × 3 instead of × 2)
                assertEquals(visionNames + 27 * 2 * 2, mm.size(), type + ": mmproj tensors");
                for (GgufWriter.TensorEntry t : mm) {
                    assertEquals(expected(VISION, t.name(), ti), t.type(), type.label() + " mmproj " + t.name() + " " + Arrays.toString(t.ne()));
                }
            }
        }
    }

    /** The case of the issue, spelled out: a q8_0 mmproj keeps the position table F32 (llama-mtmd-cli aborts on Q8_0). */
    @Test
    void q8_0MmprojKeepsThePositionTableF32() {
        long[] ne = {1152, 64 * 64};
        assertEquals(F32, Converter.mmprojTensorType("v.position_embd.weight", ne, Converter.Type.Q8_0));
        assertEquals(Q8_0, Converter.mmprojTensorType("v.blk.0.attn_q.weight", new long[]{1152, 1152}, Converter.Type.Q8_0));
        assertEquals(F16, TensorTypes.converted("v.patch_embd.weight", new long[]{14, 14, 3, 1152}, F16), "patch embedding in an f16 file");
        assertEquals(Q8_0, Converter.mmprojTensorType("mm.1.weight", new long[]{4608, 4608}, Converter.Type.Q4_K_M), "q4_k_m's mmproj is q8_0");
        assertThrows(IllegalArgumentException.class, () -> Converter.Type.parse("q4_k"));
        assertEquals(Converter.Type.Q4_K_M, Converter.Type.parse("Q4_K_M"));
    }
}
