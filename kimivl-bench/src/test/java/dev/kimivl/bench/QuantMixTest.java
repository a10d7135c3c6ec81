package dev.kimivl.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kimivl.config.ModelConfig;
import dev.kimivl.io.gguf.GgmlType;
import dev.kimivl.io.gguf.GgufFile;
import dev.kimivl.io.gguf.GgufModel;
import dev.kimivl.model.KvCache;
import dev.kimivl.model.LanguageModel;
import dev.kimivl.model.StageSink;
import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Quant;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.*;

/** The Q4_K_M benchmark model: llama.cpp's per-tensor types for Kimi-VL-A3B, valid random blocks, a loadable file. */
class QuantMixTest {
    static Map<String, RandomGguf.Planned> plan(ModelConfig cfg, QuantMix mix) {
        Map<String, RandomGguf.Planned> m = new LinkedHashMap<>();
        for (RandomGguf.Planned p : RandomGguf.textPlan(cfg, mix)) assertNull(m.put(p.name(), p), p.name() + " twice");
        return m;
    }

    static GgmlType type(Map<String, RandomGguf.Planned> m, String name) {
        RandomGguf.Planned p = m.get(name);
        assertNotNull(p, name);
        return p.type();
    }

    @Test
    void a3bTensorTypesFollowLlamaQuantize() {
        ModelConfig cfg = ModelConfig.parse(RandomCheckpoint.defaultConfigJson(), "A3B");
        Map<String, RandomGguf.Planned> m = plan(cfg, QuantMix.Q4_K_M);
        assertEquals(3 + 11 + 26 * 16, m.size(), "tensors of the deepseek2 text GGUF");

        assertEquals(GgmlType.Q6_K, type(m, "output.weight"));
        assertEquals(GgmlType.Q4_K, type(m, "token_embd.weight"));
        assertEquals(GgmlType.F32, type(m, "output_norm.weight"));
        assertEquals(GgmlType.Q6_K, type(m, "blk.0.ffn_down.weight"), "dense layer 0: use_more_bits(0, 27)");
        assertEquals(GgmlType.Q4_K, type(m, "blk.0.ffn_gate.weight"));
        assertEquals(GgmlType.Q4_K, type(m, "blk.0.ffn_up.weight"));
        assertEquals(GgmlType.Q5_0, type(m, "blk.3.ffn_down_exps.weight"), "Q4_K, 1408 columns: falls back to Q5_0");
        assertEquals(GgmlType.Q8_0, type(m, "blk.5.ffn_down_exps.weight"), "Q6_K (use_more_bits), 1408 columns: Q8_0");
        assertEquals(GgmlType.Q4_K, type(m, "blk.3.ffn_down_shexp.weight"));
        assertEquals(GgmlType.Q6_K, type(m, "blk.5.ffn_down_shexp.weight"), "2816 columns = 11·256: no fallback");
        assertEquals(GgmlType.Q4_K, type(m, "blk.5.ffn_gate_exps.weight"));
        assertEquals(GgmlType.Q4_K, type(m, "blk.5.ffn_up_exps.weight"));
        assertEquals(GgmlType.Q4_K, type(m, "blk.5.ffn_gate_shexp.weight"));
        assertEquals(GgmlType.Q4_K, type(m, "blk.5.ffn_up_shexp.weight"));
        assertEquals(GgmlType.Q5_0, type(m, "blk.2.attn_k_b.weight"), "128 columns");
        assertArrayEquals(new long[]{128, 512, 16}, m.get("blk.2.attn_k_b.weight").ne());
        assertEquals(GgmlType.Q4_K, type(m, "blk.2.attn_v_b.weight"));
        assertArrayEquals(new long[]{512, 128, 16}, m.get("blk.2.attn_v_b.weight").ne());
        for (String t : new String[]{"attn_q", "attn_kv_a_mqa", "attn_output"}) assertEquals(GgmlType.Q4_K, type(m, "blk.7." + t + ".weight"), t);
        assertEquals(GgmlType.F32, type(m, "blk.4.ffn_gate_inp.weight"), "the router is not quantized");
        assertEquals(GgmlType.F32, type(m, "blk.4.exp_probs_b.bias"));
        for (String t : new String[]{"attn_norm", "ffn_norm", "attn_kv_a_norm"}) assertEquals(GgmlType.F32, type(m, "blk.4." + t + ".weight"), t);
        assertArrayEquals(new long[]{1408, 2048, 64}, m.get("blk.1.ffn_down_exps.weight").ne());

        TreeSet<Integer> more = new TreeSet<>();
        for (int l = 1; l < 27; l++) {
            GgmlType exps = type(m, "blk." + l + ".ffn_down_exps.weight"), sh = type(m, "blk." + l + ".ffn_down_shexp.weight");
            assertEquals(exps == GgmlType.Q8_0, sh == GgmlType.Q6_K, "layer " + l);
            if (exps == GgmlType.Q8_0) more.add(l);
            else assertEquals(GgmlType.Q5_0, exps);
        }
        assertEquals(List.of(1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26), new ArrayList<>(more), "use_more_bits(i, 27)");

        Map<GgmlType, Long> bytes = new TreeMap<>();
        long total = 0;
        for (RandomGguf.Planned p : m.values()) { bytes.merge(p.type(), p.bytes(), Long::sum); total += p.bytes(); }
        StringBuilder sb = new StringBuilder();
        bytes.forEach((t, b) -> sb.append(String.format(" %s %.3f GB", t, b / 1e9)));
        System.out.printf("A3B Q4_K_M text tensors: %.3f GB:%s%n", total / 1e9, sb);
        assertTrue(total > 9.0e9 && total < 11.0e9, "about 10 GB: " + total);
    }

    @Test
    void uniformMixesKeepTheirCacheNames() {
        Path dir = Path.of("/cache");
        String cfg = RandomCheckpoint.defaultConfigJson();
        assertEquals("kimi-vl-a3b-random-q4_0-c8404ce5.gguf", RandomGguf.files(dir, QuantMix.Q4_0, cfg)[0].getFileName().toString());
        assertEquals("kimi-vl-a3b-random-q8_0-c8404ce5.gguf", RandomGguf.files(dir, QuantMix.Q8_0, cfg)[0].getFileName().toString());
        assertEquals("kimi-vl-a3b-random-q4_k_m-c8404ce5.gguf", RandomGguf.files(dir, QuantMix.Q4_K_M, cfg)[0].getFileName().toString());
        assertEquals("kimi-vl-a3b-random-mmproj-q8_0-c8404ce5.gguf", RandomGguf.files(dir, QuantMix.Q4_K_M, cfg)[1].getFileName().toString());
        assertEquals(QuantMix.Q4_K_M, QuantMix.parse("Q4_K_M"));
        assertThrows(IllegalArgumentException.class, () -> QuantMix.parse("q4_k"));
        assertThrows(UnsupportedOperationException.class, () -> QuantMix.parse("bf16"));
    }

    /** Random rows of a type, dequantized by the reference dequantizers: RMS as asked, mean about 0 (but Q4_0's). */
    @Test
    void randomBlocksHaveTheAskedRms() {
        int rows = 64, cols = 2048;
        float rms = 0.03f;
        for (DType t : new DType[]{DType.Q4_K, DType.Q6_K, DType.Q5_0, DType.Q8_0, DType.Q4_0}) {
            long bytes = t.bytesFor((long) rows * cols);
            ByteBuffer b = ByteBuffer.allocate((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
            RandomCheckpoint.fill(b, new RandomCheckpoint.Entry("w", t, new long[]{rows, cols}, 0, bytes), rows, new SplittableRandom(7), rms);
            assertEquals(bytes, b.position(), t + ": bytes written");
            float[] y = new float[rows * cols];
            Quant.dequantize(t, MemorySegment.ofArray(b.array()), 0, y, 0, y.length);
            double s = 0, s2 = 0;
            for (float v : y) { assertTrue(Float.isFinite(v)); s += v; s2 += (double) v * v; }
            double mean = s / y.length, r = Math.sqrt(s2 / y.length);
            System.out.printf("%s: rms %.5f (asked %.5f), mean %.2e%n", t, r, rms, mean);
            assertEquals(rms, r, 0.02 * rms, t + " RMS");
            // (the Q4_0 generator of the existing cached models keeps q − 8's mean of −0.5: −0.11·RMS)
            assertEquals(t == DType.Q4_0 ? -0.108 * rms : 0, mean, 0.01 * rms, t + " mean");
        }
    }

    /** The Q4_K scale/min packing: with all quants 0 or all 15, each sub-block gives −7.5·d·sc and +7.5·d·sc exactly. */
    @Test
    void q4KScalesAndMinsDecodeAsPacked() {
        int blocks = 32;
        ByteBuffer b = ByteBuffer.allocate(blocks * 144).order(ByteOrder.LITTLE_ENDIAN);
        RandomCheckpoint.fill(b, new RandomCheckpoint.Entry("w", DType.Q4_K, new long[]{blocks, 256}, 0, blocks * 144L), blocks, new SplittableRandom(3), 0.05f);
        byte[] lo = b.array().clone(), hi = b.array().clone();
        for (int k = 0; k < blocks; k++) for (int i = 16; i < 144; i++) { lo[k * 144 + i] = 0; hi[k * 144 + i] = (byte) 0xFF; }
        float[] a = new float[blocks * 256], c = new float[blocks * 256];
        Quant.dequantize(DType.Q4_K, MemorySegment.ofArray(lo), 0, a, 0, a.length);
        Quant.dequantize(DType.Q4_K, MemorySegment.ofArray(hi), 0, c, 0, c.length);
        TreeSet<Float> levels = new TreeSet<>();
        for (int k = 0; k < blocks; k++) {
            float d = Float.float16ToFloat(b.getShort(k * 144));
            for (int i = 0; i < 256; i++) {
                int at = k * 256 + i;
                assertEquals(0f, a[at] + c[at], 0f, "block " + k + " element " + i);
                levels.add(Math.round(c[at] / d * 2) / 2f);
            }
        }
        assertEquals(new TreeSet<>(List.of(15f, 30f, 45f, 60f)), levels, "7.5·sc for sc in {2, 4, 6, 8}");
    }

    /** Kimi-VL's structure at toy sizes (27 layers, so the same layers get more bits), vision included. */
    static String tinyConfig() throws Exception {
        ObjectMapper om = new ObjectMapper();
        ObjectNode root = (ObjectNode) om.readTree(RandomCheckpoint.defaultConfigJson());
        ObjectNode t = (ObjectNode) root.get("text_config");
        t.put("vocab_size", 1024).put("hidden_size", 256).put("intermediate_size", 512).put("moe_intermediate_size", 384)
                .put("num_attention_heads", 2).put("num_key_value_heads", 2).put("n_routed_experts", 4).put("num_experts_per_tok", 2)
                .put("bos_token_id", 1000).put("eos_token_id", 1001).put("pad_token_id", 1023).put("max_position_embeddings", 4096);
        root.put("vocab_size", 1024).put("media_placeholder_token_id", 1002);
        ObjectNode v = (ObjectNode) root.get("vision_config");
        v.put("hidden_size", 64).put("num_attention_heads", 2).put("num_hidden_layers", 1).put("intermediate_size", 128);
        return om.writeValueAsString(root);
    }

    /**
     * Speculative decoding's verify pass on the k-quants (Q4_K, Q6_K, with Q5_0/Q8_0 where llama-quantize falls back):
     * with the integer matvec (the CLI's default) the rows of one {@code forwardRows} pass give single-token decode's
     * logits bit for bit, so {@code rowsMatchDecode} lets such a file draft (ForwardRowsTest checks the other types).
     */
    @Test
    void q4KMVerifyRowsEqualSingleTokenDecode(@TempDir Path dir) throws Exception {
        String json = tinyConfig();
        try (GgufModel g = GgufModel.open(RandomGguf.ensure(dir, QuantMix.Q4_K_M, json, 42, null))) {
            LanguageModel base = LanguageModel.load(g, g.config().text(), g.config().textPrefix());
            LanguageModel lm = base.withKernels(dev.kimivl.tensor.Kernels.preferred(base.kernels().settings().withIntMatvec(true)));
            org.junit.jupiter.api.Assumptions.assumeTrue(dev.kimivl.tensor.NativeKernels.AVAILABLE, "the k-quants' integer matvec is native");
            assertTrue(lm.rowsMatchDecode());
            assertFalse(base.withKernels(dev.kimivl.tensor.Kernels.preferred(base.kernels().settings().withIntMatvec(false))).rowsMatchDecode());
            int V = lm.config().vocabSize();
            SplittableRandom r = new SplittableRandom(3);
            int[] prompt = ModelBench.randomIds(r, 7, V), next = ModelBench.randomIds(r, 5, V);
            KvCache single = lm.newCache(32), rows = lm.newCache(32);
            lm.forward(lm.embed(prompt), prompt.length, single, StageSink.NONE, null);
            lm.forward(lm.embed(prompt), prompt.length, rows, StageSink.NONE, null);
            float[] all = lm.logitsRows(lm.forwardRows(lm.embed(next), next.length, rows), next.length);
            for (int t = 0; t < next.length; t++) {
                float[] one = lm.logits(lm.forward(lm.embed(new int[]{next[t]}), 1, single, StageSink.NONE, null), 0);
                assertArrayEquals(one, java.util.Arrays.copyOfRange(all, t * V, (t + 1) * V), 0f, "row " + t);
            }
        }
    }

    @Test
    void tinyQ4KMFileHasConvertersLayoutAndRuns(@TempDir Path dir) throws Exception {
        String json = tinyConfig();
        ModelConfig cfg = ModelConfig.parse(json, "tiny");
        Path[] km = RandomGguf.ensure(dir, QuantMix.Q4_K_M, json, 42, null);
        Path[] q4 = RandomGguf.ensure(dir, QuantMix.Q4_0, json, 42, null);
        assertEquals(km[1], q4[1], "one mmproj for all mixes");
        Map<String, RandomGguf.Planned> plan = plan(cfg, QuantMix.Q4_K_M);
        try (Arena arena = Arena.ofConfined()) {
            GgufFile a = GgufFile.open(km[0], arena), b = GgufFile.open(q4[0], arena);
            assertEquals(new ArrayList<>(b.tensorInfos().keySet()), new ArrayList<>(a.tensorInfos().keySet()), "Converter's tensor names and order");
            for (GgufFile.TensorInfo ta : a.tensorInfos().values()) {
                assertArrayEquals(b.tensorInfos().get(ta.name()).ne(), ta.ne(), ta.name());
                assertEquals(plan.get(ta.name()).type(), ta.type(), ta.name());
            }
            assertEquals(new ArrayList<>(b.metadata().keySet()), new ArrayList<>(a.metadata().keySet()), "Converter's metadata keys");
            for (String k : b.metadata().keySet()) {
                assertEquals(b.metadataType(k), a.metadataType(k), k);
                if (!k.equals("general.file_type")) assertTrue(java.util.Objects.deepEquals(b.metadata().get(k), a.metadata().get(k)), k);   // the tokenizer's arrays too
            }
            assertEquals(15L, a.metadata().get("general.file_type"));
            assertEquals(2L, b.metadata().get("general.file_type"));
        }
        assertEquals(GgmlType.Q5_0, plan.get("blk.3.ffn_down_exps.weight").type(), "384 columns: as A3B's 1408");
        assertEquals(GgmlType.Q8_0, plan.get("blk.5.ffn_down_exps.weight").type());
        assertEquals(GgmlType.Q6_K, plan.get("blk.5.ffn_down_shexp.weight").type(), "768 columns");
        assertEquals(GgmlType.Q5_0, plan.get("blk.5.attn_k_b.weight").type());

        // through the real loading path; 27 layers of random weights keep the hidden states finite and moderate
        try (GgufModel g = GgufModel.open(km)) {
            LanguageModel lm = LanguageModel.load(g, g.config().text(), g.config().textPrefix());
            KvCache c = lm.newCache(16);
            int[] ids = {5, 77, 300, 999, 12, 640};
            float[] h = lm.forward(lm.embed(ids), ids.length, c, StageSink.NONE, null);
            float[] logits = lm.logits(h, ids.length - 1);
            double s2 = 0;
            for (float x : h) { assertTrue(Float.isFinite(x)); s2 += (double) x * x; }
            double hr = Math.sqrt(s2 / h.length), lr = 0;
            for (float x : logits) { assertTrue(Float.isFinite(x)); lr += (double) x * x; }
            lr = Math.sqrt(lr / logits.length);
            System.out.printf("tiny q4_k_m: final hidden RMS %.3f, logit RMS %.3f%n", hr, lr);
            assertTrue(hr > 1e-3 && hr < 1e3, "hidden RMS " + hr);
            assertTrue(lr > 1e-3 && lr < 1e3, "logit RMS " + lr);
        }

        // and the whole benchmark on it: the report names the mix's types and cites llama.cpp's figures (other runs)
        ModelBench.Options o = new ModelBench.Options(QuantMix.Q4_K_M, dir, 16, 4, java.util.List.of(32), ModelBench.ContextFill.RANDOM, java.util.List.of(), 56, true, 32.0, 42, false, true, true);
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        ModelBench.Result r = ModelBench.run(o, json, new PrintStream(log, true, StandardCharsets.UTF_8));
        String text = ModelBench.text(r);
        System.out.print(text);
        assertEquals("q4_k_m", r.type());
        assertEquals(0, r.generateSeconds(), "the files were there");
        assertTrue(r.decode().tokPerSec() > 0 && Double.isFinite(r.prefillTokPerSec()));
        assertEquals(new TreeSet<>(List.of("F32", "Q4_K", "Q5_0", "Q6_K", "Q8_0")), r.textGBByType().keySet());
        assertTrue(text.contains("llama.cpp         not measured in this run"), text);
        assertTrue(text.contains("pp512 15.86-18.34;"), "no ratio: a 16-token prompt is not pp512: " + text);
        assertTrue(ModelBench.json(r).contains("\"llamaCppReference\""));
        assertTrue(r.imageTokens() > 0);
    }
}
