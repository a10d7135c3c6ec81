# Reference data for QuantTest (issue 15 item 4: Q2_K, Q3_K, IQ4_NL, IQ4_XS; and the Q5_0 quantizer), made with
# gguf-py 0.19.0 (llama.cpp's numpy (de)quantizers, gguf/quants.py; pure Python + numpy 2.4), run from a scratch folder:
#   pip download gguf==0.19.0 --no-deps; unzip the wheel; PYTHONPATH=<that folder> python3 make_quant_ref_more.py
# (x_3x96.f32 from make_quant_ref.py must be in the working directory.) Its own seed: the older files do not change.
import numpy as np
from gguf.quants import quantize, dequantize
from gguf import GGMLQuantizationType as T
rng = np.random.default_rng(4321)
# random block bytes (2 rows x 2 blocks) with small finite f16 scales at the given byte offsets
def blocks(nbytes, dpos, nblocks=4):
    b = rng.integers(0, 256, (nblocks, nbytes), dtype=np.uint8)
    for o in dpos:
        b[:, o:o+2] = rng.uniform(-0.05, 0.05, nblocks).astype(np.float16).view(np.uint8).reshape(nblocks, 2)
    return b
for name, t, nbytes, dpos in [("k_2x512.q2_k", T.Q2_K, 84, [80, 82]), ("k_2x512.q3_k", T.Q3_K, 110, [108]),
                              ("k_2x512.iq4_xs", T.IQ4_XS, 136, [0]), ("b_2x64.iq4_nl", T.IQ4_NL, 18, [0])]:
    b = blocks(nbytes, dpos); b.tofile(name)
    dequantize(b.reshape(2, -1), t).astype(np.float32).tofile(name + ".f32")
x = np.fromfile("x_3x96.f32", dtype=np.float32).reshape(3, 96)
quantize(x, T.Q5_0).tofile("x_3x96.q5_0")
