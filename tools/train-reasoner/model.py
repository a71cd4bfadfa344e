"""A llama-architecture decoder as weft (and llama.cpp) run it: RMSNorm, RoPE on interleaved
pairs (llama.cpp's 'norm' RoPE type: pair (2i, 2i+1) of each head rotates by pos * theta^(-2i/d)),
grouped-query attention, SwiGLU, tied embeddings. Because RoPE rotates interleaved pairs here,
the Q/K weights export without the permutation HF-layout checkpoints need."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Config:
    def __init__(self, n_vocab, n_embd=192, n_layer=6, n_head=6, n_head_kv=2, n_ff=512, n_ctx=384,
                 rope_theta=10000.0, rms_eps=1e-5):
        self.n_vocab, self.n_embd, self.n_layer = n_vocab, n_embd, n_layer
        self.n_head, self.n_head_kv, self.n_ff, self.n_ctx = n_head, n_head_kv, n_ff, n_ctx
        self.rope_theta, self.rms_eps = rope_theta, rms_eps
        assert n_embd % n_head == 0 and n_head % n_head_kv == 0
        self.head_dim = n_embd // n_head

    def to_dict(self):
        return dict(self.__dict__)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(head_dim, positions, theta):
    """cos/sin [T, head_dim/2] for integer positions [T]."""
    inv = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    ang = positions.to(torch.float32).unsqueeze(-1) * inv
    return torch.cos(ang), torch.sin(ang)


def apply_rope(x, cos, sin):
    """x [B, H, T, D]; cos/sin [T, D/2]; rotates pairs (x[2i], x[2i+1])."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        kv = c.n_head_kv * c.head_dim
        self.attn_norm = RMSNorm(c.n_embd, c.rms_eps)
        self.wq = nn.Linear(c.n_embd, c.n_embd, bias=False)
        self.wk = nn.Linear(c.n_embd, kv, bias=False)
        self.wv = nn.Linear(c.n_embd, kv, bias=False)
        self.wo = nn.Linear(c.n_embd, c.n_embd, bias=False)
        self.ffn_norm = RMSNorm(c.n_embd, c.rms_eps)
        self.w_gate = nn.Linear(c.n_embd, c.n_ff, bias=False)
        self.w_up = nn.Linear(c.n_embd, c.n_ff, bias=False)
        self.w_down = nn.Linear(c.n_ff, c.n_embd, bias=False)

    def forward(self, x, cos, sin, mask):
        c = self.c
        B, T, _ = x.shape
        h = self.attn_norm(x)
        q = self.wq(h).view(B, T, c.n_head, c.head_dim).transpose(1, 2)      # [B, H, T, D]
        k = self.wk(h).view(B, T, c.n_head_kv, c.head_dim).transpose(1, 2)   # [B, Hkv, T, D]
        v = self.wv(h).view(B, T, c.n_head_kv, c.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # GQA without copying K/V: the g query heads of kv head j (heads j*g .. j*g+g-1, as in
        # llama.cpp) are stacked along the time axis and share one matmul with k_j.
        g = c.n_head // c.n_head_kv
        q = q.reshape(B, c.n_head_kv, g * T, c.head_dim) * (1.0 / math.sqrt(c.head_dim))
        att = (q @ k.transpose(-1, -2)).view(B, c.n_head_kv, g, T, T) + mask  # [B, Hkv, g, T, T]
        y = (F.softmax(att, dim=-1).view(B, c.n_head_kv, g * T, T) @ v)       # [B, Hkv, g*T, D]
        y = y.view(B, c.n_head, T, c.head_dim)
        x = x + self.wo(y.transpose(1, 2).reshape(B, T, c.n_embd))
        h = self.ffn_norm(x)
        return x + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))


class Reasoner(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.tok_embd = nn.Embedding(c.n_vocab, c.n_embd)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.output_norm = RMSNorm(c.n_embd, c.rms_eps)
        nn.init.normal_(self.tok_embd.weight, std=0.02)
        for b in self.blocks:
            for lin in (b.wq, b.wk, b.wv, b.w_gate, b.w_up):
                nn.init.normal_(lin.weight, std=0.02)
            # Residual projections scaled down with depth (GPT-2's init) keep early training stable.
            for lin in (b.wo, b.w_down):
                nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * c.n_layer))

    def forward(self, tokens):
        """tokens [B, T], each row one problem from position 0 (padding, if any, after it: causal
        attention keeps real tokens from seeing it). Returns logits [B, T, n_vocab]."""
        T = tokens.shape[1]
        mask = torch.full((T, T), float("-inf")).triu(1)                    # [T, T] causal
        cos, sin = rope_tables(self.c.head_dim, torch.arange(T), self.c.rope_theta)
        x = self.tok_embd(tokens)
        for b in self.blocks:
            x = b(x, cos, sin, mask)
        return self.output_norm(x) @ self.tok_embd.weight.t()

    def n_params(self):
        return sum(p.numel() for p in self.parameters())
