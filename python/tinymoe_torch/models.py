"""Every tinymoe checkpoint kind as an `nn.Module`, computing exactly what tinymoe computes.

    kind              module              tinymoe
    transformer_lm    TransformerLM       src/models/transformer_lm.rs
    moe-lm            MoeLM               src/models/moe_lm.rs, src/moe/{layer,router,routing,losses}.rs
    classifier        MlpClassifier       src/models/classifier.rs (an MLP, ReLU)
                      MixtureClassifier   src/moe/mixture.rs (a dense softmax-gated MoE of MLPs)

The module trees produce exactly the names `tinymoe export` writes, so
`model.load_state_dict(safetensors.torch.load_file(path), strict=True)` works (see load.py).
`forward` returns the logits, every part of the loss (when targets are given) and, for the
MoE LM, the routing decision: see `LMOutput`, `ClassifierOutput` and `routing.Routing`.

`model.eval()` is tinymoe's eval mode (no dropout, no router noise); `model.train()` its
training mode (dropout in the MLPs, noise on a noisy router's logits, from torch's RNG).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .layers import LN_EPS, Block, Embed, Mlp
from .routing import Gating, Routing, decide, router_losses


@dataclass
class LMOutput:
    """What a language model's forward returns."""

    #: [B, T, vocab]
    logits: torch.Tensor
    #: the total loss (what tinymoe differentiates), None without targets
    loss: Optional[torch.Tensor] = None
    #: every part of the loss by tinymoe's name: "lm" (next-token cross-entropy, padding
    #: targets ignored), and for the MoE LM "balance", "z", "token_entropy",
    #: "batch_entropy" (weighted, as tinymoe reports them), "domain" (unweighted
    #: cross-entropy of the domain classifier; its weight λ is applied in "total"); "total"
    losses: Dict[str, torch.Tensor] = field(default_factory=dict)
    #: the MoE layer's routing decision (MoE LM only)
    routing: Optional[Routing] = None


@dataclass
class ClassifierOutput:
    #: [B, classes]
    logits: torch.Tensor
    loss: Optional[torch.Tensor] = None
    #: "ce" and "total" (equal: a classifier has no other term)
    losses: Dict[str, torch.Tensor] = field(default_factory=dict)
    #: the dense mixture's gate probabilities [B, E] (None for an MLP)
    gates: Optional[torch.Tensor] = None


def _lm_loss(logits: torch.Tensor, targets: torch.Tensor, pad_id: Optional[int]) -> torch.Tensor:
    """Mean cross-entropy over the targets that are not padding (0 when there are none)."""
    flat = logits.reshape(-1, logits.shape[-1])
    t = targets.reshape(-1).long()
    if pad_id is None:
        return F.cross_entropy(flat, t)
    real = t != pad_id
    if not bool(real.any()):
        return flat.sum() * 0.0
    return F.cross_entropy(flat, t, ignore_index=pad_id)


# --- transformer_lm -------------------------------------------------------------------------


class TransformerLM(nn.Module):
    """GPT-style LM: embeddings, pre-LN blocks (causal + key-padding masks), ln_f, head
    (or the token table itself when `tie_head`)."""

    kind = "transformer_lm"

    def __init__(self, config: dict):
        super().__init__()
        c = self.config = dict(config)
        d = c["d_model"]
        self.pad_id = c.get("pad_id")
        self.embed = Embed(c["vocab"], c["max_seq"], d, self.pad_id)
        self.blocks = nn.ModuleList(
            Block(d, c["n_heads"], c["d_ff"], c.get("dropout", 0.0)) for _ in range(c["n_layers"])
        )
        self.ln_f = nn.LayerNorm(d, eps=LN_EPS)
        self.head = None if c["tie_head"] else nn.Linear(d, c["vocab"])

    def key_real(self, ids: torch.Tensor) -> Optional[torch.Tensor]:
        return None if self.pad_id is None else ids != self.pad_id

    def forward(self, ids: torch.Tensor, targets: Optional[torch.Tensor] = None) -> LMOutput:
        ids = ids.long()
        real = self.key_real(ids)
        h = self.embed(ids)
        for block in self.blocks:
            h = block(h, real)
        normed = self.ln_f(h)
        logits = self.head(normed) if self.head is not None else normed @ self.embed.tok.weight.t()
        out = LMOutput(logits)
        if targets is not None:
            lm = _lm_loss(logits, targets, self.pad_id)
            out.loss = lm
            out.losses = {"lm": lm, "total": lm}
        return out


# --- moe-lm ---------------------------------------------------------------------------------


class Router(nn.Module):
    """z = net(x) (Linear, or Linear → ReLU → Linear with router_hidden); a noisy router adds
    ε ⊙ softplus(noise(x)), ε ~ N(0, 1), in training only."""

    def __init__(self, d_in: int, n_experts: int, hidden: Optional[int], noisy: bool):
        super().__init__()
        self.net = Mlp([d_in, hidden, n_experts] if hidden else [d_in, n_experts], act="relu")
        self.noise = nn.Linear(d_in, n_experts) if noisy else None

    def forward(self, x: torch.Tensor):
        """x [m, d] → (clean logits z, the logits routing reads h), both [m, E]."""
        z = self.net(x)
        if self.noise is not None and self.training:
            # softplus(u) = ln(1 + eᵘ), = u above 20: PyTorch's threshold is tinymoe's.
            h = z + torch.randn_like(z) * F.softplus(self.noise(x), beta=1.0, threshold=20.0)
        else:
            h = z
        return z, h


class MlpExpert(nn.Module):
    """d → hidden → d with GELU (tanh), row by row."""

    needs_sequences = False

    def __init__(self, d: int, hidden: int, dropout: float):
        super().__init__()
        self.mlp = Mlp([d, hidden, d], act="gelu-tanh", dropout=dropout)

    def forward(self, x, key_real=None):
        return self.mlp(x)


class StackExpert(nn.Module):
    """A stack of pre-LN blocks over whole sequences (it attends across positions): causal, or
    bidirectional (`bidirectional_experts` in the config: each position also sees the ones
    after it, including the token it predicts — E2's labelled leaking arm)."""

    needs_sequences = True

    def __init__(self, layers: int, d: int, n_heads: int, d_ff: int, dropout: float, causal: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList(Block(d, n_heads, d_ff, dropout) for _ in range(layers))
        self.causal = causal

    def forward(self, x, key_real=None):
        for block in self.blocks:
            x = block(x, key_real, self.causal)
        return x


class MoeLayer(nn.Module):
    """Router + experts + sparse dispatch (src/moe/layer.rs).

        units   token level: every row of x;  sequence level: the mean of each sequence's
                real rows (a sequence with none is a padding unit)
        y[r]    = Σ_{e kept for unit(r)} g[unit(r), e] · expertₑ(x)[r]
        passthrough (stack experts): y[r] += (1 − Σ_{e kept} g[unit(r), e]) · x[r]

    Each expert runs only on what it must see: an MLP expert on exactly its rows (at sequence
    level: the real rows of its sequences); a stack expert on whole sequences (token level:
    every sequence holding a token routed to it, of which only those tokens take its output;
    sequence level: its sequences, whose real rows take its output).
    """

    def __init__(self, d: int, n_experts: int, experts: List[nn.Module], router_hidden, noisy, level, gating, passthrough):
        super().__init__()
        self.router = Router(d, n_experts, router_hidden, noisy)
        self.experts = nn.ModuleList(experts)
        self.level = level
        self.gating = gating
        self.passthrough = passthrough

    def forward(self, x: torch.Tensor, key_real: Optional[torch.Tensor], assigned: Optional[torch.Tensor] = None):
        """x [B, T, d]; key_real [B, T] bool or None → (y [B, T, d], Routing)."""
        b, t, d = x.shape
        n = b * t
        rows = x.reshape(n, d)
        row_real = key_real.reshape(n) if key_real is not None else torch.ones(n, dtype=torch.bool, device=x.device)
        if self.level == "token":
            units, real = rows, row_real
        else:
            rr = row_real.view(b, t)
            lengths = rr.sum(dim=1)
            summed = (x * rr[..., None].to(x.dtype)).sum(dim=1)
            inv = 1.0 / lengths.clamp(min=1).to(x.dtype)
            units, real = summed * inv[:, None], lengths > 0
        z, h = self.router(units)
        r = decide(h, z, real, self.gating, self.level, assigned)
        kept = r.kept_matrix()  # [m, E]
        unit_of = torch.arange(n, device=x.device) if self.level == "token" else torch.arange(n, device=x.device) // t

        y = torch.zeros(n, d, dtype=x.dtype, device=x.device)
        for e, expert in enumerate(self.experts):
            row_kept = kept[unit_of, e]  # [n]
            if not expert.needs_sequences:
                take = row_kept if self.level == "token" else row_kept & row_real
                idx = take.nonzero(as_tuple=True)[0]
                if idx.numel() == 0:
                    continue
                out = expert(rows[idx])
                g = r.gates[unit_of[idx], e]
                y = y.index_add(0, idx, g[:, None] * out)
            else:
                if self.level == "token":
                    seqs = row_kept.view(b, t).any(dim=1).nonzero(as_tuple=True)[0]
                    take = row_kept.view(b, t)
                else:
                    seqs = kept[:, e].nonzero(as_tuple=True)[0]
                    take = row_real.view(b, t)
                if seqs.numel() == 0:
                    continue
                kr = key_real[seqs] if key_real is not None else None
                out = expert(x[seqs], kr)  # [s, T, d]
                take_s = take[seqs]  # [s, T]
                local = out[take_s]  # rows that take the output, in row order
                glob = (seqs[:, None] * t + torch.arange(t, device=x.device)[None, :])[take_s]
                g = r.gates[unit_of[glob], e]
                y = y.index_add(0, glob, g[:, None] * local)
        if self.passthrough:
            kept_gate = (r.gates * kept.to(r.gates.dtype)).sum(dim=1)  # [m]
            y = y + (1.0 - kept_gate[unit_of])[:, None] * rows
        return y.view(b, t, d), r


class MoeLM(nn.Module):
    """The MoE language model (src/models/moe_lm.rs).

        h      = shared blocks(embed(ids))
        MLP experts:    h₁ = h + moe(ln_moe(h))       stack experts:  h₁ = moe(h)
        logits = head(ln_f(h₁))
        total  = CE(logits, targets) + router losses(z) + λ · CE(z, domains)   (domain routing)

    Domain-classifier routing (config `domain_loss` = λ) is sequence-level top-1 routing whose
    router logits z are also a classifier of the sequence's domain. Pass `domains` [B] to get
    the domain loss, and `assigned` [units] (−1: the router decides) to teacher-force.
    """

    kind = "moe-lm"

    def __init__(self, config: dict):
        super().__init__()
        c = self.config = dict(config)
        d, n_e = c["d_model"], c["n_experts"]
        self.pad_id = c.get("pad_id")
        self.domain_loss = c.get("domain_loss")
        self.router_loss_cfg = dict(c.get("router_losses") or {})
        self.embed = Embed(c["vocab"], c["max_seq"], d, self.pad_id)
        self.shared = nn.ModuleList(
            Block(d, c["n_heads"], c["d_ff"], c.get("dropout", 0.0)) for _ in range(c["shared_layers"])
        )
        expert = c["expert"]
        drop = c.get("dropout", 0.0)
        if "Mlp" in expert:
            experts = [MlpExpert(d, expert["Mlp"]["hidden"], drop) for _ in range(n_e)]
            passthrough = False
            self.ln_moe = nn.LayerNorm(d, eps=LN_EPS)
        elif "Stack" in expert:
            causal = not c.get("bidirectional_experts", False)
            experts = [
                StackExpert(expert["Stack"]["layers"], d, c["n_heads"], c["d_ff"], drop, causal) for _ in range(n_e)
            ]
            passthrough = True
            self.ln_moe = None
        else:
            raise ValueError(f"unknown expert kind {expert!r}")
        level = {"Token": "token", "Sequence": "sequence"}[c["level"]]
        gating = Gating.from_config(c["gating"], n_e)
        self.moe = MoeLayer(d, n_e, experts, c.get("router_hidden"), bool(c.get("noisy")), level, gating, passthrough)
        self.ln_f = nn.LayerNorm(d, eps=LN_EPS)
        self.head = nn.Linear(d, c["vocab"])

    def key_real(self, ids: torch.Tensor) -> Optional[torch.Tensor]:
        return None if self.pad_id is None else ids != self.pad_id

    def forward(
        self,
        ids: torch.Tensor,
        targets: Optional[torch.Tensor] = None,
        domains: Optional[torch.Tensor] = None,
        assigned: Optional[torch.Tensor] = None,
    ) -> LMOutput:
        ids = ids.long()
        real = self.key_real(ids)
        h = self.embed(ids)
        for block in self.shared:
            h = block(h, real)
        if self.ln_moe is not None:
            m, routing = self.moe(self.ln_moe(h), real, assigned)
            h1 = h + m
        else:
            h1, routing = self.moe(h, real, assigned)
        logits = self.head(self.ln_f(h1))
        out = LMOutput(logits, routing=routing)
        if targets is None:
            return out
        lm = _lm_loss(logits, targets, self.pad_id)
        losses = {"lm": lm}
        rl = router_losses(self.router_loss_cfg, routing.logits, routing.dispatch(), routing.real)
        losses.update({k: v for k, v in rl.items() if k != "total"})
        total = lm + rl["total"]
        losses["domain"] = lm.new_zeros(())
        if self.domain_loss is not None and domains is not None:
            domain = F.cross_entropy(routing.logits, domains.to(ids.device).long())
            losses["domain"] = domain
            total = total + self.domain_loss * domain
        losses["router"] = rl["total"]
        losses["total"] = total
        out.loss = total
        out.losses = losses
        return out

    def teacher_forcing(self, domains: torch.Tensor, p: float, generator: Optional[torch.Generator] = None):
        """The `assigned` of one training batch under domain routing: each sequence goes to
        its domain's expert with probability p (else the classifier decides), as tinymoe's
        training loop draws it."""
        draw = torch.rand(domains.shape[0], generator=generator) < p
        return torch.where(draw, domains.long().cpu(), torch.full_like(domains.long().cpu(), -1)).to(domains.device)


# --- classifier -----------------------------------------------------------------------------


def _classifier_loss(out: ClassifierOutput, targets: Optional[torch.Tensor]) -> ClassifierOutput:
    if targets is not None:
        ce = F.cross_entropy(out.logits, targets.long())
        out.loss = ce
        out.losses = {"ce": ce, "total": ce}
    return out


class MlpClassifier(Mlp):
    """An MLP d_in → hidden… → classes (ReLU, dropout): its parameters are `layers.j.*`."""

    kind = "classifier"

    def __init__(self, config: dict):
        c = dict(config)
        super().__init__([c["d_in"], *c["hidden"], c["classes"]], act="relu", dropout=c.get("dropout", 0.0))
        self.config = c

    def forward(self, x: torch.Tensor, targets: Optional[torch.Tensor] = None) -> ClassifierOutput:
        return _classifier_loss(ClassifierOutput(super().forward(x)), targets)


class MixtureClassifier(nn.Module):
    """A dense soft mixture: g = softmax(gate(x)), logits = Σₑ g[:, e] · expertₑ(x); the gate
    d_in → gate_hidden… → E and every expert d_in → hidden… → classes, all ReLU."""

    kind = "classifier"

    def __init__(self, config: dict):
        super().__init__()
        c = self.config = dict(config)
        drop = c.get("dropout", 0.0)
        self.gate = Mlp([c["d_in"], *c["gate_hidden"], c["experts"]], act="relu", dropout=drop)
        sizes = [c["d_in"], *c["hidden"], c["classes"]]
        self.experts = nn.ModuleList(Mlp(sizes, act="relu", dropout=drop) for _ in range(c["experts"]))

    def forward(self, x: torch.Tensor, targets: Optional[torch.Tensor] = None) -> ClassifierOutput:
        gates = torch.softmax(self.gate(x), dim=1)
        logits = None
        for e, expert in enumerate(self.experts):
            term = gates[:, e : e + 1] * expert(x)
            logits = term if logits is None else logits + term
        return _classifier_loss(ClassifierOutput(logits, gates=gates), targets)


def build(kind: str, config: dict) -> nn.Module:
    """The module of a checkpoint `kind` with its model `config` (serde's JSON of the Rust
    config, as `tinymoe export` writes it), with freshly initialised weights."""
    if kind == "transformer_lm":
        return TransformerLM(config)
    if kind == "moe-lm":
        return MoeLM(config)
    if kind == "classifier":
        model = config.get("model")
        if model == "mlp":
            return MlpClassifier(config)
        if model == "moe":
            return MixtureClassifier(config)
        raise ValueError(f"classifier config: unknown model {model!r}")
    raise ValueError(f"unknown checkpoint kind {kind!r} (transformer_lm, moe-lm, classifier)")
