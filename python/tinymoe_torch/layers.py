"""The building blocks of every tinymoe model, as PyTorch modules.

Each module computes exactly what its tinymoe counterpart in src/engine/layers/ computes, and
names its parameters so that `load_state_dict(strict=True)` takes a file written by
`tinymoe export` (the table in src/interchange.rs):

    Mlp         layers.j.{weight,bias}          src/engine/layers/mlp.rs
    Attention   {q,k,v,o}.{weight,bias}          src/engine/layers/attention.rs
    Block       ln1, attn, ln2, mlp              src/engine/layers/transformer_block.rs
    Embed       tok.weight, pos.weight           src/engine/layers/embedding.rs

Conventions that matter for equality:
  - LayerNorm eps is 1e-5 everywhere (tinymoe's `layer_norm::init(d, 1e-5)`).
  - The transformer MLP and the MoE LM's MLP experts use GELU with the tanh approximation
    (`Activation::GeluTanh`, PyTorch's `gelu(approximate="tanh")`); classifiers and routers
    use ReLU.
  - Dropout sits only after the activation of each hidden MLP layer (no attention or
    residual dropout).
  - Attention hides key j from query i when j > i (causal) or key j is padding; a query whose
    keys are all hidden gets all-zero weights (so its output is just the o bias), never NaN.
  - The padding token's embedding row receives no gradient from the lookup (`padding_idx`),
    but a tied head still trains it as an output class, as in tinymoe.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-5


def activation(name: str, x: torch.Tensor) -> torch.Tensor:
    """tinymoe's `Activation`: relu, gelu-erf (exact) or gelu-tanh (GPT-2)."""
    if name == "relu":
        return F.relu(x)
    if name == "gelu-tanh":
        return F.gelu(x, approximate="tanh")
    if name == "gelu-erf":
        return F.gelu(x)
    raise ValueError(f"unknown activation {name!r} (relu, gelu-erf or gelu-tanh)")


class Mlp(nn.Module):
    """Linear → act → dropout, repeated, then a final Linear (no activation).

    `sizes = [d_in, hidden…, d_out]`; the parameters are `layers.j.weight` [out, in] and
    `layers.j.bias` [out], as tinymoe exports them.
    """

    def __init__(self, sizes: Sequence[int], act: str = "relu", dropout: float = 0.0):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"an MLP needs at least [d_in, d_out], got {list(sizes)}")
        self.act = act
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.drop = nn.Dropout(dropout)  # no parameters: does not appear in the state_dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *hidden, last = self.layers
        for layer in hidden:
            x = self.drop(activation(self.act, layer(x)))
        return last(x)


def attention_weights(scores: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """softmax over the last axis with `hidden` entries removed; rows with every entry hidden
    are all zeros (tinymoe's `softmax_inplace` on a row of −∞), with no NaN in the backward."""
    empty = hidden.all(dim=-1, keepdim=True)
    # For an empty row, unhide everything before the softmax (so it stays finite), then zero it.
    probs = torch.softmax(scores.masked_fill(hidden & ~empty, float("-inf")), dim=-1)
    return probs.masked_fill(empty, 0.0)


class Attention(nn.Module):
    """Multi-head scaled dot-product attention with causal and key-padding masks."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        if n_heads <= 0 or d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.q, self.k, self.v, self.o = (nn.Linear(d_model, d_model) for _ in range(4))

    def forward(self, x: torch.Tensor, key_real: Optional[torch.Tensor], causal: bool = True) -> torch.Tensor:
        """x [B, T, D]; key_real [B, T] bool (True = real token) or None → [B, T, D]."""
        b, t, d = x.shape
        h = self.n_heads
        dh = d // h

        def heads(y):  # [B, T, D] → [B, H, T, Dh]: head h is columns h·Dh … (h+1)·Dh
            return y.view(b, t, h, dh).transpose(1, 2)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(dh))  # [B, H, T, T]
        hidden = torch.zeros(b, 1, t, t, dtype=torch.bool, device=x.device)
        if causal:
            hidden = hidden | torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        if key_real is not None:
            hidden = hidden | ~key_real[:, None, None, :]
        probs = attention_weights(scores, hidden.expand(b, h, t, t))
        out = (probs @ v).transpose(1, 2).reshape(b, t, d)
        return self.o(out)


class Block(nn.Module):
    """The pre-LN transformer block: h = x + attn(ln1(x)); y = h + mlp(ln2(h))."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model, eps=LN_EPS)
        self.attn = Attention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model, eps=LN_EPS)
        self.mlp = Mlp([d_model, d_ff, d_model], act="gelu-tanh", dropout=dropout)

    def forward(self, x: torch.Tensor, key_real: Optional[torch.Tensor], causal: bool = True) -> torch.Tensor:
        h = x + self.attn(self.ln1(x), key_real, causal)
        return h + self.mlp(self.ln2(h))


class Embed(nn.Module):
    """y[b, t] = tok[ids[b, t]] + pos[t]; the padding row gets no gradient from the lookup."""

    def __init__(self, vocab: int, max_seq: int, d_model: int, pad_id: Optional[int]):
        super().__init__()
        self.tok = nn.Embedding(vocab, d_model, padding_idx=pad_id)
        self.pos = nn.Embedding(max_seq, d_model)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        if t > self.pos.num_embeddings:
            raise ValueError(f"sequence of {t} tokens, the model's context is {self.pos.num_embeddings}")
        return self.tok(ids) + self.pos.weight[:t]
