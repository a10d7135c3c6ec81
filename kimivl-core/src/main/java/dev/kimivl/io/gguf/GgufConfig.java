package dev.kimivl.io.gguf;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.TextConfig;
import dev.kimivl.config.VisionConfig;
import dev.kimivl.io.CheckpointException;

/**
 * {@link ModelConfig} from GGUF metadata (llama.cpp's deepseek2 keys and the clip/kimivl mmproj keys). A missing
 * {@code attention.q_lora_rank} and 0 both mean a plain q_proj. The kv_a_layernorm epsilon is not stored in GGUF:
 * the model code uses the reference's 1e-6 whatever {@code layer_norm_rms_epsilon} says.
 */
public final class GgufConfig {
    private GgufConfig() {}

    /** The configuration of a text file and/or an mmproj file (either may be null, not both). */
    public static ModelConfig modelConfig(GgufFile text, GgufFile mmproj) {
        TextConfig tc = text == null ? null : textConfig(text);
        VisionConfig vc = mmproj == null ? null : visionConfig(mmproj);
        int mediaPad = -1;
        if (text != null && text.metadata().get("tokenizer.ggml.tokens") instanceof String[] tokens) {
            for (int i = 0; i < tokens.length; i++) if (tokens[i].equals("<|media_pad|>")) { mediaPad = i; break; }
        }
        boolean kimi = vc != null || mediaPad >= 0 || (text != null && text.string("tokenizer.ggml.pre", "").equals("kimi-k2"));
        if (kimi && mediaPad < 0 && vc != null) mediaPad = 163605;
        String type = kimi ? "kimi_vl" : tc.modelType();
        return new ModelConfig(type, tc, vc, kimi ? "language_model." : "", mediaPad);
    }

    public static TextConfig textConfig(GgufFile f) {
        String a = f.string("general.architecture", "") + ".";
        if (!a.equals("deepseek2.")) throw new CheckpointException(f.path() + ": general.architecture '" + a + "' is not deepseek2");
        int layers = positive(f, a + "block_count");
        int hidden = positive(f, a + "embedding_length");
        int heads = positive(f, a + "attention.head_count");
        int kvLora = positive(f, a + "attention.kv_lora_rank");
        int rope = positive(f, a + "rope.dimension_count");
        // key_length_mla/value_length_mla (per-head MLA sizes) are written since llama.cpp switched to MLA-as-MQA;
        // older files have the per-head sizes in key_length/value_length.
        int keyMla = int32(f, a + "attention.key_length_mla", f.integer(a + "attention.key_length", -1));
        int vHead = int32(f, a + "attention.value_length_mla", f.integer(a + "attention.value_length", -1));
        if (keyMla <= rope || vHead <= 0) throw new CheckpointException(f.path() + ": attention.key_length_mla " + keyMla + " / value_length_mla " + vHead + " are missing or invalid");
        int gating = int32(f, a + "expert_gating_func", 1);
        boolean sigmoid = gating == 2;
        int nRouted = int32(f, a + "expert_count", 0);
        long vocab = f.integer(a + "vocab_size", -1);
        if (vocab < 0 && f.metadata().get("tokenizer.ggml.tokens") instanceof String[] tokens) vocab = tokens.length;
        if (vocab < 0 && f.tensorInfos().containsKey("token_embd.weight") && f.tensorInfos().get("token_embd.weight").ne().length == 2) {
            vocab = f.tensorInfos().get("token_embd.weight").ne()[1];
        }
        if (vocab < 1 || vocab > Integer.MAX_VALUE) {
            throw new CheckpointException(f.path() + ": the vocabulary size " + vocab + " (vocab_size, else tokenizer.ggml.tokens, else token_embd.weight) is missing or invalid");
        }
        TextConfig.RopeScaling rs = null;
        String scaling = f.string(a + "rope.scaling.type", "none");
        if (scaling.equals("yarn")) {
            double mscaleAllDim = f.number(a + "rope.scaling.yarn_log_multiplier", 0) / 0.1;
            rs = new TextConfig.RopeScaling("yarn", f.number(a + "rope.scaling.factor", 1),
                    int32(f, a + "rope.scaling.original_context_length", 4096),
                    f.number(a + "rope.scaling.yarn_beta_fast", 32), f.number(a + "rope.scaling.yarn_beta_slow", 1),
                    mscaleAllDim == 0 ? 1 : mscaleAllDim, mscaleAllDim);
        } else if (!scaling.equals("none")) {
            throw new CheckpointException(f.path() + ": rope.scaling.type '" + scaling + "' is not supported (yarn)");
        }
        int nGroup = int32(f, a + "expert_group_count", 1);
        TextConfig c = new TextConfig(
                sigmoid ? "deepseek_v3" : "deepseek_v2",
                (int) vocab, hidden,
                int32(f, a + "feed_forward_length", 0),
                int32(f, a + "expert_feed_forward_length", 0),
                layers, heads,
                int32(f, a + "expert_shared_count", 0),
                nRouted,
                f.number(a + "expert_weights_scale", 1.0),
                kvLora,
                int32(f, a + "attention.q_lora_rank", 0),
                rope, vHead, keyMla - rope,
                sigmoid ? "noaux_tc" : (nGroup > 1 ? "group_limited_greedy" : "greedy"),
                nGroup,
                int32(f, a + "expert_group_used_count", 1),
                int32(f, a + "expert_used_count", 0),
                1,
                int32(f, a + "leading_dense_block_count", 0),
                f.bool(a + "expert_weights_norm", false),
                sigmoid ? "sigmoid" : "softmax",
                f.number(a + "attention.layer_norm_rms_epsilon", 1e-6),
                f.number(a + "rope.freq_base", 10000.0),
                rs,
                int32(f, a + "context_length", 4096),
                int32(f, "tokenizer.ggml.bos_token_id", -1),
                int32(f, "tokenizer.ggml.eos_token_id", -1),
                !f.tensorInfos().containsKey("output.weight"),
                sigmoid);
        c.validate(f.path().toString());              // the routing checks config.json gets (top-k within the experts, groups)
        return c;
    }

    public static VisionConfig visionConfig(GgufFile f) {
        GgufFile.TensorInfo pos = f.tensorInfos().get("v.position_embd.weight");
        if (pos == null) throw new CheckpointException(f.path() + ": missing tensor 'v.position_embd.weight'");
        if (pos.ne().length != 2) throw new CheckpointException(f.path() + ": v.position_embd.weight has ne " + java.util.Arrays.toString(pos.ne()) + ", expected [hidden, cells]");
        long cells = pos.ne()[1], side = Math.round(Math.sqrt(cells));
        // an empty table passed as a 0 x 0 square and failed in the first image's resize (GgufFuzzTest#mmprojHeader's
        // regress-empty-position-table)
        if (cells < 1 || side * side != cells) throw new CheckpointException(f.path() + ": v.position_embd.weight has " + cells + " positions, not a square grid of at least one");
        int merge = int32(f, "clip.vision.projector.scale_factor", 2);
        int patch = int32(f, "clip.vision.patch_size", 14);
        if (merge < 1 || merge > 64 || patch < 1 || patch > 1024) {
            throw new CheckpointException(f.path() + ": clip.vision.patch_size " + patch + " / projector.scale_factor " + merge + " out of range");
        }
        int hidden = positive(f, "clip.vision.embedding_length"), heads = positive(f, "clip.vision.attention.head_count");
        if (hidden % heads != 0 || (hidden / heads) % 4 != 0) throw new CheckpointException(f.path() + ": embedding_length " + hidden + " / head_count " + heads + " must give a head dim divisible by 4");
        return new VisionConfig(patch, hidden, positive(f, "clip.vision.block_count"), heads,
                positive(f, "clip.vision.feed_forward_length"), (int) side, (int) side, merge, merge);
    }

    /** An integer value that must fit an int (a wrapped cast would turn 2^32 + 5 into 5); {@code def} when absent. */
    private static int int32(GgufFile f, String key, long def) {
        long v = f.integer(key, def);
        if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) throw new CheckpointException(f.path() + ": metadata '" + key + "' = " + v + " is out of range");
        return (int) v;
    }

    private static int positive(GgufFile f, String key) {
        long v = f.requireInteger(key);
        if (v <= 0 || v > Integer.MAX_VALUE) throw new CheckpointException(f.path() + ": metadata '" + key + "' = " + v + " must be positive");
        return (int) v;
    }
}
