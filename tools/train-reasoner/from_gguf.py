"""Reads a reasoner GGUF (F16/F32 tensors, as to-gguf.ts writes it) back into a checkpoint that
train.py --init accepts, so a fine-tune can start from the shipped weights when the original
run directory is gone. F16 rounding of the matrices is the only loss.

  python3 from_gguf.py ../../models/weft-reasoner-2m-f16.gguf runs/base.pt
"""
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vocab  # noqa: E402
from export import tensors  # noqa: E402  (the GGUF name of each parameter)
from model import Config, Reasoner  # noqa: E402

SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
GGML_F32, GGML_F16 = 0, 1


def read_gguf(path):
    buf = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("<Q")
        s = buf[pos:pos + n].decode("utf-8")
        pos += n
        return s

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("<I"), take("<Q")
            return [value(et) for _ in range(n)]
        return take(SCALAR[t])

    if buf[:4] != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    pos = 4
    take("<I")
    n_tensors, n_kv = take("<Q"), take("<Q")
    meta = {}
    for _ in range(n_kv):
        k = string()
        meta[k] = value(take("<I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        dims = [take("<Q") for _ in range(take("<I"))]
        infos.append((name, dims, take("<I"), take("<Q")))
    align = meta.get("general.alignment", 32)
    base = (pos + align - 1) // align * align
    out = {}
    for name, dims, typ, off in infos:
        if typ not in (GGML_F32, GGML_F16):
            raise ValueError(f"{name}: ggml type {typ}; only F32/F16 files can be read back")
        n = int(np.prod(dims))
        arr = np.frombuffer(buf, dtype="<f4" if typ == GGML_F32 else "<f2", count=n, offset=base + off)
        out[name] = arr.astype(np.float32).reshape(dims[::-1])  # ggml ne[0] is PyTorch's last dim
    return meta, out


def main():
    src, dst = sys.argv[1:3]
    meta, ts = read_gguf(src)
    a = "llama."
    cfg = Config(len(meta["tokenizer.ggml.tokens"]), n_embd=meta[a + "embedding_length"],
                 n_layer=meta[a + "block_count"], n_head=meta[a + "attention.head_count"],
                 n_head_kv=meta[a + "attention.head_count_kv"], n_ff=meta[a + "feed_forward_length"],
                 n_ctx=meta[a + "context_length"])
    if meta["tokenizer.ggml.tokens"] != vocab.TOKENS:
        raise ValueError("the file's vocabulary is not vocab.py's")
    model = Reasoner(cfg)
    with torch.no_grad():
        params = dict(tensors(model, cfg))  # name -> numpy view of the parameter
        for name, arr in ts.items():
            if params[name].shape != arr.shape:
                raise ValueError(f"{name}: shape {arr.shape}, model wants {params[name].shape}")
            params[name][...] = arr
    torch.save({"model": model.state_dict(), "config": cfg.to_dict()}, dst)
    print(f"{dst}: {model.n_params()} params from {src}")


if __name__ == "__main__":
    main()
