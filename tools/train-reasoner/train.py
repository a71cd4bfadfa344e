"""Trains the reasoner on the generated arithmetic problems (tools/reasoning-data), on CPU.

Each problem becomes [BOS] question "\\n" solution [EOS]; the loss covers only what the model must
produce after the question (from the "\\n" on), so capacity goes to reasoning rather than to
predicting random operands. Each row of a batch is one problem from position 0, exactly as weft runs one
prompt; batches group problems of similar length so little compute goes to padding.

The run lives in runs/<name>/: log.txt (progress), train.pid (for kill -STOP / -CONT around
benchmarks), ckpt.pt (rewritten every --ckpt-every seconds; a rerun of the same command resumes
from it) and final.pt (the trained weights and config, written at the end).
"""
import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vocab  # noqa: E402
from model import Config, Reasoner  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--run", required=True)
p.add_argument("--train", required=True)
p.add_argument("--val", required=True)
p.add_argument("--exclude", nargs="*", default=[], help="jsonl files whose questions must not be trained on")
p.add_argument("--steps", type=int, required=True)
p.add_argument("--batch", type=int, default=16)
p.add_argument("--ctx", type=int, default=256)
p.add_argument("--lr", type=float, default=2e-3)
p.add_argument("--warmup", type=int, default=100)
p.add_argument("--seed", type=int, default=1234)
p.add_argument("--n-embd", type=int, default=192)
p.add_argument("--n-layer", type=int, default=6)
p.add_argument("--n-head", type=int, default=6)
p.add_argument("--n-head-kv", type=int, default=2)
p.add_argument("--n-ff", type=int, default=512)
p.add_argument("--ckpt-every", type=float, default=180.0, help="seconds between checkpoints")
p.add_argument("--eval-every", type=int, default=100)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--init", help="start from these weights (a final.pt) instead of random ones")
args = p.parse_args()

torch.set_num_threads(args.threads)
run_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs", args.run)
os.makedirs(run_dir, exist_ok=True)
with open(os.path.join(run_dir, "train.pid"), "w") as f:
    f.write(f"{os.getpid()}\n")


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def example(prob):
    """(input ids, target ids, loss mask) of one problem."""
    prompt = [vocab.BOS] + vocab.encode(prob["question"])
    ids = prompt + vocab.encode("\n" + prob["solution"]) + [vocab.EOS]
    mask = [0] * (len(prompt) - 1) + [1] * (len(ids) - len(prompt))
    return ids[:-1], ids[1:], mask


def batches(examples, B, seed):
    """One pass over the examples as batches of B similar-length problems (sorted within
    shuffled windows of 64 batches), in shuffled order: padding, and attention over it, stays
    small without packing several problems into one row."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    out = []
    win = 64 * B
    for s in range(0, len(order), win):
        chunk = sorted(order[s:s + win], key=lambda i: len(examples[i][0]))
        out += [chunk[k:k + B] for k in range(0, len(chunk) - B + 1, B)]
    rng.shuffle(out)
    return out


def collate(examples, idx):
    """inputs [B, T] (padded with UNK, which no real input contains) and targets [B, T] (-100
    where not trained)."""
    T = max(len(examples[i][0]) for i in idx)
    x = torch.full((len(idx), T), vocab.UNK, dtype=torch.long)
    y = torch.full((len(idx), T), -100, dtype=torch.long)
    for r, i in enumerate(idx):
        xi, yi, mi = examples[i]
        x[r, :len(xi)] = torch.tensor(xi)
        y[r, :len(yi)] = torch.tensor([t if m else -100 for t, m in zip(yi, mi)])
    return x, y


excluded = set()
for path in args.exclude + [args.val]:
    excluded.update(pr["question"] for pr in read_jsonl(path))
all_train = read_jsonl(args.train)
train = [pr for pr in all_train if pr["question"] not in excluded]
val = read_jsonl(args.val)
log(f"train problems {len(train)} ({len(all_train) - len(train)} dropped: same question text as one of the "
    f"{len(excluded)} val/test questions), val {len(val)}")

train_ex = [e for e in map(example, train) if len(e[0]) <= args.ctx]
val_ex = [example(pr) for pr in val]
n_tok = sum(len(e[0]) for e in train_ex)
log(f"{len(train_ex)} train examples, {n_tok} tokens ({n_tok / len(train_ex):.1f} per problem), "
    f"{sum(sum(e[2]) for e in train_ex)} trained targets")
val_batches = [list(range(i, min(i + 16, len(val_ex)))) for i in range(0, len(val_ex), 16)]

torch.manual_seed(args.seed)
cfg = Config(vocab.N_VOCAB, n_embd=args.n_embd, n_layer=args.n_layer, n_head=args.n_head,
             n_head_kv=args.n_head_kv, n_ff=args.n_ff, n_ctx=args.ctx)
model = Reasoner(cfg)
decay = [p_ for n, p_ in model.named_parameters() if p_.dim() >= 2]
no_decay = [p_ for n, p_ in model.named_parameters() if p_.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=args.lr, betas=(0.9, 0.95))
log(f"model {model.n_params()} params, config {cfg.to_dict()}")

if args.init:
    model.load_state_dict(torch.load(args.init)["model"])
    log(f"initialized from {args.init}")
ckpt_path = os.path.join(run_dir, "ckpt.pt")
state = {"step": 0, "tokens": 0, "targets": 0, "elapsed": 0.0}
if os.path.exists(ckpt_path):
    ck = torch.load(ckpt_path)
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["opt"])
    state = ck["state"]
    torch.set_rng_state(ck["torch_rng"])
    log(f"resumed from step {state['step']}")


def lr_at(step):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def loss_of(x, y):
    logits = model(x)
    return F.cross_entropy(logits.view(-1, cfg.n_vocab), y.view(-1), ignore_index=-100)


@torch.no_grad()
def val_loss():
    model.eval()
    tot, n = 0.0, 0
    for idx in val_batches:
        x, y = collate(val_ex, idx)
        k = (y != -100).sum().item()
        tot += loss_of(x, y).item() * k
        n += k
    model.train()
    return tot / n


def save(path, extra=None):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state,
                "torch_rng": torch.get_rng_state(), "config": cfg.to_dict(), "args": vars(args), **(extra or {})}, tmp)
    os.replace(tmp, path)


t_start = time.time() - state["elapsed"]
t_ckpt = time.time()
t_log, tok_log = time.time(), state["tokens"]
loss_ema = None
model.train()
epoch_batches = {}
while state["step"] < args.steps:
    step = state["step"]
    # A fixed batch order per pass over the data, so a resumed run sees the same batches as an
    # uninterrupted one.
    if not epoch_batches:
        n_per_epoch = len(batches(train_ex, args.batch, args.seed))
    epoch, k = divmod(step, n_per_epoch)
    if epoch not in epoch_batches:
        epoch_batches = {epoch: batches(train_ex, args.batch, args.seed + epoch)}
    x, y = collate(train_ex, epoch_batches[epoch][k])
    for g in opt.param_groups:
        g["lr"] = lr_at(step)
    loss = loss_of(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    state["step"] += 1
    state["tokens"] += int((x != vocab.UNK).sum())  # real tokens: padding is the only UNK input
    state["targets"] += int((y != -100).sum())
    state["elapsed"] = time.time() - t_start
    loss_ema = loss.item() if loss_ema is None else 0.95 * loss_ema + 0.05 * loss.item()
    if state["step"] % 10 == 0 or state["step"] == args.steps:
        now = time.time()
        tps = (state["tokens"] - tok_log) / (now - t_log)
        t_log, tok_log = now, state["tokens"]
        log(f"step {state['step']}/{args.steps} tokens {state['tokens']} targets {state['targets']} "
            f"loss {loss.item():.4f} ema {loss_ema:.4f} lr {lr_at(step):.2e} tok/s {tps:.0f} elapsed {state['elapsed']:.0f}s")
    if state["step"] % args.eval_every == 0 or state["step"] == args.steps:
        state["val_loss"] = val_loss()
        state["train_loss_ema"] = loss_ema
        log(f"step {state['step']} val_loss {state['val_loss']:.4f}")
    if time.time() - t_ckpt > args.ckpt_every or state["step"] == args.steps:
        save(ckpt_path)
        t_ckpt = time.time()
        log(f"checkpoint at step {state['step']}")

save(os.path.join(run_dir, "final.pt"))
log(f"done: {state}")
