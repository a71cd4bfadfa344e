"""Exports a trained reasoner for weft: the weights as raw float32 with a manifest that names
them as GGUF tensors (to-gguf.ts turns that into the GGUF, through lib/gguf/writer.ts), plus
check values for test/reasoner-model.test.ts: PyTorch's logits on a few prompts, computed
with every matrix rounded to F16 first, as the shipped file stores them.

  python3 export.py --ckpt runs/r1/final.pt --out runs/r1/export --fixtures fixtures
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vocab  # noqa: E402
from model import Config, Reasoner  # noqa: E402

CHECK_PROMPTS = [
    "Start at 12. Add 7.\n",
    "Mia has 24 shells. She gives away half of them. Then she finds 9 more. How many shells does she have now?\n",
    "Start at 45. Multiply by 3. Subtract 18. Divide by 9. Add 33.\n12",
    "Leo has 8 cards. He triples them. How many cards does he have now?\n8*3=24\nAnswer: 24",
]
TOP = 8  # logits kept per position


def tensors(model, cfg):
    """(GGUF name, float32 array in PyTorch [out, in] order = ggml [in, out]) in file order."""
    out = [("token_embd.weight", model.tok_embd.weight)]
    for i, b in enumerate(model.blocks):
        p = f"blk.{i}."
        out += [(p + "attn_norm.weight", b.attn_norm.weight), (p + "attn_q.weight", b.wq.weight),
                (p + "attn_k.weight", b.wk.weight), (p + "attn_v.weight", b.wv.weight),
                (p + "attn_output.weight", b.wo.weight), (p + "ffn_norm.weight", b.ffn_norm.weight),
                (p + "ffn_gate.weight", b.w_gate.weight), (p + "ffn_up.weight", b.w_up.weight),
                (p + "ffn_down.weight", b.w_down.weight)]
    out.append(("output_norm.weight", model.output_norm.weight))
    return [(n, t.detach().to(torch.float32).numpy()) for n, t in out]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True, help="directory for weights.bin + manifest.json")
    ap.add_argument("--fixtures", help="directory for check-logits.json")
    a = ap.parse_args()

    ck = torch.load(a.ckpt)
    cfg = Config(**{k: v for k, v in ck["config"].items() if k != "head_dim"})
    model = Reasoner(cfg)
    model.load_state_dict(ck["model"])
    model.eval()

    os.makedirs(a.out, exist_ok=True)
    entries, offset = [], 0
    with open(os.path.join(a.out, "weights.bin"), "wb") as f:
        for name, arr in tensors(model, cfg):
            arr = np.ascontiguousarray(arr, dtype="<f4")
            f.write(arr.tobytes())
            # ggml order: ne[0] is the row length (PyTorch's last dimension).
            entries.append({"name": name, "shape": list(arr.shape[::-1]), "offset": offset})
            offset += arr.nbytes
    st = ck.get("state", {})
    manifest = {
        "config": cfg.to_dict(),
        "tokens": vocab.TOKENS, "scores": vocab.SCORES, "token_types": vocab.TYPES,
        "bos": vocab.BOS, "eos": vocab.EOS, "unk": vocab.UNK,
        "tensors": entries,
        "training": {"args": ck.get("args"), "step": st.get("step"), "tokens": st.get("tokens"),
                     "targets": st.get("targets"), "elapsed_s": st.get("elapsed"),
                     "train_loss_ema": st.get("train_loss_ema"), "val_loss": st.get("val_loss")},
    }
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f)

    if a.fixtures:
        # What weft computes from the F16 file: matrices rounded to F16, norms kept F32.
        with torch.no_grad():
            for p_ in model.parameters():
                if p_.dim() == 2:
                    p_.copy_(p_.half().float())
            cases = []
            for text in CHECK_PROMPTS:
                ids = [vocab.BOS] + vocab.encode(text)
                x = torch.tensor([ids])
                logits = model(x)[0]                                       # [T, n_vocab]
                top = torch.topk(logits, TOP, dim=-1)
                cases.append({"text": text, "tokens": ids,
                              "top_ids": top.indices.tolist(),
                              "top_logits": [[round(v, 5) for v in row] for row in top.values.tolist()]})
        os.makedirs(a.fixtures, exist_ok=True)
        with open(os.path.join(a.fixtures, "check-logits.json"), "w") as f:
            json.dump({"about": "PyTorch logits (top 8 per position) of the shipped reasoner, F16-rounded matrices; "
                                "written by tools/train-reasoner/export.py", "cases": cases}, f)


if __name__ == "__main__":
    main()
