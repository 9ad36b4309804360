#!/usr/bin/env python3
"""Check a safetensors file written by `tinymoe export` with real clients: Python's
`safetensors` package and NumPy (and PyTorch, if it is installed).

    python3 scripts/check_safetensors.py MODEL.safetensors MANIFEST.json

MANIFEST.json is what `tinymoe export --manifest` writes: every tensor's PyTorch name, its
shape in the file, tinymoe's own name and shape, whether the file holds the transpose, and the
values in tinymoe's layout (row-major, weights [d_in, d_out]). This script checks, independently
of tinymoe's reader, that:

  - the file holds exactly the manifest's names, as float32, with the manifest's shapes;
  - every value is bit-for-bit the one tinymoe had (transposed back for Linear weights);
  - `__metadata__["format"] == "pt"`, and `tinymoe.kind` / `tinymoe.config` are there;
  - the documented PyTorch conventions of the kind (src/interchange.rs) hold: from the config
    alone this script lists every name and shape the file must hold, and the file holds exactly
    those (no name missing, none extra, every shape equal):
      transformer_lm  embed.tok.weight [vocab, d_model], embed.pos.weight [max_seq, d_model],
                      per block LayerNorms ln1/ln2 [d_model], attn.{q,k,v,o} [d_model, d_model],
                      mlp.layers.0.weight [d_ff, d_model], mlp.layers.1.weight [d_model, d_ff],
                      ln_f, and head.weight [vocab, d_model] unless the head is tied;
      moe-lm          embed.tok/pos, the shared blocks shared.i.… (as an LM block), ln_moe in
                      front of MLP experts, the router moe.router.net.layers.0.weight
                      [router_hidden or E, d_model] … [E, …] (+ moe.router.noise.weight
                      [E, d_model] when noisy), every expert's MLP
                      moe.experts.e.mlp.layers.0.weight [hidden, d_model] and .1 [d_model,
                      hidden] (stack experts: moe.experts.e.blocks.i.… as LM blocks), ln_f,
                      head.weight [vocab, d_model];
      classifier      an MLP layers.j.weight [out, in] from d_in through hidden to classes; a
                      dense MoE gate.layers.j (d_in → gate_hidden → E) and experts.e.layers.j
                      (d_in → hidden → classes);
  - with PyTorch: `safetensors.torch` loads it as float32, and a skeleton of the model built
    from `nn.Embedding`, `nn.LayerNorm`, `nn.Linear` and `nn.ModuleList` under the documented
    names takes it with `load_state_dict(strict=True)` (PyTorch's own [out, in] shapes).

Exits 1 with a message naming the first difference, 0 when all is well.
"""

import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file


def fail(msg):
    print(f"check_safetensors: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


# --- the documented names and shapes of each kind, from its config -------------------------


def linear(out, prefix, d_in, d_out):
    """nn.Linear(d_in, d_out): weight [out, in], bias [out]."""
    out[f"{prefix}.weight"] = (d_out, d_in)
    out[f"{prefix}.bias"] = (d_out,)


def layer_norm(out, prefix, d):
    out[f"{prefix}.weight"] = (d,)
    out[f"{prefix}.bias"] = (d,)


def mlp(out, prefix, sizes):
    """An MLP d_0 → d_1 → … as `layers`, an nn.ModuleList of nn.Linear."""
    layers = f"{prefix}.layers" if prefix else "layers"
    for j, (a, b) in enumerate(zip(sizes, sizes[1:])):
        linear(out, f"{layers}.{j}", a, b)


def block(out, prefix, d, d_ff):
    """A pre-LN transformer block."""
    layer_norm(out, f"{prefix}.ln1", d)
    for proj in "qkvo":
        linear(out, f"{prefix}.attn.{proj}", d, d)
    layer_norm(out, f"{prefix}.ln2", d)
    mlp(out, f"{prefix}.mlp", [d, d_ff, d])


def embed(out, vocab, max_seq, d):
    out["embed.tok.weight"] = (vocab, d)
    out["embed.pos.weight"] = (max_seq, d)


def names_lm(c):
    out = {}
    d = c["d_model"]
    embed(out, c["vocab"], c["max_seq"], d)
    for i in range(c["n_layers"]):
        block(out, f"blocks.{i}", d, c["d_ff"])
    layer_norm(out, "ln_f", d)
    if not c["tie_head"]:  # a tied head is embed.tok.weight itself
        linear(out, "head", d, c["vocab"])
    return out


def expert_kind(c):
    """("mlp", hidden) or ("stack", layers), from the config's serde enum."""
    e = c["expert"]
    if "Mlp" in e:
        return "mlp", e["Mlp"]["hidden"]
    if "Stack" in e:
        return "stack", e["Stack"]["layers"]
    fail(f"moe-lm config: unknown expert kind {e!r}")


def names_moe_lm(c):
    out = {}
    d, n_e = c["d_model"], c["n_experts"]
    embed(out, c["vocab"], c["max_seq"], d)
    for i in range(c["shared_layers"]):
        block(out, f"shared.{i}", d, c["d_ff"])
    kind, size = expert_kind(c)
    if kind == "mlp":  # MLP experts sit inside a residual, behind their own LayerNorm
        layer_norm(out, "ln_moe", d)
    hidden = c.get("router_hidden")
    mlp(out, "moe.router.net", [d, hidden, n_e] if hidden else [d, n_e])
    if c.get("noisy"):
        linear(out, "moe.router.noise", d, n_e)
    for e in range(n_e):
        if kind == "mlp":
            mlp(out, f"moe.experts.{e}.mlp", [d, size, d])
        else:
            for i in range(size):
                block(out, f"moe.experts.{e}.blocks.{i}", d, c["d_ff"])
    layer_norm(out, "ln_f", d)
    linear(out, "head", d, c["vocab"])
    return out


def names_classifier(c):
    out = {}
    sizes = [c["d_in"], *c["hidden"], c["classes"]]
    if c["model"] == "mlp":
        mlp(out, "", sizes)
        return out
    if c["model"] == "moe":
        mlp(out, "gate", [c["d_in"], *c["gate_hidden"], c["experts"]])
        for e in range(c["experts"]):
            mlp(out, f"experts.{e}", sizes)
        return out
    fail(f"classifier config: unknown model {c['model']!r}")


NAMES = {"transformer_lm": names_lm, "moe-lm": names_moe_lm, "classifier": names_classifier}


# --- the same models as PyTorch modules (only the parameters: a skeleton to load into) ------


def torch_skeleton(kind, c):
    from torch import nn

    class Mlp(nn.Module):
        def __init__(self, sizes):
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))

    class Attn(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    class Block(nn.Module):
        def __init__(self, d, d_ff):
            super().__init__()
            self.ln1, self.attn, self.ln2 = nn.LayerNorm(d), Attn(d), nn.LayerNorm(d)
            self.mlp = Mlp([d, d_ff, d])

    class Embed(nn.Module):
        def __init__(self, vocab, max_seq, d):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(max_seq, d)

    m = nn.Module()
    if kind == "transformer_lm":
        d = c["d_model"]
        m.embed = Embed(c["vocab"], c["max_seq"], d)
        m.blocks = nn.ModuleList(Block(d, c["d_ff"]) for _ in range(c["n_layers"]))
        m.ln_f = nn.LayerNorm(d)
        if not c["tie_head"]:
            m.head = nn.Linear(d, c["vocab"])
    elif kind == "moe-lm":
        d, n_e = c["d_model"], c["n_experts"]
        m.embed = Embed(c["vocab"], c["max_seq"], d)
        m.shared = nn.ModuleList(Block(d, c["d_ff"]) for _ in range(c["shared_layers"]))
        ekind, size = expert_kind(c)
        if ekind == "mlp":
            m.ln_moe = nn.LayerNorm(d)
        m.moe = nn.Module()
        m.moe.router = nn.Module()
        hidden = c.get("router_hidden")
        m.moe.router.net = Mlp([d, hidden, n_e] if hidden else [d, n_e])
        if c.get("noisy"):
            m.moe.router.noise = nn.Linear(d, n_e)
        experts = []
        for _ in range(n_e):
            x = nn.Module()
            if ekind == "mlp":
                x.mlp = Mlp([d, size, d])
            else:
                x.blocks = nn.ModuleList(Block(d, c["d_ff"]) for _ in range(size))
            experts.append(x)
        m.moe.experts = nn.ModuleList(experts)
        m.ln_f = nn.LayerNorm(d)
        m.head = nn.Linear(d, c["vocab"])
    else:  # classifier
        sizes = [c["d_in"], *c["hidden"], c["classes"]]
        if c["model"] == "mlp":
            m = Mlp(sizes)
        else:
            m.gate = Mlp([c["d_in"], *c["gate_hidden"], c["experts"]])
            m.experts = nn.ModuleList(Mlp(sizes) for _ in range(c["experts"]))
    return m


def main():
    if len(sys.argv) != 3:
        fail("usage: check_safetensors.py MODEL.safetensors MANIFEST.json")
    path, manifest_path = sys.argv[1], sys.argv[2]
    with open(manifest_path) as f:
        manifest = json.load(f)
    tensors = load_file(path)  # {name: np.ndarray}

    # The manifest: names, dtypes, shapes, values.
    expected = {t["name"]: t for t in manifest["tensors"]}
    if set(tensors) != set(expected):
        fail(f"names differ: only in file {sorted(set(tensors) - set(expected))}, "
             f"only in manifest {sorted(set(expected) - set(tensors))}")
    for name, t in expected.items():
        a = tensors[name]
        if a.dtype != np.float32:
            fail(f"{name}: dtype {a.dtype}, expected float32")
        if list(a.shape) != t["shape"]:
            fail(f"{name}: shape {list(a.shape)}, manifest says {t['shape']}")
        ours = np.array(t["values"], dtype=np.float64).astype(np.float32).reshape(t["our_shape"])
        want = ours.T if t["transposed"] else ours  # tinymoe [d_in, d_out] -> PyTorch [out, in]
        if not np.array_equal(a.view(np.uint32), np.ascontiguousarray(want).view(np.uint32)):
            worst = np.abs(a.astype(np.float64) - want).max()
            fail(f"{name}: values differ (max |diff| {worst})")

    # The metadata.
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata() or {}
    if meta.get("format") != "pt":
        fail(f"__metadata__ format is {meta.get('format')!r}, expected 'pt'")
    kind = meta.get("tinymoe.kind")
    if kind not in NAMES:
        fail(f"__metadata__ tinymoe.kind is {kind!r}; documented kinds: {', '.join(NAMES)}")
    if "kind" in manifest and manifest["kind"] != kind:
        fail(f"the manifest is of a {manifest['kind']!r} model, the file of a {kind!r} model")
    try:
        config = json.loads(meta["tinymoe.config"])
        json.loads(meta["tinymoe.meta"])
    except (KeyError, ValueError) as e:
        fail(f"__metadata__ tinymoe.config / tinymoe.meta missing or not JSON: {e}")

    # The documented conventions of the kind, from its config alone.
    try:
        want = NAMES[kind](config)
    except (KeyError, TypeError) as e:
        fail(f"{kind} config lacks or mistypes {e}: {config}")
    missing = sorted(set(want) - set(tensors))
    extra = sorted(set(tensors) - set(want))
    if missing or extra:
        fail(f"{kind}: the documented names differ: missing {missing[:8]}{'…' if len(missing) > 8 else ''}, "
             f"not documented {extra[:8]}{'…' if len(extra) > 8 else ''}")
    for name, shape in want.items():
        if tensors[name].shape != shape:
            fail(f"{kind}: {name} has shape {tensors[name].shape}, the convention says {shape}")

    extra_note = ""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        from safetensors.torch import load_file as load_torch

        state = load_torch(path)
        if set(state) != set(tensors) or any(state[n].dtype != torch.float32 for n in state):
            fail("safetensors.torch sees different names or dtypes")
        model = torch_skeleton(kind, config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            fail(f"PyTorch's load_state_dict(strict=True) refuses it: {' '.join(str(e).split())[:500]}")
        loaded = model.state_dict()
        for name, a in tensors.items():
            if not np.array_equal(loaded[name].numpy().view(np.uint32), a.view(np.uint32)):
                fail(f"{name}: PyTorch's module holds other values after load_state_dict")
        extra_note = f", and a PyTorch {kind} skeleton loads it with strict=True"
    n_params = sum(a.size for a in tensors.values())
    print(f"check_safetensors: OK: {kind}, {len(tensors)} tensors, {n_params} parameters, names, shapes "
          f"and values as documented{extra_note}")


if __name__ == "__main__":
    main()
