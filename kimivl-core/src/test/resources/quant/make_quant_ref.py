# Reference data for QuantTest, made with gguf-py 0.19.0 (llama.cpp's numpy quantizers/dequantizers):
#   pip install gguf; python3 make_quant_ref.py
import numpy as np
from gguf.quants import quantize, dequantize
from gguf import GGMLQuantizationType as T
rng = np.random.default_rng(1234)
x = (rng.standard_normal((3, 96)) * rng.uniform(0.01, 3, (3, 1))).astype(np.float32)
x[1, 32:64] = 0  # an all-zero block
x[2, 5] = -7.25   # a negative maximum
x.tofile("x_3x96.f32")
quantize(x, T.Q8_0).tofile("x_3x96.q8_0")
quantize(x, T.Q4_0).tofile("x_3x96.q4_0")
def kblocks(nbytes, dpos):
    b = rng.integers(0, 256, (4, nbytes), dtype=np.uint8)  # 2 rows x 2 super-blocks
    for o in dpos:  # the f16 scales: small finite values
        b[:, o:o+2] = rng.uniform(-0.05, 0.05, 4).astype(np.float16).view(np.uint8).reshape(4, 2)
    return b
q4k = kblocks(144, [0, 2]); q4k.tofile("k_2x512.q4_k")
dequantize(q4k.reshape(2, -1), T.Q4_K).astype(np.float32).tofile("k_2x512.q4_k.f32")
q6k = kblocks(210, [208]); q6k.tofile("k_2x512.q6_k")
dequantize(q6k.reshape(2, -1), T.Q6_K).astype(np.float32).tofile("k_2x512.q6_k.f32")
# The block types llama.cpp mixes into Q4_K_M / Q5_K_M files besides Q4_K/Q6_K/Q8_0: Q5_0 and Q5_1 (its fallbacks for
# Q4_K / Q5_K when a row is not a multiple of 256 long), Q4_1 and Q5_K. Generated after the files above so their rng
# draws, and so their bytes, stay as they were. 4 blocks each: 2 rows x 64 (blocks of 32), 2 rows x 512 (Q5_K).
for name, t, nbytes, dpos in [("b_2x64.q4_1", T.Q4_1, 20, [0, 2]), ("b_2x64.q5_0", T.Q5_0, 22, [0]),
                              ("b_2x64.q5_1", T.Q5_1, 24, [0, 2]), ("k_2x512.q5_k", T.Q5_K, 176, [0, 2])]:
    b = kblocks(nbytes, dpos); b.tofile(name)
    dequantize(b.reshape(2, -1), t).astype(np.float32).tofile(name + ".f32")
