#!/usr/bin/env python3
"""Check that the PyTorch twin (tinymoe_torch) computes exactly what tinymoe computes.

    python3 python/check_equal.py EXPORT_DIR [--tol 1e-5] [--tie-margin 1e-4]
                                             [--doctor weight|transpose|routing|gradient]

EXPORT_DIR is what `tinymoe export --model CKPT --out DIR` writes: model.safetensors,
config.json and reference.safetensors (one fixed batch, tinymoe's results on it in eval mode,
and every parameter after one Adam step on its total loss). This script loads the model with
`tinymoe_torch` (load_state_dict strict=True), runs the same batch in float32 in eval mode and
checks, printing one line per check with its worst difference:

  logits         max|Δ| / max|reference| ≤ tol
  loss.*         every part of the loss the reference holds, |Δ| / |reference| ≤ tol
  routing.*      moe-lm: the router logits (max|Δ| / max|reference| ≤ tol); the chosen experts
                 of every unit identical (first choice first, -1 for padding), a difference
                 allowed only on a tie (two of the unit's top-(k+1) router logits within
                 --tie-margin, in either program); the gates (max|Δ| ≤ tol; gates are ≤ 1) of
                 every unit whose choice agrees; the capacity decisions `kept` of the same units
                 (with a capacity limit, only when every unit's choice agrees: the queue runs
                 over all of them, first choices first, so one flipped tie moves later units)
  gates          classifier dense MoE: the gate probabilities, max|Δ| ≤ tol
  grad.*         when the reference holds the gradients themselves (grad.NAME): each within
                 tol · max|g| of its tensor plus the rounding allowance below
  after_step.*   one torch.optim.Adam/AdamW step (the reference's lr, betas, eps, weight decay;
                 no clipping, constant lr) on the reference's total loss from the same weights:
                 every element of every parameter within tol · max|reference parameter| —
                 unless Adam's first step is ill-conditioned there. That step is
                 lr·g/(|g| + eps), whose sensitivity to g, lr·eps/(|g| + eps)², reaches lr/eps
                 near g = 0: an element whose gradient is within float32 rounding of 0 (a few
                 in 10⁴, e.g. |g| ~ 1e-9 in a tensor whose largest is 1e-3; and every element
                 of an attention key bias, whose gradient is 0 in exact arithmetic because
                 softmax ignores a shift q·b_k common to all of a query's scores) moves by
                 anything up to lr, whichever correct program computes it. Such an element
                 passes when the two steps are explained by gradients that differ by at most
                 100 × the float32 rounding of that gradient element (|g32 − g64|, measured by
                 running the same backward in float64, and at least the tensor's median of
                 it; tinymoe's is another float32 rounding, seen up to ~20× torch's). The
                 summary line says how many elements were judged so, and how close.
                 Note: one Adam step is nearly blind to the scale of a gradient (it moves each
                 element by about lr·sign(g)); it checks the signs, the zeros and, through the
                 small-|g| elements, the scale only roughly (--doctor gradient). A reference
                 with grad.* checks the gradients directly.

Exits 1 if any check fails, 0 when all pass. `--doctor` breaks the loaded model on purpose, to
prove the checker can fail (it must then exit 1):

  weight     adds 1% of the tensor's largest |w| to the first row of the output layer (head,
             the tied token table, the classifier's last layer, expert 0's last layer)
  transpose  loads the first square Linear weight (in module order: the first block's q
             projection, a hidden layer) transposed — [in, out] instead of PyTorch's
             [out, in], the mistake the export's layout exists to avoid; when the model has
             no square matrix, strict loading refuses the transposed shape, which fails too
  routing    changes a routing setting: top-k ↔ Switch-style full-softmax gates (top-k-probs),
             dense → top-(E−1); for a dense mixture classifier: hard top-1 gating. A model
             without routing (transformer_lm, MLP classifier) exits 1 saying so
  gradient   multiplies the output layer's gradient by 1.1 before the Adam step, the forward
             untouched: the grad.* check fails (tinymoe writes grad.*). A reference without
             grad.* leaves only after_step to see it, and one Adam step catches it only where
             the tensor has elements with small |g| (most LM and MoE LM exports, no classifier)
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tinymoe_torch as tt  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from tinymoe_torch.routing import Gating  # noqa: E402

#: parameters whose gradient is zero in exact arithmetic (noted on their lines)
ZERO_GRADIENT_SUFFIXES = (".attn.k.bias",)


class Report:
    def __init__(self, tol: float):
        self.tol = tol
        self.failed = []
        self.lines = 0

    def line(self, ok: bool, name: str, text: str):
        self.lines += 1
        print(f"{'PASS' if ok else 'FAIL'}  {name:<44} {text}")
        if not ok:
            self.failed.append(name)

    def relative(self, name: str, ours: torch.Tensor, ref: torch.Tensor, scale_floor: float = 1e-30):
        """max|Δ| / max|ref| ≤ tol."""
        ours, ref = ours.detach().double(), ref.detach().double()
        if ours.shape != ref.shape:
            self.line(False, name, f"shape {tuple(ours.shape)}, reference {tuple(ref.shape)}")
            return
        if ours.numel() == 0:
            self.line(True, name, "empty")
            return
        if not torch.isfinite(ours).all():
            self.line(False, name, "non-finite values")
            return
        diff = (ours - ref).abs().max().item()
        scale = max(ref.abs().max().item(), scale_floor)
        rel = diff / scale
        self.line(rel <= self.tol, name, f"max|Δ| {diff:.3e}  max|ref| {scale:.3e}  rel {rel:.3e}")

    def absolute(self, name: str, ours: torch.Tensor, ref: torch.Tensor, note: str = ""):
        ours, ref = ours.detach().double(), ref.detach().double()
        if ours.shape != ref.shape:
            self.line(False, name, f"shape {tuple(ours.shape)}, reference {tuple(ref.shape)}")
            return
        diff = (ours - ref).abs().max().item() if ours.numel() else 0.0
        self.line(diff <= self.tol, name, f"max|Δ| {diff:.3e}{note}")


# --- doctoring --------------------------------------------------------------------------------


def output_layer(model: torch.nn.Module, kind: str) -> str:
    """The name of the output layer's weight (head, the tied token table, the last layer)."""
    params = dict(model.named_parameters())
    if "head.weight" in params:
        return "head.weight"
    if kind == "transformer_lm":
        return "embed.tok.weight"  # the tied head
    if "gate.layers.0.weight" in params:
        return f"experts.0.layers.{len(model.experts[0].layers) - 1}.weight"
    return f"layers.{len(model.layers) - 1}.weight"


def doctor_weight(model: torch.nn.Module, kind: str) -> str:
    """Adds 1% of max|w| to the first row of the output layer (the logit of class/token 0)."""
    name = output_layer(model, kind)
    with torch.no_grad():
        w = dict(model.named_parameters())[name]
        w[0] += 0.01 * w.abs().max()
    return f"{name}[0, :] += 1% of max|w|"


def doctor_transpose(state: dict, order) -> tuple[dict, str]:
    """Transposes the first square Linear weight in module order (the first block's q
    projection, or a hidden layer), else the first Linear weight (which strict loading must
    then refuse)."""
    names = [n for n in order if n in state and state[n].ndim == 2 and not n.endswith(("tok.weight", "pos.weight"))]
    square = [n for n in names if state[n].shape[0] == state[n].shape[1]]
    if not names:
        raise SystemExit("check_equal: --doctor transpose: the model has no Linear weight")
    name = square[0] if square else names[0]
    state = dict(state)
    state[name] = state[name].t().contiguous()
    note = "" if square else " (not square: strict loading must refuse it)"
    return state, f"{name} loaded transposed{note}"


class HardTop1Gate(tt.Mlp):
    """A gate MLP whose logits become 0 on the best expert and −∞ elsewhere: the mixture's
    softmax then gives gate 1 to one expert (hard top-1 routing)."""

    def forward(self, x):
        z = super().forward(x)
        return torch.full_like(z, float("-inf")).scatter(1, z.argmax(dim=1, keepdim=True), 0.0)


def doctor_routing(model: torch.nn.Module) -> str:
    if isinstance(model, tt.MoeLM):
        g = model.moe.gating
        n_e = len(model.moe.experts)
        if g.strategy == "top-k":
            new = Gating("top-k-probs", g.k, g.capacity_factor)
        elif g.strategy == "top-k-probs":
            new = Gating("top-k", g.k, g.capacity_factor)
        else:
            new = Gating("top-k", max(1, n_e - 1), g.capacity_factor)
        model.moe.gating = new
        return f"gating {g.strategy}(k={g.k}) → {new.strategy}(k={new.k})"
    if isinstance(model, tt.MixtureClassifier):
        model.gate.__class__ = HardTop1Gate
        return "dense softmax gate → hard top-1"
    raise SystemExit(f"check_equal: --doctor routing: a {type(model).__name__} has no routing to change")


# --- the checks -------------------------------------------------------------------------------


def meta_float(meta: dict, key: str, default=None):
    if key not in meta:
        if default is None:
            raise SystemExit(f"check_equal: reference.safetensors lacks metadata {key!r}")
        return default
    return float(meta[key])


def tie_units(ref_logits: torch.Tensor, our_logits: torch.Tensor, k: int, margin: float, real: torch.Tensor):
    """Two [m] bool masks of the units on a tie (in either program's router logits):
    `order`: two of the top-(k+1) logits within `margin` (the choice or its order may flip);
    `choice`: the k-th and (k+1)-th logits within `margin` (which experts are chosen may flip;
    never for dense routing, k = E)."""
    m, n_e = ref_logits.shape
    order = torch.zeros(m, dtype=torch.bool)
    choice = torch.zeros(m, dtype=torch.bool)
    depth = min(k + 1, n_e)
    for z in (ref_logits, our_logits):
        s = torch.sort(z.detach().double().cpu(), dim=1, descending=True).values
        if depth >= 2:
            gaps = s[:, : depth - 1] - s[:, 1:depth]
            order |= (gaps < margin).any(dim=1)
        if k < n_e:
            choice |= (s[:, k - 1] - s[:, k]) < margin
    return order & real, choice & real


def check_routing(rep: Report, model, out, ref: dict, margin: float):
    r = out.routing
    rep.relative("routing.logits", r.logits, ref["routing.logits"])
    k = r.experts.shape[1]
    real = r.real.cpu()
    amb, amb_choice = tie_units(ref["routing.logits"], r.logits, k, margin, real)
    ref_exp = ref["routing.experts"].round().long()
    ours = r.experts.cpu()
    if ref_exp.shape != ours.shape:
        rep.line(False, "routing.experts", f"shape {tuple(ours.shape)}, reference {tuple(ref_exp.shape)}")
        return
    same = (ours == ref_exp).all(dim=1)
    bad = (~same & ~amb).nonzero(as_tuple=True)[0]
    excused = int((~same & amb).sum())
    text = (f"{int(same.sum())} of {len(same)} units ({int((~real).sum())} padding) identical; "
            f"{int(amb.sum())} on a tie (margin {margin:g}), of which {excused} differ (allowed)")
    if len(bad):
        u = int(bad[0])
        text = (f"{len(bad)} units off ties differ, first unit {u}: ours {ours[u].tolist()}, "
                f"reference {ref_exp[u].tolist()}; " + text)
    rep.line(len(bad) == 0, "routing.experts", text)
    if "routing.gates" in ref:
        # Where the choice agrees the gates must too (a tie that did not flip is no excuse).
        note = f"  ({int(same.sum())} of {len(same)} units: those whose choice agrees)"
        rep.absolute("routing.gates", r.gates.detach().cpu()[same], ref["routing.gates"][same], note)
    if "routing.kept" in ref:
        ref_kept = ref["routing.kept"].round().bool()
        capacity_on = model.moe.gating.capacity_factor is not None and model.moe.gating.strategy != "dense"
        if ref_kept.shape != r.kept.shape:
            rep.line(False, "routing.kept", f"shape {tuple(r.kept.shape)}, reference {tuple(ref_kept.shape)}")
        elif capacity_on and not bool(same.all()):
            # The capacity queue runs over every unit's choices: one flipped tie moves it.
            rep.line(True, "routing.kept", f"not compared: {int((~same).sum())} unit(s) chose differently on a tie, "
                                           "which moves the capacity queue of every later unit")
        else:
            diff = (r.kept.cpu() != ref_kept)[same]
            cap = f"capacity factor {model.moe.gating.capacity_factor:g}" if capacity_on else "no capacity limit"
            rep.line(
                not bool(diff.any()),
                "routing.kept",
                f"{int(diff.sum())} of {diff.numel()} assignment slots differ ({cap}; "
                f"reference kept {int(ref_kept[same].sum())}, dropped {int(((ref_exp >= 0) & ~ref_kept)[same].sum())})",
            )


LOSS_COEF = {"balance": "balance", "z": "z_loss", "token_entropy": "token_entropy", "batch_entropy": "batch_entropy"}


def check_losses(rep: Report, model, out, ref: dict, meta: dict):
    mode = meta.get("reference.losses", "weighted")
    for key in sorted(k for k in ref if k.startswith("loss.")):
        part = key[len("loss."):]
        if part not in out.losses:
            rep.line(False, key, f"the model reports no {part!r} (it has {sorted(out.losses)})")
            continue
        ours = out.losses[part].detach().double().reshape(())
        note = ""
        if mode.startswith("unweighted") and part in LOSS_COEF:
            coef = model.router_loss_cfg.get(LOSS_COEF[part], 0.0)
            if coef != 0.0:
                ours = ours / coef
                note = f" (÷ coefficient {coef:g}: the reference is unweighted)"
        b = ref[key].double().reshape(())
        diff = (ours - b).abs().item()
        scale = abs(b.item())
        rel = 0.0 if diff == 0.0 else diff / max(scale, 1e-30)
        ok = math.isfinite(ours.item()) and rel <= rep.tol
        rep.line(ok, key, f"ours {ours.item():.9g}  reference {b.item():.9g}  |Δ| {diff:.3e}  rel {rel:.3e}{note}")


def gradients(model, run) -> dict:
    """Every parameter's gradient of run(model).loss (zeros where it took no part)."""
    model.zero_grad(set_to_none=True)
    run(model).loss.backward()
    return {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()}


#: how many times torch's own float32 rounding of a gradient element tinymoe's may differ by
ROUNDING_FACTOR = 100.0


def rounding_of(g32: torch.Tensor, g64: torch.Tensor) -> torch.Tensor:
    """Per element, how far float32 rounding moves this gradient: |g32 − g64|, but at least the
    tensor's median of that (an element torch happens to round exactly is not exact in
    another program's float32)."""
    r = (g32.double() - g64.double()).abs()
    if r.numel() > 1:
        r = torch.maximum(r, r.flatten().median())
    return r


def check_step(rep: Report, model, run, ref: dict, meta: dict, doctor_gradient: str = None):
    opt_name = meta.get("reference.optimizer", "adam").lower()
    lr = meta_float(meta, "reference.lr")
    beta1 = meta_float(meta, "reference.beta1", 0.9)
    beta2 = meta_float(meta, "reference.beta2", 0.999)
    eps = meta_float(meta, "reference.eps", 1e-8)
    wd = meta_float(meta, "reference.weight_decay", 0.0)
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(opt_name)
    if cls is None:
        raise SystemExit(f"check_equal: reference.optimizer {opt_name!r} is not adam or adamw")
    # The same gradients in float64: how far float32 rounding alone moves each gradient.
    g64 = gradients(copy.deepcopy(model).double(), run)
    params = dict(model.named_parameters())
    g32 = gradients(model, run)
    rounding = {n: rounding_of(g32[n], g64[n]) for n in params}
    if doctor_gradient:  # after measuring the rounding: the doctor is a bug in the backward, not rounding
        g32[doctor_gradient] = g32[doctor_gradient] * 1.1

    # The gradients themselves, when the reference holds them (grad.NAME): the direct check.
    if any(k.startswith("grad.") for k in ref):
        worst, n_bad = (0.0, None), 0
        for name in sorted(params):
            if f"grad.{name}" not in ref:
                rep.line(False, f"grad.{name}", "missing from the reference")
                n_bad += 1
                continue
            gr, go = ref[f"grad.{name}"].double(), g32[name].double()
            if gr.shape != go.shape:
                rep.line(False, f"grad.{name}", f"shape {tuple(go.shape)}, reference {tuple(gr.shape)}")
                n_bad += 1
                continue
            diff = (go - gr).abs()
            scale = max(gr.abs().max().item(), 1e-30)
            bad = diff > rep.tol * scale + ROUNDING_FACTOR * rounding[name]
            rel = diff.max().item() / scale
            if not name.endswith(ZERO_GRADIENT_SUFFIXES) and rel > worst[0]:
                worst = (rel, name)
            if bool(bad.any()) or rep.verbose:
                n_bad += bool(bad.any())
                rep.line(not bool(bad.any()), f"grad.{name}", f"max|Δ| {diff.max().item():.3e}  max|g| {scale:.3e}  rel {rel:.3e}")
        zero = any(n.endswith(ZERO_GRADIENT_SUFFIXES) for n in params)
        rep.line(n_bad == 0, "grad (all)", f"{len(params)} gradients; worst max|Δ|/max|g| {worst[0]:.3e}"
                 + (f" ({worst[1]})" if worst[1] else "")
                 + ("; attention key biases (0 in exact arithmetic) within rounding" if zero else ""))

    before = {n: p.detach().clone() for n, p in params.items()}
    for n, p in params.items():
        p.grad = g32[n].clone()  # an expert that saw no token, an eval-mode noise layer: g = 0, as tinymoe steps them
    opt = cls(list(params.values()), lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=wd, foreach=False)
    opt.step()
    wanted = {k[len("after_step."):] for k in ref if k.startswith("after_step.")}
    missing, extra = sorted(set(params) - wanted), sorted(wanted - set(params))
    if missing or extra:
        rep.line(False, "after_step (names)", f"parameters without a reference: {missing[:6]}; references without a parameter: {extra[:6]}")
    worst = (0.0, None)  # the plain max|Δ| / max|w| (of tensors with a gradient in exact arithmetic)
    worst_zero = (0.0, None)  # the same of tensors whose gradient is 0 in exact arithmetic
    worst_g = (0.0, None)  # the gradient difference that explains an ill-conditioned element, ÷ rounding
    n_cond, n_zero, n_elems, n_bad = 0, 0, 0, 0
    for name in sorted(set(params) & wanted):
        ours, b = params[name].detach().double(), ref[f"after_step.{name}"].double()
        if ours.shape != b.shape:
            rep.line(False, f"after_step.{name}", f"shape {tuple(ours.shape)}, reference {tuple(b.shape)}")
            n_bad += 1
            continue
        w0 = before[name].double()
        diff = (ours - b).abs()
        scale = max(b.abs().max().item(), 1e-30)
        rel = diff.max().item() / scale
        # Adam's first step is lr·g/(|g| + eps) (g includes wd·w for coupled L2). Its
        # sensitivity to g, lr·eps/(|g| + eps)², reaches lr/eps near g = 0: an element whose
        # gradient is within rounding of 0 moves by up to lr whichever program computes it.
        # Each element passes when the weights agree within tol·max|w|, or when the difference
        # is explained by gradients that differ by no more than δ = ROUNDING_FACTOR × the
        # float32 rounding of that gradient element (torch's, measured against float64).
        # Elements with gradients well away from 0 are thus held to tol·max|w|.
        g = g32[name].double() + (wd * w0 if opt_name == "adam" else 0.0)
        delta = ROUNDING_FACTOR * rounding[name]
        sens = lr * eps / ((g.abs() - delta).clamp(min=0.0) + eps) ** 2
        strict = rep.tol * scale
        bound = strict + sens * delta
        bad = diff > bound
        cond = (diff > strict) & ~bad
        n_elems += diff.numel()
        n_cond += int(cond.sum())
        if bool(cond.any()):
            implied = (((diff - strict) / sens) / rounding[name].clamp(min=1e-45))[cond].max().item()
            if implied > worst_g[0]:
                worst_g = (implied, name)
        ok = not bool(bad.any())
        n_bad += not ok
        if name.endswith(ZERO_GRADIENT_SUFFIXES):
            n_zero += int(cond.sum())
            if rel > worst_zero[0]:
                worst_zero = (rel, name)
        elif rel > worst[0]:
            worst = (rel, name)
        if not ok or rep.verbose:
            text = f"max|Δ| {diff.max().item():.3e}  max|w| {scale:.3e}  rel {rel:.3e}"
            if not ok:
                i = int(((diff - bound) / bound).flatten().argmax())
                text += (f"; {int(bad.sum())} element(s) off, worst at flat index {i}: Δ {diff.flatten()[i].item():.3e}, "
                         f"|g| {g.abs().flatten()[i].item():.3e} (max|g| {g.abs().max().item():.3e})")
            elif bool(cond.any()):
                text += f"; {int(cond.sum())} element(s) with |g| near 0 agree through their gradient"
            if name.endswith(ZERO_GRADIENT_SUFFIXES):
                text += " (its gradient is 0 in exact arithmetic: rounding noise in both programs)"
            rep.line(ok, f"after_step.{name}", text)
    n = len(set(params) & wanted)
    text = (f"{n} parameters ({opt_name}, lr {lr:g}, betas ({beta1:g}, {beta2:g}), eps {eps:g}, weight decay {wd:g}); "
            f"worst max|Δ|/max|w| {worst[0]:.3e}" + (f" ({worst[1]})" if worst[1] else ""))
    if n_cond:
        text += (f"; {n_cond} of {n_elems} elements ({n_zero} of them in attention key biases, whose gradient is 0 in "
                 f"exact arithmetic: max|Δ|/max|w| up to {worst_zero[0]:.2f}) beyond tol·max|w| have |g| within rounding "
                 f"of 0, where Adam's first step lr·g/(|g|+eps) magnifies it: the gradients behind them differ by "
                 f"≤ {worst_g[0]:.1f}× float32's own rounding of that element ({worst_g[1]}; allowed "
                 f"{ROUNDING_FACTOR:g}×)")
    rep.line(n_bad == 0 and n > 0, "after_step (all)", text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("export_dir", help="a folder written by `tinymoe export --out DIR`")
    ap.add_argument("--tol", type=float, default=1e-5, help="relative tolerance (default 1e-5)")
    ap.add_argument("--tie-margin", type=float, default=1e-4, help="router logits closer than this are a tie (default 1e-4)")
    ap.add_argument("--doctor", choices=["weight", "transpose", "routing", "gradient"], help="break the model on purpose: the check must fail (gradient: a diagnostic, see above)")
    ap.add_argument("--reference", help="the reference file (default EXPORT_DIR/reference.safetensors)")
    ap.add_argument("--verbose", action="store_true", help="one line per parameter after the Adam step")
    a = ap.parse_args(argv)
    torch.set_default_dtype(torch.float32)

    ref_path = a.reference or os.path.join(a.export_dir, "reference.safetensors")
    if not os.path.exists(ref_path):
        print(f"check_equal: {ref_path} does not exist (`tinymoe export --model CKPT --out DIR` writes it)", file=sys.stderr)
        return 2
    ex = tt.read_export(a.export_dir)
    model = tt.build(ex.kind, ex.config)
    state = load_file(ex.weights)
    note = None
    if a.doctor == "transpose":
        state, note = doctor_transpose(state, list(model.state_dict()))
    rep = Report(a.tol)
    rep.verbose = a.verbose
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        print(f"doctored: {note}")
        rep.line(False, "load_state_dict(strict=True)", " ".join(str(e).split())[:300])
        print(f"check_equal: FAIL ({len(rep.failed)} of {rep.lines} checks): {', '.join(rep.failed)}")
        return 1
    model.float().eval()
    if a.doctor == "weight":
        note = doctor_weight(model, ex.kind)
    elif a.doctor == "routing":
        note = doctor_routing(model)
    if note:
        print(f"doctored: {note}")

    ref = load_file(ref_path)
    with safe_open(ref_path, framework="pt") as f:
        meta = dict(f.metadata() or {})
    if meta.get("reference.mode", "eval") != "eval":
        print(f"check_equal: the reference was computed in mode {meta.get('reference.mode')!r}; this checker runs eval mode", file=sys.stderr)
        return 2
    print(f"check_equal: {ex.kind} {a.export_dir}  ({json.dumps(ex.config, sort_keys=True)[:160]}…)")

    if ex.kind == "classifier":
        x, y = ref["input"], ref["targets"].round().long()

        def run(m):
            return m(x.to(next(m.parameters()).dtype), y)

    else:
        ids, targets = ref["input"].round().long(), ref["targets"].round().long()
        kwargs = {}
        if ex.kind == "moe-lm":
            if "domains" in ref:
                kwargs["domains"] = ref["domains"].round().long()
            if "routing.assigned" in ref:
                kwargs["assigned"] = ref["routing.assigned"].round().long()

        def run(m):
            return m(ids, targets, **kwargs)

    with torch.no_grad():
        out = run(model)
    rep.relative("logits", out.logits, ref["logits"])
    check_losses(rep, model, out, ref, meta)
    if ex.kind == "moe-lm" and "routing.logits" in ref:
        check_routing(rep, model, out, ref, a.tie_margin)
    if ex.kind == "classifier" and "gates" in ref:
        if out.gates is None:
            rep.line(False, "gates", "the reference has gates, the model none")
        else:
            rep.absolute("gates", out.gates, ref["gates"])
    if any(k.startswith("after_step.") for k in ref):
        target = None
        if a.doctor == "gradient":
            target = output_layer(model, ex.kind)
            print(f"doctored: the gradient of {target} × 1.1 (the forward pass is untouched)")
        check_step(rep, model, run, ref, meta, target)
    else:
        rep.line(False, "after_step", "the reference holds no after_step.* tensors")

    if rep.failed:
        print(f"check_equal: FAIL ({len(rep.failed)} of {rep.lines} checks): {', '.join(rep.failed[:8])}{' …' if len(rep.failed) > 8 else ''}")
        return 1
    print(f"check_equal: OK ({rep.lines} checks, tol {a.tol:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
