"""Routing decisions and router losses, exactly as tinymoe computes them.

`decide` is src/moe/routing.rs, `router_losses` is src/moe/losses.rs. A *unit* is what one
decision is made for: a token (token-level routing) or a sequence (sequence-level routing);
m units, E experts, h [m, E] the logits the decision reads (noisy in training for a noisy
router).

    C(u)    the experts unit u uses: all of them (dense) or the k largest h[u, ·] (top-k),
            ties to the lower index
    S(u)    the experts the softmax runs over: C(u) (renormalised top-k, dense), or every
            expert (`TopKProbs`, Switch Transformer style)
    p[u, e] = exp(h[u, e]) / Σ_{j ∈ S(u)} exp(h[u, j])        g[u, e] = p[u, e] for e ∈ C(u), else 0

Padding units choose nothing. A unit with an `assigned` expert (teacher forcing by a domain
label) goes to it with the constant gate 1. Capacity (top-k only, and only when no unit is
assigned): each expert serves at most ⌈c · k · m_real / E⌉ assignments, first choices of every
unit in unit order first, then second choices, …; an assignment that finds its expert full is
dropped (`kept` = False) but keeps its gate value.

Only the softmax over C(u) is differentiated (the choice is piecewise constant): autograd
through `gates` gives exactly tinymoe's `routing::backward`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional

import torch


@dataclass(frozen=True)
class Gating:
    """tinymoe's `Gating`: strategy "dense", "top-k" (renormalised) or "top-k-probs" (Switch)."""

    strategy: str
    k: int
    capacity_factor: Optional[float] = None

    @staticmethod
    def from_config(g: dict, n_experts: int) -> "Gating":
        """From serde's form of the Rust `Gating` ({"strategy": "Dense" | {"TopK": k} |
        {"TopKProbs": k}, "capacity_factor": c | null})."""
        s = g["strategy"]
        cap = g.get("capacity_factor")
        if s == "Dense":
            return Gating("dense", n_experts, cap)
        if isinstance(s, dict) and "TopK" in s:
            return Gating("top-k", min(int(s["TopK"]), n_experts), cap)
        if isinstance(s, dict) and "TopKProbs" in s:
            return Gating("top-k-probs", min(int(s["TopKProbs"]), n_experts), cap)
        raise ValueError(f"unknown gating strategy {s!r}")


@dataclass
class Routing:
    """One routing decision for m units (token level: m = B·T in row-major order; sequence
    level: m = B)."""

    level: str
    #: the router's clean logits z [m, E] (before noise): what the router losses read
    logits: torch.Tensor
    #: the logits the decision read, h [m, E] (z + noise in training for a noisy router)
    scores: torch.Tensor
    #: g [m, E]: the gate of every chosen (unit, expert), 0 elsewhere
    gates: torch.Tensor
    #: p [m, E]: the softmax over each unit's support S(u)
    probs: torch.Tensor
    #: [m, k] long: the chosen experts, best first, -1 where nothing is chosen (padding, or
    #: the slots after an assigned unit's one expert)
    experts: torch.Tensor
    #: [m, k] bool: the assignment was served (not dropped for capacity)
    kept: torch.Tensor
    #: [m] bool: the unit is real (not padding)
    real: torch.Tensor
    #: assignments dropped for capacity
    dropped: int

    def kept_matrix(self) -> torch.Tensor:
        """[m, E] bool: True where the expert really runs on the unit."""
        return _one_hot_sum(self.experts, self.kept, self.gates.shape[1])

    def dispatch(self) -> torch.Tensor:
        """[m, E] float: 1 where the unit chose the expert (before capacity), the Switch
        loss's fᵢ counts."""
        return _one_hot_sum(self.experts, self.experts >= 0, self.gates.shape[1]).to(self.logits.dtype)


def _one_hot_sum(experts: torch.Tensor, on: torch.Tensor, n_experts: int) -> torch.Tensor:
    m = experts.shape[0]
    out = torch.zeros(m, n_experts, dtype=torch.bool, device=experts.device)
    valid = (experts >= 0) & on
    rows = torch.arange(m, device=experts.device)[:, None].expand_as(experts)
    out[rows[valid], experts[valid]] = True
    return out


def capacity(factor: float, k: int, m_real: int, n_experts: int) -> int:
    """⌈c · k · m_real / E⌉, in f64 as tinymoe computes it."""
    return math.ceil(factor * (k * m_real) / n_experts)


def decide(
    h: torch.Tensor,
    z: torch.Tensor,
    real: torch.Tensor,
    gating: Gating,
    level: str,
    assigned: Optional[torch.Tensor] = None,
) -> Routing:
    """Routes m units from h [m, E] (z [m, E] the clean logits, kept for the losses).

    `real` [m] bool marks real units; `assigned` [m] long (or None) gives, per unit, an expert
    that overrides the router (teacher forcing), or -1 where the router decides.
    """
    m, n_experts = h.shape
    dev = h.device
    k = n_experts if gating.strategy == "dense" else min(gating.k, n_experts)
    if k < 1:
        raise ValueError("routing: k must be ≥ 1")
    # Best first; a stable descending sort puts the lower index first on ties, as tinymoe does.
    order = torch.sort(h.detach(), dim=1, descending=True, stable=True).indices
    chosen = order[:, :k]
    rows = torch.arange(m, device=dev)
    in_c = torch.zeros(m, n_experts, dtype=torch.bool, device=dev)
    in_c[rows[:, None].expand(m, k), chosen] = True
    if gating.strategy == "top-k-probs":
        probs = torch.softmax(h, dim=1)
    else:  # dense (C = every expert) or renormalised top-k: the softmax over C(u)
        probs = torch.softmax(h.masked_fill(~in_c, float("-inf")), dim=1)
    gates = torch.where(in_c, probs, torch.zeros((), dtype=h.dtype, device=dev))

    fixed = torch.zeros(m, dtype=torch.bool, device=dev)
    if assigned is not None:
        assigned = assigned.to(dev).long()
        if assigned.shape != (m,):
            raise ValueError(f"assigned has shape {tuple(assigned.shape)}, expected [{m}]")
        if (assigned >= n_experts).any():
            raise ValueError(f"assigned expert ≥ {n_experts}")
        fixed = (assigned >= 0) & real
        onehot = torch.zeros(m, n_experts, dtype=h.dtype, device=dev)
        onehot[rows[fixed], assigned[fixed]] = 1.0
        gates = torch.where(fixed[:, None], onehot, gates)
        probs = torch.where(fixed[:, None], onehot, probs)
        first = torch.full((m, k), -1, dtype=torch.long, device=dev)
        first[:, 0] = assigned
        chosen = torch.where(fixed[:, None], first, chosen)

    # Padding units choose nothing.
    zero = torch.zeros((), dtype=h.dtype, device=dev)
    gates = torch.where(real[:, None], gates, zero)
    probs = torch.where(real[:, None], probs, zero)
    chosen = torch.where(real[:, None], chosen, torch.full_like(chosen, -1))

    # Capacity: serve first choices of every unit in unit order, then second choices, …
    m_real = int(real.sum())
    limited = gating.strategy != "dense" and gating.capacity_factor is not None and assigned is None
    cap = capacity(gating.capacity_factor, k, m_real, n_experts) if limited else None
    kept = chosen >= 0
    dropped = 0
    if cap is not None:
        load = torch.zeros(n_experts, dtype=torch.long, device=dev)
        kept = torch.zeros(m, k, dtype=torch.bool, device=dev)
        for r in range(k):
            e = chosen[:, r]
            valid = e >= 0
            onehot = torch.nn.functional.one_hot(e.clamp(min=0), n_experts) * valid[:, None]
            position = load[None, :] + torch.cumsum(onehot, dim=0)  # 1-based place in e's queue
            ok = ((onehot > 0) & (position <= cap)).any(dim=1)
            kept[:, r] = ok
            dropped += int((valid & ~ok).sum())
            load = torch.clamp(load + onehot.sum(dim=0), max=cap)
    return Routing(level, z, h, gates, probs, chosen, kept, real, dropped)


def router_losses(cfg: dict, z: torch.Tensor, dispatch: torch.Tensor, real: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The router losses of src/moe/losses.rs on the clean logits z [m, E], over the real units
    only (padding is left out of every sum and every mean's denominator). Each value is
    *weighted* (its coefficient included), as tinymoe's `RouterLossValues` reports it; a term
    whose coefficient is 0 is 0. Returns balance, z, token_entropy, batch_entropy, total.

        balance        α · E · Σᵢ fᵢ Pᵢ     fᵢ = share of the (pre-capacity) choices, constant;
                                           Pᵢ = mean_real softmax(z)ᵢ
        z              β · mean_real (logsumexp z)²
        token_entropy  c · mean_real H(softmax z)
        batch_entropy  c · H(mean_real softmax z)        (0 · ln 0 = 0)
    """
    zero = z.new_zeros(())
    out = {"balance": zero, "z": zero, "token_entropy": zero, "batch_entropy": zero}
    zr = z[real]
    m, n_experts = zr.shape
    if m > 0:
        if cfg.get("balance", 0.0) != 0.0:
            counts = dispatch[real].sum(dim=0)
            assignments = counts.sum()
            if float(assignments) != 0.0:
                f = (counts / assignments).detach()
                big_p = torch.softmax(zr, dim=1).sum(dim=0) / m
                out["balance"] = (cfg["balance"] * n_experts) * (f * big_p).sum()
        if cfg.get("z_loss", 0.0) != 0.0:
            lse = torch.logsumexp(zr, dim=1)
            out["z"] = cfg["z_loss"] * (lse * lse).sum() / m
        if cfg.get("token_entropy", 0.0) != 0.0:
            lp = torch.log_softmax(zr, dim=1)
            h = -(lp.exp() * lp).sum(dim=1)
            out["token_entropy"] = cfg["token_entropy"] * h.sum() / m
        if cfg.get("batch_entropy", 0.0) != 0.0:
            p_mean = torch.softmax(zr, dim=1).sum(dim=0) / m
            pos = p_mean > 0
            safe = torch.where(pos, p_mean, torch.ones_like(p_mean))
            h = -torch.where(pos, p_mean * safe.log(), torch.zeros_like(p_mean)).sum()
            out["batch_entropy"] = cfg["batch_entropy"] * h
    out["total"] = out["balance"] + out["z"] + out["token_entropy"] + out["batch_entropy"]
    return out
