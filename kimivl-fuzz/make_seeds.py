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
    d = os.path.join(OUT, cls + "Inputs", method)
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


if __name__ == "__main__":
    safetensors()
