#!/usr/bin/env python3
"""Continue training a tinymoe export in PyTorch, on one process or many (torch.distributed).

    torchrun --standalone --nproc_per_node 2 scripts/train_torch.py EXPORT_DIR \\
        --data DATA_DIR --out OUT_DIR [--steps N] [--lr LR] [--batch-size B] [...]
    python3 scripts/train_torch.py EXPORT_DIR --data DATA_DIR --out OUT_DIR   # one process

EXPORT_DIR is what `tinymoe export --model CKPT --out DIR` writes (model.safetensors and
config.json; a bare .safetensors file works too). DATA_DIR is what `tinymoe data export
--model CKPT --out DIR` writes:
  language models   tokens.npy int64 [N, max_len + 1], padded with the pad id (inputs are
                    [:, :-1], targets [:, 1:]), labels.npy int64 [N] (domains), meta.json
                    {"pad_id", "domains", "max_len"}; val_tokens.npy / val_labels.npy optional
  classifiers       x.npy float32 [N, d_in], y.npy int64 [N]; val_x.npy / val_y.npy optional

The model is tinymoe_torch's twin of the checkpoint, wrapped in DistributedDataParallel (gloo
on CPU, nccl when CUDA is available), fed by a DistributedSampler. It trains as tinymoe trains:
the same optimiser (Adam with L2 weight decay, AdamW with decoupled decay, or SGD with momentum,
from the export's settings), the same loss (next-token cross-entropy with padding ignored, plus
the router losses, plus λ·domain cross-entropy under domain routing, teacher-forced with
probability --teacher), the same global-norm clipping and the same learning-rate schedule
(constant, or linear warm-up then cosine to 0 over --steps). `--batch-size` is the global batch
(sequences per optimiser step, split over the ranks), as tinymoe's batch_size. Each rank
computes its losses on its own share of the batch and DDP averages the gradients: the router
losses' batch statistics (Switch balance, batch entropy) are therefore per rank, as in
data-parallel MoE training generally.

Rank 0 prints the loss every step (the mean over ranks), and writes
  OUT_DIR/model.safetensors   the trained weights, same names and the same __metadata__ as the
                              input, so `tinymoe import --weights OUT_DIR/model.safetensors
                              --into ORIGINAL.ckpt --out NEW.ckpt` reads them back
  OUT_DIR/config.json         a copy of the export's (OUT_DIR is itself a loadable export)
  OUT_DIR/ranks.json          every rank's SHA-256 of all its parameters at the end
                              ("checksums", identical across ranks or the run fails), the
                              per-step losses, and the validation loss before and after
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import tinymoe_torch as tt  # noqa: E402


def log(rank: int, *a):
    if rank == 0:
        print(*a, flush=True)


def lr_at(step: int, base: float, schedule: str, warmup: int, total: int, min_lr: float = 0.0) -> float:
    """tinymoe's Schedule::lr_at (src/engine/optim/schedule.rs), step 0-based."""
    if schedule == "constant":
        return base
    if step < warmup:
        return base * (step + 1) / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / max(total - warmup, 1)
    return min_lr + 0.5 * (base - min_lr) * (1.0 + math.cos(math.pi * progress))


def clip_global_norm(params, max_norm: float) -> float:
    """tinymoe's clip_global_norm: scale every gradient by max_norm/‖g‖ when ‖g‖ > max_norm."""
    norm = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in params))
    if norm > max_norm:
        scale = max_norm / norm
        for p in params:
            p.grad.mul_(scale)
    return norm


def checksum(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def lm_arrays(tokens: np.ndarray, pad_id):
    """(ids, targets) as tinymoe's batches build them from padded sequences [N, T + 1]:
    ids[p] = s[p], targets[p] = s[p + 1] while p + 1 is a real position, padding after (so the
    last real token is never an input)."""
    tokens = torch.from_numpy(np.ascontiguousarray(tokens)).long()
    ids, targets = tokens[:, :-1].clone(), tokens[:, 1:].clone()
    if pad_id is not None:
        ids[targets == pad_id] = pad_id
    return ids, targets


def load_data(data_dir: str, kind: str, config: dict, prefix: str = ""):
    """The tensors of one split: (inputs, targets, labels or None)."""

    def npy(name):
        path = os.path.join(data_dir, prefix + name)
        return np.load(path) if os.path.exists(path) else None

    if kind == "classifier":
        x, y = npy("x.npy"), npy("y.npy")
        if x is None or y is None:
            return None
        return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64)), None
    tokens = npy("tokens.npy")
    if tokens is None:
        return None
    meta_path = os.path.join(data_dir, "meta.json")
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    pad = config.get("pad_id")
    if meta.get("pad_id") is not None and pad is not None and int(meta["pad_id"]) != pad:
        raise SystemExit(f"train_torch: the data pads with {meta['pad_id']}, the model with {pad}")
    if tokens.shape[1] - 1 > config["max_seq"]:
        raise SystemExit(f"train_torch: sequences of {tokens.shape[1] - 1} inputs, the model's context is {config['max_seq']}")
    ids, targets = lm_arrays(tokens, pad)
    labels = npy("labels.npy")
    labels = torch.from_numpy(labels.astype(np.int64)) if labels is not None else None
    return ids, targets, labels


def forward(model, kind, batch, device, teacher: float = 0.0, generator=None):
    x, y, labels = batch
    x, y = x.to(device), y.to(device)
    if kind == "classifier":
        return model(x, y)
    if kind == "transformer_lm":
        return model(x, y)
    kwargs = {}
    inner = model.module if hasattr(model, "module") else model
    if labels is not None:
        kwargs["domains"] = labels.to(device)
        if inner.domain_loss is not None and model.training:
            # As tinymoe's loop: training always hands the router an assignment list (all −1
            # when nothing is forced), which also switches capacity off.
            kwargs["assigned"] = inner.teacher_forcing(labels, teacher, generator).to(device)
    return model(x, y, **kwargs)


@torch.no_grad()
def evaluate(model, kind, data, device, batch_size: int) -> float:
    """Mean total loss over the split in eval mode (batch-weighted by real targets for LMs)."""
    if data is None:
        return float("nan")
    was = model.training
    model.eval()
    x, y, labels = data
    total, weight = 0.0, 0
    for i in range(0, len(x), batch_size):
        sl = slice(i, i + batch_size)
        out = forward(model, kind, (x[sl], y[sl], labels[sl] if labels is not None else None), device)
        w = int((y[sl] != model.pad_id).sum()) if kind != "classifier" and model.pad_id is not None else int(y[sl].numel())
        total += float(out.loss.detach()) * w
        weight += w
    model.train(was)
    return total / max(weight, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("export_dir")
    ap.add_argument("--data", required=True, help="a folder written by `tinymoe data export`")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=100, help="optimiser steps (default 100)")
    ap.add_argument("--lr", type=float, help="base learning rate (default: the export's settings)")
    ap.add_argument("--batch-size", type=int, help="global batch: sequences per step over all ranks (default: the export's)")
    ap.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], help="default: the export's")
    ap.add_argument("--weight-decay", type=float, help="default: the export's")
    ap.add_argument("--schedule", choices=["constant", "cosine"], help="default: the export's (cosine: warm-up, then to 0 at --steps)")
    ap.add_argument("--warmup", type=int, help="warm-up steps of the cosine schedule (default: the export's)")
    ap.add_argument("--clip", type=float, help="global gradient-norm cap (default: the export's; 0 = off)")
    ap.add_argument("--teacher", type=float, help="domain routing: teacher-forcing probability (default: the run's final teacher_end)")
    ap.add_argument("--seed", type=int, help="shuffling, dropout and router noise (default: the export's)")
    a = ap.parse_args()

    distributed = "WORLD_SIZE" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) >= 1 and "RANK" in os.environ
    cuda = torch.cuda.is_available()
    if distributed:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", "0"))
    else:
        rank, world, local = 0, 1, 0
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)

    model, ex = tt.load(a.export_dir, with_export=True)
    s = ex.settings or {}
    kind = ex.kind
    opt_name = (a.optimizer or s.get("optimizer") or "adam").lower()
    lr = a.lr if a.lr is not None else float(s.get("lr", 1e-3))
    wd = a.weight_decay if a.weight_decay is not None else float(s.get("weight_decay", 0.0) or 0.0)
    momentum = float(s.get("momentum", 0.9))
    global_batch = a.batch_size or int(s.get("batch_size", 16))
    schedule = a.schedule or s.get("schedule", "constant")
    warmup = a.warmup if a.warmup is not None else int(s.get("warmup_steps", 0) or 0)
    clip = a.clip if a.clip is not None else s.get("clip")
    clip = float(clip) if clip else None
    teacher = a.teacher if a.teacher is not None else float(s.get("teacher_end", 0.0) or 0.0)
    seed = a.seed if a.seed is not None else int(s.get("seed", 0))
    per_rank = max(1, math.ceil(global_batch / world))

    train = load_data(a.data, kind, ex.config)
    if train is None:
        raise SystemExit(f"train_torch: {a.data} holds no {'x.npy/y.npy' if kind == 'classifier' else 'tokens.npy'}")
    val = load_data(a.data, kind, ex.config, prefix="val_")
    if kind == "moe-lm" and model.domain_loss is not None and train[2] is None:
        raise SystemExit("train_torch: domain routing needs labels.npy (the domain of every sequence)")

    torch.manual_seed(seed * 1000 + rank)  # dropout and router noise differ per rank, as per batch
    teacher_gen = torch.Generator().manual_seed(seed * 1000 + rank + 7)
    model.to(device).train()
    ddp = (
        torch.nn.parallel.DistributedDataParallel(
            # An expert that no token of a rank's batch chose takes no part in its backward.
            model, device_ids=[local] if cuda else None, find_unused_parameters=(kind == "moe-lm")
        )
        if distributed
        else model
    )
    params = [p for p in model.parameters() if p.requires_grad]
    if opt_name == "adam":
        opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd, foreach=False)
    elif opt_name == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd, foreach=False)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, foreach=False)

    n = len(train[0])
    indices = torch.utils.data.TensorDataset(torch.arange(n))
    sampler = torch.utils.data.distributed.DistributedSampler(
        indices, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False
    )
    loader = torch.utils.data.DataLoader(indices, batch_size=per_rank, sampler=sampler)

    val_before = evaluate(model, kind, val, device, per_rank * 4) if rank == 0 else float("nan")
    log(rank, f"train_torch: {kind} from {a.export_dir}, {sum(p.numel() for p in params)} parameters, "
              f"{world} rank(s) ({'nccl' if cuda else 'gloo' if distributed else 'single process'}), device {device}")
    log(rank, f"  {n} training examples, global batch {per_rank * world} ({per_rank} per rank), {a.steps} steps, "
              f"{opt_name} lr {lr:g} ({schedule}{f', warm-up {warmup}' if schedule == 'cosine' else ''}), "
              f"weight decay {wd:g}, clip {clip}, teacher forcing {teacher:g}" + (f"; val loss {val_before:.4f}" if val is not None else ""))

    losses = []
    step, epoch, started = 0, 0, time.time()
    while step < a.steps:
        sampler.set_epoch(epoch)
        for (idx,) in loader:
            if step >= a.steps:
                break
            batch = tuple(t[idx] if t is not None else None for t in train)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, lr, schedule, warmup, a.steps)
            opt.zero_grad(set_to_none=True)
            out = forward(ddp, kind, batch, device, teacher, teacher_gen)
            out.loss.backward()
            for p in params:  # tinymoe steps every tensor, an expert that saw nothing with g = 0
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            if clip:
                clip_global_norm(params, clip)
            opt.step()
            parts = torch.stack([out.loss.detach()] + [out.losses[k].detach() for k in ("lm", "ce") if k in out.losses][:1])
            if distributed:
                dist.all_reduce(parts)
                parts /= world
            total = float(parts[0])
            losses.append(total)
            extra = ""
            if kind == "moe-lm":
                r = out.routing
                extra = f"  (lm {float(parts[1]):.4f}, router {float(out.losses['router'].detach()):.4f}, dropped {r.dropped} on rank 0)"
            log(rank, f"step {step + 1}/{a.steps}  loss {total:.4f}{extra}  lr {opt.param_groups[0]['lr']:.3g}")
            step += 1
        epoch += 1
    seconds = time.time() - started

    model.eval()
    mine = checksum(model)
    if distributed:
        sums = [None] * world
        dist.all_gather_object(sums, mine)
    else:
        sums = [mine]
    if rank == 0:
        val_after = evaluate(model, kind, val, device, per_rank * 4)
        os.makedirs(a.out, exist_ok=True)
        tt.save(model, os.path.join(a.out, "model.safetensors"), ex.metadata)
        if ex.folder and os.path.exists(os.path.join(ex.folder, "config.json")):
            shutil.copy(os.path.join(ex.folder, "config.json"), os.path.join(a.out, "config.json"))
        identical = len(set(sums)) == 1
        report = {
            "world_size": world,
            "backend": ("nccl" if cuda else "gloo") if distributed else None,
            "checksums": sums,
            "identical": identical,
            "steps": a.steps,
            "losses": losses,
            "val_loss_before": val_before,
            "val_loss_after": val_after,
            "seconds": seconds,
        }
        with open(os.path.join(a.out, "ranks.json"), "w") as f:
            json.dump(report, f, indent=1)
        log(rank, f"loss {losses[0]:.4f} → {losses[-1]:.4f} over {a.steps} steps ({seconds:.1f} s)"
                  + (f"; val loss {val_before:.4f} → {val_after:.4f}" if val is not None else ""))
        log(rank, f"ranks: {world}, weights {'identical' if identical else 'DIFFER'} (sha256 {sums[0][:16]}…)")
        log(rank, f"wrote {a.out}/model.safetensors, {a.out}/ranks.json")
    ok = len(set(sums)) == 1
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
