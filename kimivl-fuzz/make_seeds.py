#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs from the repository's fixtures (run from the repository root):

    python3 kimivl-fuzz/make_seeds.py

Seeds live where Jazzer's JUnit integration looks for them in regression mode:
kimivl-fuzz/src/test/resources/dev/kimivl/fuzz/<Class>Inputs/<method>/. Findings Jazzer writes there (crash-*) are
kept as regression inputs next to these seeds. Only standard-library Python; nothing is downloaded.
"""
import json, os, struct, shutil

ROOT = os.getcwd()
OUT = os.path.join(ROOT, "kimivl-fuzz/src/test/resources/dev/kimivl/fuzz")
TINY = os.path.join(ROOT, "models/tiny-random")
GOLDEN = os.path.join(ROOT, "kimivl-core/src/test/resources/golden")
IMAGES = os.path.join(ROOT, "kimivl-core/src/test/resources/images")


def seed(cls, method, name, data):
    # the Inputs folder sits in the test class's package: dev/kimivl/fuzz, except ChatRequestFuzzTest (dev/kimivl/server)
    d = os.path.join(OUT if cls != "ChatRequestFuzzTest" else OUT.replace("/fuzz", "/server"), cls + "Inputs", method)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


def st_file(tensors, metadata=None):
    """A small safetensors file: tensors = [(name, dtype, shape, bytes)]."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def tiny_header():
    b = open(os.path.join(TINY, "model.safetensors"), "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return b[8:8 + n]


def safetensors():
    f32 = lambda *v: struct.pack("<%df" % len(v), *v)
    seed("SafetensorsFuzzTest", "file", "f32-matrix", st_file([("w", "F32", [2, 2], f32(1, 2, 3, 4))], {"format": "pt"}))
    seed("SafetensorsFuzzTest", "file", "mixed", st_file([("a", "BF16", [3], b"\x80\x3f" * 3), ("b", "F16", [1, 2], b"\x00\x3c" * 2),
                                                          ("c", "I64", [1], struct.pack("<q", 7)), ("d", "F64", [], struct.pack("<d", 0.5)),
                                                          ("e", "F32", [0, 4], b"")]))
    seed("SafetensorsFuzzTest", "header", "tiny-random", tiny_header())
    cfg = open(os.path.join(TINY, "config.json")).read()
    seed("SafetensorsFuzzTest", "config", "tiny-random-nested", cfg)
    c = json.loads(cfg)
    plain = dict(c["text_config"])
    plain["model_type"] = "deepseek_v3"
    seed("SafetensorsFuzzTest", "config", "plain-deepseek-v3", json.dumps(plain, indent=1))
    c["text_config"]["rope_scaling"] = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024,
                                        "beta_fast": 32, "beta_slow": 1, "mscale": 1, "mscale_all_dim": 1}
    c["text_config"]["q_lora_rank"] = None
    seed("SafetensorsFuzzTest", "config", "yarn", json.dumps(c, indent=1))
    # the two-shard index SafetensorsFuzzTest writes: tensors alternate between the shards in header order
    names = [k for k in json.loads(tiny_header()) if k != "__metadata__"]
    wm = {n: "model-0000%d-of-00002.safetensors" % (1 + i % 2) for i, n in enumerate(names)}
    seed("SafetensorsFuzzTest", "index", "two-shards", json.dumps({"metadata": {"total_size": 0}, "weight_map": wm}, indent=1))




# ---- GGUF -------------------------------------------------------------------------------------------------------
def gguf_str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gguf_value(t, v):
    """GGUF value of type id t (0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 str, 9 array, 10 u64, 11 i64, 12 f64)."""
    fmt = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
    if t == 8:
        return gguf_str(v)
    if t == 9:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(gguf_value(et, x) for x in items)
    return struct.pack(fmt[t], v)


def gguf_file(kvs, tensors, alignment=32, version=3):
    """kvs = [(key, type, value)]; tensors = [(name, ne list, ggml type id, raw bytes)]."""
    out = struct.pack("<IIQQ", 0x46554747, version, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += gguf_str(k) + struct.pack("<I", t) + gguf_value(t, v)
    offs, data = [], b""
    for name, ne, typ, raw in tensors:
        data += b"\0" * ((-len(data)) % alignment)
        offs.append(len(data))
        data += raw
    for (name, ne, typ, raw), off in zip(tensors, offs):
        out += gguf_str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne) + struct.pack("<IQ", typ, off)
    out += b"\0" * ((-len(out)) % alignment)
    return out + data


def gguf_header(path):
    b = open(path, "rb").read()
    pos = 8
    nt, nkv = struct.unpack_from("<QQ", b, pos); pos += 16
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip(t, pos):
        if t == 8:
            n, = struct.unpack_from("<Q", b, pos); return pos + 8 + n
        if t == 9:
            et, n = struct.unpack_from("<IQ", b, pos); pos += 12
            for _ in range(n): pos = skip(et, pos)
            return pos
        return pos + sizes[t]
    for _ in range(nkv):
        n, = struct.unpack_from("<Q", b, pos); pos += 8 + n
        t, = struct.unpack_from("<I", b, pos); pos += 4
        pos = skip(t, pos)
    for _ in range(nt):
        n, = struct.unpack_from("<Q", b, pos); pos += 8 + n
        nd, = struct.unpack_from("<I", b, pos); pos += 4 + 8 * nd + 4 + 8
    return b[:pos]


def gguf():
    import random
    rnd = random.Random(12)
    blocks = {2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 12: (256, 144), 13: (256, 176), 14: (256, 210)}
    # every value type, a nested array, and one tensor of each type kimivl reads (random bytes with sane f16 scales)
    kvs = [("general.architecture", 8, "test"), ("general.alignment", 4, 64), ("u8", 0, 200), ("i8", 1, -3), ("u16", 2, 60000),
           ("i16", 3, -300), ("u32", 4, 4000000000), ("i32", 5, -7), ("f32", 6, 1e-5), ("bool", 7, True), ("str", 8, "héllo"),
           ("u64", 10, 2**63 + 5), ("i64", 11, -2**40), ("f64", 12, 0.25), ("arr.str", 9, (8, ["a", "<|im_end|>", ""])),
           ("arr.f32", 9, (6, [1.0, -2.5])), ("arr.bool", 9, (7, [True, False])), ("arr.nested", 9, (9, [(5, [1, 2]), (5, [])]))]
    tensors = [("f32", [4, 2], 0, struct.pack("<8f", *range(8))), ("f16", [3], 1, b"\x00\x3c" * 3), ("bf16", [2, 1], 30, b"\x80\x3f" * 2),
               ("i32", [2], 26, struct.pack("<2i", 5, -5))]
    for typ, (bs, nb) in blocks.items():
        raw = bytearray(rnd.getrandbits(8) for _ in range(2 * nb))
        for b0 in (0, nb):
            raw[b0:b0 + 2] = b"\x00\x30"            # a small f16 scale (d) in front of every block format
        tensors.append(("q%d" % typ, [bs, 2], typ, bytes(raw)))
    tensors.append(("iq2_xxs", [256], 16, bytes(66)))   # a type kimivl can lay out but not compute with
    seed("GgufFuzzTest", "file", "every-type-v3", gguf_file(kvs, tensors, alignment=64))
    seed("GgufFuzzTest", "file", "v2-small", gguf_file([("general.architecture", 8, "clip")], [("t", [32, 1], 8, b"\x00\x3c" + bytes(32))], version=2))
    seed("GgufFuzzTest", "file", "text-q8_0-header-only", gguf_header(os.path.join(GOLDEN, "gguf/text-q8_0.gguf")))
    seed("GgufFuzzTest", "textHeader", "text-q8_0", gguf_header(os.path.join(GOLDEN, "gguf/text-q8_0.gguf")))
    seed("GgufFuzzTest", "mixedHeader", "text-mixed", gguf_header(os.path.join(GOLDEN, "gguf/text-mixed.gguf")))
    seed("GgufFuzzTest", "mmprojHeader", "mmproj-f32", gguf_header(os.path.join(GOLDEN, "gguf/mmproj-f32.gguf")))


# ---- images -----------------------------------------------------------------------------------------------------
def images():
    for name in sorted(os.listdir(IMAGES)):
        if name.endswith((".png", ".jpg", ".gif", ".bmp", ".webp")):
            seed("ImageFuzzTest", "image", name, open(os.path.join(IMAGES, name), "rb").read())
    seed("ImageFuzzTest", "image", "blue-circle.png", open(os.path.join(ROOT, "examples/blue-circle.png"), "rb").read())


# ---- tokenizer --------------------------------------------------------------------------------------------------
def tokenizer():
    import base64
    seed("TokenizerFuzzTest", "tiktokenFile", "tiny-random", open(os.path.join(TINY, "tiktoken.model"), "rb").read())
    seed("TokenizerFuzzTest", "tiktokenFile", "bytes-and-a-merge",
         "".join("%s %d\n" % (base64.b64encode(bytes([b])).decode(), b) for b in range(256)) + base64.b64encode(b"ab").decode() + " 256\n")
    cfg = json.load(open(os.path.join(TINY, "tokenizer_config.json")))
    small = {k: v for k, v in cfg.items() if k != "chat_template"}
    small["added_tokens_decoder"] = dict(list(cfg.get("added_tokens_decoder", {}).items())[:6])
    seed("TokenizerFuzzTest", "tokenizerConfig", "tiny-random-small", json.dumps(small, indent=1))
    seed("TokenizerFuzzTest", "tokenizerConfig", "tiny-random", open(os.path.join(TINY, "tokenizer_config.json"), "rb").read())
    for i, s in enumerate(["Hello, world!", "  leading spaces\n\n\ttabs", "数字123456789 and émoji 😀👍🏽", "<|im_start|>user<|im_end|>",
                           "x" * 300, "'s 've 're ll", "\u00a0\u2003\u3000", "a<|media_pad|>b"]):
        seed("TokenizerFuzzTest", "roundTrip", "s%d" % i, s)
    # ids as little-endian u16 values shifted by 8 (id = v % (vocab + 16) - 8): "Hello" spread in UTF-8 byte tokens, specials
    ids = lambda *v: b"".join(struct.pack("<H", x + 8) for x in v)
    seed("TokenizerFuzzTest", "decodeIds", "bytes-and-specials", ids(72, 101, 108, 108, 111, 240, 159, 152, 128, 1000, 1010, 1023))
    seed("TokenizerFuzzTest", "decodeIds", "split-utf8", ids(0xE6, 0x95, 0xB0, 0xE5, 0xAD))


# ---- chat requests ----------------------------------------------------------------------------------------------
def chat():
    import base64
    png = base64.b64encode(open(os.path.join(IMAGES, "one.png"), "rb").read()).decode()
    bodies = {
        "text": {"model": "kimivl", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                 "temperature": 0, "max_tokens": 8, "stop": ["\n"], "seed": 1},
        "image": {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + png, "detail": "auto"}},
                                                            {"type": "text", "text": "What colour?"}]}], "stream": True,
                  "stream_options": {"include_usage": True}, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1},
        "turns": {"messages": [{"role": "developer", "content": "x"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": None},
                               {"role": "user", "content": [{"type": "text", "text": "b"}]}], "max_completion_tokens": 4,
                  "response_format": {"type": "text"}, "tools": [], "n": 1, "logprobs": False, "presence_penalty": 0},
        "video-part": {"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA"}},
                                                                 {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0="}}]}]},
    }
    for name, b in bodies.items():
        seed("ChatRequestFuzzTest", "body", name, json.dumps(b))



# ---- regression inputs for defects found by review (fixed with them; the fuzzers' own findings are the regress-*
# files renamed from crash-*, kept as Jazzer wrote them) ----------------------------------------------------------
def regressions():
    f32 = lambda *v: struct.pack("<%df" % len(v), *v)
    # a shape whose element count overflows a long: was an ArithmeticException, not a CheckpointException
    seed("SafetensorsFuzzTest", "file", "regress-shape-overflow", st_file([("w", "F32", [2**40, 2**40], b"")]))
    # a GGUF F32 tensor of 2^62 elements: its byte size overflowed (ArithmeticException)
    seed("GgufFuzzTest", "file", "regress-bytes-overflow", gguf_file([("general.architecture", 8, "test")], [("t", [2**62], 0, b"")]))
    # data offset near 2^63: offset + bytes wrapped negative and passed the bounds check
    big = gguf_file([("general.architecture", 8, "test")], [("t", [8], 0, f32(*range(8)))])
    i = big.index(b"\x01\x00\x00\x00" + struct.pack("<Q", 8) + struct.pack("<I", 0)) + 16
    seed("GgufFuzzTest", "file", "regress-offset-wraps", big[:i] + struct.pack("<Q", 2**63 - 32) + big[i + 8:])
    # token_type shorter than tokens: ArrayIndexOutOfBounds in GgufTokenizer
    kv = [("general.architecture", 8, "deepseek2"), ("tokenizer.ggml.model", 8, "gpt2"), ("tokenizer.ggml.pre", 8, "kimi-k2"),
          ("tokenizer.ggml.tokens", 9, (8, ["a", "b", "c"])), ("tokenizer.ggml.token_type", 9, (5, [1]))]
    seed("GgufFuzzTest", "file", "regress-token-type-short", gguf_file(kv, []))
    # stacked experts with ne[2] = 0 in the real Q8_0 header: division by zero in GgufModel
    h = gguf_header(os.path.join(GOLDEN, "gguf/text-q8_0.gguf"))
    name = gguf_str("blk.1.ffn_up_exps.weight")
    i = h.index(name) + len(name)
    nd, = struct.unpack_from("<I", h, i)
    assert nd == 3
    seed("GgufFuzzTest", "textHeader", "regress-zero-experts", h[:i + 4 + 16] + struct.pack("<Q", 0) + h[i + 4 + 24:])
    # a 1-D v.position_embd.weight in an mmproj: ArrayIndexOutOfBounds in GgufConfig
    seed("GgufFuzzTest", "file", "regress-pos-embd-1d",
         gguf_file([("general.architecture", 8, "clip"), ("clip.projector_type", 8, "kimivl")], [("v.position_embd.weight", [16], 0, bytes(64))]))
    # tiktoken.model rank 2e9 on line 1: a table of 2e9 slots (OutOfMemoryError)
    seed("TokenizerFuzzTest", "tiktokenFile", "regress-huge-rank", "QQ== 2000000000\n")
    # added_tokens_decoder ids far past the ranks (a 2e9-slot table), and inside them (blamed on tiktoken.model)
    seed("TokenizerFuzzTest", "tokenizerConfig", "regress-huge-special-id", json.dumps({"added_tokens_decoder": {"2000000000": {"content": "<|x|>"}}}))
    seed("TokenizerFuzzTest", "tokenizerConfig", "regress-special-id-in-ranks", json.dumps({"added_tokens_decoder": {"5": {"content": "<|x|>"}}}))
    # merge_kernel_size with one value: ArrayIndexOutOfBounds in VisionConfig
    c = json.load(open(os.path.join(TINY, "config.json")))
    c["vision_config"]["merge_kernel_size"] = [2]
    seed("SafetensorsFuzzTest", "config", "regress-merge-one-value", json.dumps(c))
    c["vision_config"]["merge_kernel_size"] = [0, 0]
    seed("SafetensorsFuzzTest", "config", "regress-merge-zero", json.dumps(c))


if __name__ == "__main__":
    safetensors()
    gguf()
    images()
    tokenizer()
    chat()
    regressions()
