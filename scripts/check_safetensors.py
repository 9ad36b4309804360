#!/usr/bin/env python3
"""Check a safetensors file written by `tinymoe export` with real clients: Python's
`safetensors` package and NumPy (and `safetensors.torch`, if PyTorch is installed).

    python3 scripts/check_safetensors.py MODEL.safetensors MANIFEST.json

MANIFEST.json is what `tinymoe export --manifest` writes: every tensor's PyTorch name, its
shape in the file, tinymoe's own name and shape, whether the file holds the transpose, and the
values in tinymoe's layout (row-major, weights [d_in, d_out]). This script checks, independently
of tinymoe's reader, that:

  - the file holds exactly the manifest's names, as float32, with the manifest's shapes;
  - every value is bit-for-bit the one tinymoe had (transposed back for Linear weights);
  - the documented PyTorch conventions hold: embeddings `embed.tok.weight` [vocab, d_model] and
    `embed.pos.weight`, LayerNorms `…ln1.weight`/`.bias`, Linear weights [out, in]
    (`blocks.0.mlp.layers.0.weight` is [d_ff, d_model]), and `__metadata__["format"] == "pt"`.

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


def main():
    if len(sys.argv) != 3:
        fail("usage: check_safetensors.py MODEL.safetensors MANIFEST.json")
    path, manifest_path = sys.argv[1], sys.argv[2]
    with open(manifest_path) as f:
        manifest = json.load(f)
    tensors = load_file(path)  # {name: np.ndarray}

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

    # The documented conventions, checked from the file alone.
    tok = tensors.get("embed.tok.weight")
    if tok is None or tok.ndim != 2 or "embed.pos.weight" not in tensors:
        fail("no embed.tok.weight [vocab, d_model] / embed.pos.weight")
    d_model = tok.shape[1]
    for name in ["ln_f.weight", "ln_f.bias", "blocks.0.ln1.weight", "blocks.0.ln1.bias"]:
        if name not in tensors or tensors[name].shape != (d_model,):
            fail(f"{name}: expected a LayerNorm parameter of shape ({d_model},)")
    for proj in "qkvo":
        w = tensors.get(f"blocks.0.attn.{proj}.weight")
        if w is None or w.shape != (d_model, d_model):
            fail(f"blocks.0.attn.{proj}.weight: expected ({d_model}, {d_model})")
    fc1 = tensors["blocks.0.mlp.layers.0.weight"]
    fc2 = tensors["blocks.0.mlp.layers.1.weight"]
    d_ff = fc1.shape[0]
    if fc1.shape != (d_ff, d_model) or fc2.shape != (d_model, d_ff):
        fail(f"mlp weights {fc1.shape}, {fc2.shape}: expected [out, in] = ({d_ff}, {d_model}), ({d_model}, {d_ff})")
    if tensors["blocks.0.mlp.layers.0.bias"].shape != (d_ff,):
        fail("blocks.0.mlp.layers.0.bias: expected (d_ff,)")
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata() or {}
    if meta.get("format") != "pt":
        fail(f"__metadata__ format is {meta.get('format')!r}, expected 'pt'")

    extra = ""
    try:
        import torch  # noqa: F401
        from safetensors.torch import load_file as load_torch

        state = load_torch(path)
        if set(state) != set(tensors) or any(state[n].dtype != torch.float32 for n in state):
            fail("safetensors.torch sees different names or dtypes")
        extra = ", and PyTorch loads it"
    except ImportError:
        pass
    n_params = sum(a.size for a in tensors.values())
    print(f"check_safetensors: OK: {len(tensors)} tensors, {n_params} parameters, names, shapes "
          f"and values as documented{extra}")


if __name__ == "__main__":
    main()
