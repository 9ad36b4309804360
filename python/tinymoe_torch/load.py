"""Reading what `tinymoe export` writes, and writing weights back for `tinymoe import`.

An export is either

  - a folder `DIR/` with `model.safetensors` and `config.json`
    ({"kind", "config", "settings", "domains", "tokenizer"}), and maybe `reference.safetensors`;
  - a folder with only `model.safetensors`, or a `FILE.safetensors` itself: the kind and the
    model config are then read from the file's `__metadata__` (`tinymoe.kind`,
    `tinymoe.config`; the run's settings from `tinymoe.meta`'s `spec`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, Optional

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .models import build


@dataclass
class Export:
    """Everything an export says about its model."""

    kind: str
    #: the model Config (serde JSON of the Rust struct)
    config: dict
    #: the run's settings (optimizer, lr, …), {} when unknown
    settings: dict
    #: the safetensors file of the weights
    weights: str
    #: its `__metadata__` (strings), to write back unchanged
    metadata: Dict[str, str]
    #: the folder, when the export is one
    folder: Optional[str] = None
    domains: Optional[list] = None
    tokenizer: Optional[str] = None
    extra: dict = field(default_factory=dict)


def read_metadata(path: str) -> Dict[str, str]:
    with safe_open(path, framework="pt") as f:
        return dict(f.metadata() or {})


def read_export(path: str) -> Export:
    """Finds the weights, kind, config and settings of an export (see the module doc)."""
    folder = None
    if os.path.isdir(path):
        folder = path
        weights = os.path.join(path, "model.safetensors")
        if not os.path.exists(weights):
            raise FileNotFoundError(f"{path}: no model.safetensors in this folder")
    else:
        weights = path
        if not os.path.exists(weights):
            raise FileNotFoundError(weights)
    meta = read_metadata(weights)
    file_meta = {}
    if "tinymoe.meta" in meta:
        try:
            file_meta = json.loads(meta["tinymoe.meta"])
        except ValueError:
            file_meta = {}
    cfg_path = os.path.join(folder, "config.json") if folder else None
    if cfg_path and os.path.exists(cfg_path):
        with open(cfg_path) as f:
            doc = json.load(f)
        kind, config = doc["kind"], doc["config"]
        settings = doc.get("settings") or file_meta.get("spec") or {}
        domains = doc.get("domains", settings.get("domains"))
        tokenizer = doc.get("tokenizer", file_meta.get("tokenizer"))
        extra = {k: v for k, v in doc.items() if k not in ("kind", "config", "settings", "domains", "tokenizer")}
    else:
        if "tinymoe.kind" not in meta or "tinymoe.config" not in meta:
            raise ValueError(f"{weights}: no config.json beside it and no tinymoe.kind/tinymoe.config in __metadata__")
        kind, config = meta["tinymoe.kind"], json.loads(meta["tinymoe.config"])
        settings = file_meta.get("spec") or {}
        domains = settings.get("domains")
        tokenizer = file_meta.get("tokenizer", settings.get("tokenizer"))
        extra = {}
    return Export(kind, config, settings, weights, meta, folder, domains, tokenizer, extra)


def load(path: str, map_location: str = "cpu", with_export: bool = False):
    """The model of an export (a folder or a .safetensors file), its weights loaded with
    `load_state_dict(strict=True)`, in eval mode. With `with_export`, returns
    (model, Export)."""
    ex = read_export(path)
    model = build(ex.kind, ex.config)
    state = load_file(ex.weights, device=map_location)
    model.load_state_dict(state, strict=True)
    model.to(map_location)
    model.eval()
    return (model, ex) if with_export else model


def save(model: torch.nn.Module, path: str, metadata: Optional[Dict[str, str]] = None) -> None:
    """Writes the model's state_dict as float32 safetensors with `metadata` as `__metadata__`
    (pass the input file's, so `tinymoe import` recognises the kind and config)."""
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    tmp = path + ".tmp"
    save_file(state, tmp, metadata=dict(metadata or {}))
    os.replace(tmp, path)
