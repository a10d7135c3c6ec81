package dev.kimivl.io.gguf;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.TextConfig;
import dev.kimivl.config.VisionConfig;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.TensorData;
import dev.kimivl.io.WeightSource;
import dev.kimivl.tensor.DType;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A Kimi-VL model stored as llama.cpp GGUF files, presented under the Hugging Face tensor names and shapes: a text
 * file (arch {@code deepseek2}) and/or an mmproj file (arch {@code clip}, projector {@code kimivl}). Text tensors
 * get the {@link ModelConfig#textPrefix()} ({@code language_model.} for Kimi-VL).
 *
 * <p>What llama.cpp changed is undone here: {@code attn_k_b}/{@code attn_v_b} → {@code kv_b_proj} (rebuilt as F32 on
 * the heap, on first use), stacked {@code ffn_*_exps} → per-expert 2-D slices of the 3-D tensor (no copy),
 * {@code attn_q/k/v} → {@code wqkv} (a slice when the three are adjacent in the file, else a heap copy) and the
 * flattened {@code v.position_embd} → [H, W, D] (a reshape). Everything else is a slice of the mapping.
 */
public final class GgufModel implements WeightSource {
    private static final Pattern EXPS = Pattern.compile("blk\\.(\\d+)\\.ffn_(gate|up|down)_exps\\.weight");
    private static final Pattern KB = Pattern.compile("blk\\.(\\d+)\\.attn_k_b\\.weight");
    private static final Pattern VQ = Pattern.compile("v\\.blk\\.(\\d+)\\.attn_q\\.(weight|bias)");

    private final Arena arena;
    private final GgufFile text, mmproj;
    private final ModelConfig config;
    private final Map<String, Supplier<TensorData>> entries;
    private final Map<String, TensorData> built = new ConcurrentHashMap<>();
    private final String description;

    private GgufModel(Arena arena, GgufFile text, GgufFile mmproj) {
        this.arena = arena;
        this.text = text;
        this.mmproj = mmproj;
        this.config = GgufConfig.modelConfig(text, mmproj);
        this.description = (text != null ? text.path().toString() : "") + (text != null && mmproj != null ? " + " : "")
                + (mmproj != null ? mmproj.path().toString() : "");
        Map<String, Supplier<TensorData>> e = new LinkedHashMap<>();
        if (text != null) mapText(text, config.textPrefix(), e);
        if (mmproj != null) mapVision(mmproj, e);
        this.entries = Collections.unmodifiableMap(e);
    }

    /**
     * Opens GGUF files of one model: a text file, an mmproj file, or both (in any order; told apart by
     * {@code general.architecture}).
     */
    public static GgufModel open(Path... files) {
        if (files.length == 0 || files.length > 2) throw new IllegalArgumentException("give a text GGUF and/or an mmproj GGUF");
        Arena arena = Arena.ofShared();
        try {
            GgufFile text = null, mmproj = null;
            for (Path p : files) {
                if (p == null) continue;
                GgufFile f = GgufFile.open(p, arena);
                String arch = f.string("general.architecture", "");
                if (arch.equals("clip")) {
                    if (mmproj != null) throw new CheckpointException(p + ": a second mmproj file (" + mmproj.path() + " is one)");
                    String proj = f.string("clip.projector_type", f.string("clip.vision.projector_type", ""));
                    if (!proj.equals("kimivl")) throw new CheckpointException(p + ": mmproj projector type '" + proj + "' is not supported (kimivl)");
                    mmproj = f;
                } else if (arch.equals("deepseek2")) {
                    if (text != null) throw new CheckpointException(p + ": a second text model file (" + text.path() + " is one)");
                    text = f;
                } else {
                    throw new CheckpointException(p + ": general.architecture '" + arch + "' is not supported (deepseek2 text model, or clip mmproj)");
                }
            }
            if (text == null && mmproj == null) throw new IllegalArgumentException("no GGUF file given");
            return new GgufModel(arena, text, mmproj);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** The configuration read from the files' metadata (see {@link GgufConfig}). */
    public ModelConfig config() { return config; }

    /** The text file, or null. */
    public GgufFile textFile() { return text; }

    @Override
    public KvBHeads kvBHeads(int layer, int heads) {
        if (text == null) return null;
        String kb = "blk." + layer + ".attn_k_b.weight", vb = "blk." + layer + ".attn_v_b.weight";
        if (!text.tensorInfos().containsKey(kb) || !text.tensorInfos().containsKey(vb)) return null;
        TensorData k = text.tensor(kb), v = text.tensor(vb);
        long[] ks = k.shape(), vs = v.shape();    // [H, kvLora, nope], [H, v, kvLora]
        if (ks.length != 3 || vs.length != 3 || ks[0] != heads || vs[0] != heads) return null;
        dev.kimivl.tensor.Matrix[] uk = new dev.kimivl.tensor.Matrix[heads], uv = new dev.kimivl.tensor.Matrix[heads];
        long kPer = k.data().byteSize() / heads, vPer = v.data().byteSize() / heads;
        for (int h = 0; h < heads; h++) {
            uk[h] = new TensorData(kb, k.dtype(), new long[]{ks[1], ks[2]}, k.data().asSlice(h * kPer, kPer), k.origin()).matrix();
            uv[h] = new TensorData(vb, v.dtype(), new long[]{vs[1], vs[2]}, v.data().asSlice(h * vPer, vPer), v.origin()).matrix();
        }
        return new KvBHeads(uk, uv);
    }

    @Override
    public void releaseVisionPages() {
        if (mmproj != null && mmproj.rawData().isMapped()) mmproj.rawData().unload();
    }

    /** The mmproj file, or null. */
    public GgufFile mmprojFile() { return mmproj; }

    @Override public Set<String> names() { return entries.keySet(); }

    @Override public boolean has(String name) { return entries.containsKey(name); }

    @Override
    public TensorData tensor(String name) {
        Supplier<TensorData> s = entries.get(name);
        if (s == null) throw new CheckpointException(description + ": missing tensor '" + name + "'");
        return s.get();
    }

    @Override public String description() { return description; }

    @Override
    public void checkUnchanged() {
        if (text != null) text.checkUnchanged();
        if (mmproj != null) mmproj.checkUnchanged();
    }

    @Override public void close() { arena.close(); }

    private Supplier<TensorData> once(String name, Supplier<TensorData> s) {
        return () -> built.computeIfAbsent(name, k -> s.get());
    }

    private static TensorData renamed(TensorData t, String name, long... shape) {
        return new TensorData(name, t.dtype(), shape.length == 0 ? t.shape() : shape, t.data(), t.origin() + " (" + t.name() + ")");
    }

    private void mapText(GgufFile f, String prefix, Map<String, Supplier<TensorData>> out) {
        for (String g : f.tensorInfos().keySet()) {
            String hf = KimiVlNames.textFromGguf(g);
            if (hf != null) {
                out.put(prefix + hf, () -> renamed(f.tensor(g), prefix + hf));
                continue;
            }
            Matcher m = EXPS.matcher(g);
            if (m.matches()) {
                String layer = m.group(1), proj = m.group(2);
                GgufFile.TensorInfo info = f.tensorInfos().get(g);
                if (info.ne().length != 3) throw new CheckpointException(f.path() + ": tensor '" + g + "' has ne " + java.util.Arrays.toString(info.ne()) + ", expected 3 dimensions");
                if (info.ne()[2] < 1 || info.ne()[2] > 1 << 16) throw new CheckpointException(f.path() + ": tensor '" + g + "' has ne " + java.util.Arrays.toString(info.ne()) + ": " + info.ne()[2] + " experts");
                int experts = (int) info.ne()[2];
                long rows = info.ne()[1], cols = info.ne()[0];
                long per = info.bytes() / experts;
                for (int e = 0; e < experts; e++) {
                    String name = prefix + "model.layers." + layer + ".mlp.experts." + e + "." + proj + "_proj.weight";
                    long off = e * per;
                    out.put(name, () -> {
                        TensorData all = f.tensor(g);
                        return new TensorData(name, all.dtype(), new long[]{rows, cols}, all.data().asSlice(off, per), all.origin() + " (" + g + ")");
                    });
                }
                continue;
            }
            m = KB.matcher(g);
            if (m.matches()) {
                String layer = m.group(1);
                String vb = "blk." + layer + ".attn_v_b.weight";
                if (!f.tensorInfos().containsKey(vb)) throw new CheckpointException(f.path() + ": tensor '" + g + "' has no matching '" + vb + "'");
                String name = prefix + "model.layers." + layer + ".self_attn.kv_b_proj.weight";
                out.put(name, once(name, () -> rebuildKvB(f.tensor(g), f.tensor(vb), name, f.path().getFileName().toString())));
            }
            // attn_v_b is consumed with attn_k_b; other unknown tensors (e.g. rope_freqs) are not model weights
        }
    }

    /**
     * kv_b_proj [H·(nope+v), kvLora] from attn_k_b (numpy [H, kvLora, nope]: W_UK transposed per head) and
     * attn_v_b (numpy [H, v, kvLora]).
     */
    static TensorData rebuildKvB(TensorData kb, TensorData vb, String name, String origin) {
        if (kb.shape().length != 3 || vb.shape().length != 3 || kb.shape()[0] != vb.shape()[0] || kb.shape()[1] != vb.shape()[2]) {
            throw new CheckpointException(origin + ": attn_k_b " + kb.shapeString() + " and attn_v_b " + vb.shapeString() + " do not fit together ([H, kv_lora, nope] and [H, v, kv_lora])");
        }
        int h = (int) kb.shape()[0], kvl = (int) kb.shape()[1], nope = (int) kb.shape()[2], v = (int) vb.shape()[1];
        float[] k = kb.toFloats(), vv = vb.toFloats();
        int rowsPerHead = nope + v;
        float[] out = new float[h * rowsPerHead * kvl];
        for (int hh = 0; hh < h; hh++) {
            for (int i = 0; i < nope; i++) {
                int dst = (hh * rowsPerHead + i) * kvl;
                for (int c = 0; c < kvl; c++) out[dst + c] = k[(hh * kvl + c) * nope + i];
            }
            System.arraycopy(vv, hh * v * kvl, out, (hh * rowsPerHead + nope) * kvl, v * kvl);
        }
        return new TensorData(name, DType.F32, new long[]{(long) h * rowsPerHead, kvl}, MemorySegment.ofArray(out), origin + " (attn_k_b + attn_v_b)");
    }

    private void mapVision(GgufFile f, Map<String, Supplier<TensorData>> out) {
        for (String g : f.tensorInfos().keySet()) {
            String hf = KimiVlNames.visionFromGguf(g);
            if (hf != null) {
                if (g.equals("v.position_embd.weight")) {
                    out.put(hf, () -> {
                        TensorData t = f.tensor(g);
                        if (t.shape().length != 2) throw new CheckpointException(f.path() + ": v.position_embd.weight " + t.shapeString() + " is not [cells, hidden]");
                        long cells = t.shape()[0], side = Math.round(Math.sqrt(cells));
                        if (side * side != cells) throw new CheckpointException(f.path() + ": v.position_embd.weight " + t.shapeString() + ": " + cells + " positions is not a square grid");
                        return renamed(t, hf, side, side, t.shape()[1]);
                    });
                } else {
                    out.put(hf, () -> renamed(f.tensor(g), hf));
                }
                continue;
            }
            Matcher m = VQ.matcher(g);
            if (m.matches()) {
                String b = m.group(1), kind = m.group(2);
                String name = "vision_tower.encoder.blocks." + b + ".wqkv." + kind;
                String[] parts = {g, "v.blk." + b + ".attn_k." + kind, "v.blk." + b + ".attn_v." + kind};
                for (String p : parts) if (!f.tensorInfos().containsKey(p)) throw new CheckpointException(f.path() + ": tensor '" + g + "' has no matching '" + p + "'");
                out.put(name, once(name, () -> concatRows(f, parts, name)));
            }
        }
    }

    /** The tensors stacked along their first (PyTorch) dimension: a slice when adjacent in the file, else a copy. */
    static TensorData concatRows(GgufFile f, String[] parts, String name) {
        TensorData[] t = new TensorData[parts.length];
        long rows = 0, bytes = 0;
        for (int i = 0; i < parts.length; i++) {
            t[i] = f.tensor(parts[i]);
            if (t[i].dtype() != t[0].dtype() || t[i].shape().length != t[0].shape().length
                    || (t[i].shape().length == 2 && t[i].shape()[1] != t[0].shape()[1])) {
                throw new CheckpointException(f.path() + ": " + parts[i] + " (" + t[i].dtype() + " " + t[i].shapeString() + ") does not stack with "
                        + parts[0] + " (" + t[0].dtype() + " " + t[0].shapeString() + ")");
            }
            rows += t[i].shape()[0];
            bytes += t[i].data().byteSize();
        }
        long[] shape = t[0].shape().clone();
        shape[0] = rows;
        boolean adjacent = true;
        for (int i = 1; i < parts.length; i++) {
            GgufFile.TensorInfo prev = f.tensorInfos().get(parts[i - 1]), cur = f.tensorInfos().get(parts[i]);
            adjacent &= cur.offset() == prev.offset() + prev.bytes();
        }
        String origin = f.path().getFileName().toString() + " (" + String.join(" + ", parts) + ")";
        if (adjacent) {
            GgufFile.TensorInfo first = f.tensorInfos().get(parts[0]);
            return new TensorData(name, t[0].dtype(), shape, f.rawData().asSlice(f.dataOffset() + first.offset(), bytes), origin);
        }
        MemorySegment copy = dev.kimivl.tensor.Segments.allocate(bytes);
        long at = 0;
        for (TensorData p : t) {
            MemorySegment.copy(p.data(), 0, copy, at, p.data().byteSize());
            at += p.data().byteSize();
        }
        return new TensorData(name, t[0].dtype(), shape, copy, origin);
    }
}
