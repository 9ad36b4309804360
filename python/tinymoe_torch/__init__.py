"""tinymoe_torch: a PyTorch twin of every tinymoe checkpoint kind.

    import tinymoe_torch as tt
    model = tt.load("EXPORT_DIR")          # or a .safetensors file from `tinymoe export`
    out = model(ids, targets)              # LMOutput: logits, loss, losses, routing
    out.loss.backward()

See python/README.md, and python/check_equal.py for the proof that it computes what tinymoe
computes.
"""

from .layers import Attention, Block, Embed, Mlp
from .load import Export, load, read_export, save
from .models import (
    ClassifierOutput,
    LMOutput,
    MixtureClassifier,
    MlpClassifier,
    MoeLayer,
    MoeLM,
    Router,
    TransformerLM,
    build,
)
from .routing import Gating, Routing, decide, router_losses

__all__ = [
    "Attention",
    "Block",
    "ClassifierOutput",
    "Embed",
    "Export",
    "Gating",
    "LMOutput",
    "MixtureClassifier",
    "Mlp",
    "MlpClassifier",
    "MoeLM",
    "MoeLayer",
    "Router",
    "Routing",
    "TransformerLM",
    "build",
    "decide",
    "load",
    "read_export",
    "router_losses",
    "save",
]
