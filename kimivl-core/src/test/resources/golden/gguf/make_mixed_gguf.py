# Writes text-mixed.gguf: the golden config-A text model (../shared/golden/gguf/text-f32.gguf) re-quantized into the
# 32-block ggml types that published k-quant files mix in (Q4_1, Q5_0, Q5_1) by gguf-py 0.19.0 (llama.cpp's numpy
# quantizers). Used by GgufGoldenTest to load such a file end to end.  python3 make_mixed_gguf.py SRC.gguf OUT.gguf
import sys, numpy as np, gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V
src, out = sys.argv[1], sys.argv[2]
r = gguf.GGUFReader(src)
w = gguf.GGUFWriter(out, arch=r.fields['general.architecture'].contents())
for k, f in r.fields.items():
    if k.startswith('GGUF.') or k == 'general.architecture':
        continue
    vt = f.types[0]
    sub = f.types[1] if vt == V.ARRAY else None
    w.add_key_value(k, f.contents(), vt, sub_type=sub)
def pick(name):
    if name.endswith('norm.weight') or 'exp_probs_b' in name or 'ffn_gate_inp' in name or 'attn_k_b' in name:
        return None                       # vectors, the router, and k_b (rows of 16 values) stay F32
    for pat, t in [('token_embd', T.Q4_1), ('output.weight', T.Q5_1), ('attn_q', T.Q5_0), ('attn_kv_a_mqa', T.Q5_1),
                   ('attn_v_b', T.Q4_1), ('attn_output', T.Q5_0), ('_exps', T.Q5_0), ('_shexp', T.Q5_1),
                   ('ffn_', T.Q4_1)]:
        if (name == pat) if pat == 'output.weight' else (pat in name):
            return t
    raise SystemExit('no type for ' + name)
for t in r.tensors:
    data = np.array(t.data, dtype=np.float32)          # numpy order: reversed ggml ne
    q = pick(t.name)
    if q is None:
        w.add_tensor(t.name, data)
    else:
        w.add_tensor(t.name, gguf.quants.quantize(data, q), raw_dtype=q)
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
# and OUT with -dequant before .gguf: the same file with every quantized tensor replaced by gguf-py's dequantization
# (F32), the reference the test compares the mixed file's logits with.
r2 = gguf.GGUFReader(out)
w = gguf.GGUFWriter(out.replace('.gguf', '-dequant.gguf'), arch=r.fields['general.architecture'].contents())
for k, f in r.fields.items():
    if k.startswith('GGUF.') or k == 'general.architecture':
        continue
    vt = f.types[0]
    w.add_key_value(k, f.contents(), vt, sub_type=f.types[1] if vt == V.ARRAY else None)
for t in r2.tensors:
    if t.tensor_type == T.F32:
        w.add_tensor(t.name, np.array(t.data, dtype=np.float32))
    else:
        w.add_tensor(t.name, gguf.quants.dequantize(np.array(t.data), t.tensor_type).astype(np.float32))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
