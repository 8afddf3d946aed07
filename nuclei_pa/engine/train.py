"""Iteration-based training with exact resume (the paper's schedule: fixed LR, SGD, clipping).

Killed at any moment and restarted with the same arguments, training continues from the last
complete checkpoint (weights, optimiser, RNG) and ends with the same weights as an uninterrupted
run on CPU: batches are a pure function of (seed, iteration), see :mod:`.data`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import resource
import sys
import time
from pathlib import Path

import torch

from nuclei_pa.engine import checkpoint as ckpt
from nuclei_pa.engine.config import TrainConfig
from nuclei_pa.engine.data import NucleusDataset, batch_plan
from nuclei_pa.engine.distributed import (
    barrier,
    check_replicas_agree,
    finish,
    init_world,
    shard,
)
from nuclei_pa.engine.tensors import resolve_device
from nuclei_pa.errors import InputError
from nuclei_pa.io.atomic import atomic_path
from nuclei_pa.model import ModelConfig, build_model, median_box_wh

LOG_NAME = "train_log.csv"


def open_dataset(data: str | Path | tuple[str | Path, str | Path]) -> NucleusDataset:
    """A split folder (images/ + annotations.json) or an (images folder, COCO file) pair."""
    if isinstance(data, tuple):
        return NucleusDataset(*data)
    folder = Path(data)
    if not (folder / "annotations.json").is_file():
        raise InputError(folder / "annotations.json", "file not found (expected a split folder)")
    return NucleusDataset.from_split(folder)


def prepare_model_config(model_cfg: ModelConfig, dataset: NucleusDataset) -> ModelConfig:
    """Fill in the pa module's anchor size from the training annotations when not given."""
    if model_cfg.variant == "pa" and model_cfg.anchor_wh is None:
        return dataclasses.replace(model_cfg, anchor_wh=median_box_wh(dataset.boxes_xywh()))
    return model_cfg


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _write_log(path: Path, rows: list[dict[str, float]]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def _read_log(path: Path, upto: int) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open() as f:
        return [
            {k: float(v) for k, v in row.items()}
            for row in csv.DictReader(f)
            if int(float(row["iteration"])) <= upto
        ]


def train(
    data: str | Path | tuple[str | Path, str | Path],
    out_dir: str | Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    resume: bool = True,
    progress: bool = True,
    stop_after: int | None = None,
) -> Path:
    """Train and return the final checkpoint; checkpoints and ``train_log.csv`` go to ``out_dir``.

    ``stop_after`` ends the run early after that iteration's checkpoint (used to test resume).
    """
    out_dir = Path(out_dir)
    dataset = open_dataset(data)
    device = resolve_device(train_cfg.device)
    world = init_world(device)
    if world.size > 1 and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    model_cfg = prepare_model_config(model_cfg, dataset)
    torch.manual_seed(train_cfg.seed)
    model = build_model(model_cfg).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params, lr=train_cfg.lr, momentum=train_cfg.momentum, weight_decay=train_cfg.weight_decay
    )
    start, rows = 0, []
    last = out_dir / ckpt.LAST
    if resume and last.is_file():
        state = ckpt.load(last)
        if (
            state.get("model_config") != model_cfg.to_dict()
            or state.get("train_config", {}).get("seed") != train_cfg.seed
        ):
            raise InputError(
                last,
                "a different model or seed was trained here; use another output "
                "folder or remove it",
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        ckpt.set_rng_state(state["rng"])
        start = int(state["iteration"])
        rows = _read_log(out_dir / LOG_NAME, start)
    net = model
    if world.size > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True,
        )
    model.train()
    bar = None
    if progress and world.is_main:
        from tqdm import tqdm

        bar = tqdm(
            total=train_cfg.iterations, initial=start, desc="train", unit="it", file=sys.stderr
        )
    iteration = start
    try:
        for iteration in range(start + 1, train_cfg.iterations + 1):
            tic = time.perf_counter()
            plan = shard(
                batch_plan(
                    len(dataset),
                    train_cfg.batch_size,
                    iteration - 1,
                    train_cfg.seed,
                    train_cfg.flips,
                ),
                world,
            )
            images, targets = zip(*[dataset.load(*entry) for entry in plan], strict=True)
            images = [im.to(device) for im in images]
            targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
            losses = net(images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"iteration {iteration}: loss is {float(loss)}; lower lr or clip harder"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if train_cfg.clip_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, train_cfg.clip_grad_norm)
            optimizer.step()
            row = {
                "iteration": iteration,
                "loss": loss.item(),
                **{k: v.item() for k, v in losses.items()},
                "lr": train_cfg.lr,
                "seconds": time.perf_counter() - tic,
                "peak_memory_mb": _peak_memory_mb(device),
            }
            rows.append(row)
            if bar is not None:
                bar.set_postfix(loss=f"{row['loss']:.3f}")
                bar.update(1)
            if iteration % train_cfg.checkpoint_every == 0 or iteration == train_cfg.iterations:
                if world.is_main:
                    _save(out_dir, model, optimizer, iteration, model_cfg, train_cfg, rows)
                barrier(world)
                if stop_after is not None and iteration >= stop_after:
                    break
        check_replicas_agree(model, world)
    finally:
        if bar is not None:
            bar.close()
        finish(world)
    return ckpt.checkpoint_path(out_dir, iteration)


def _save(
    out_dir: Path,
    model,
    optimizer,
    iteration: int,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    rows: list[dict[str, float]],
) -> None:
    weights = {
        "model": model.state_dict(),
        "iteration": iteration,
        "model_config": model_cfg.to_dict(),
        "train_config": train_cfg.to_dict(),
    }
    ckpt.save(ckpt.checkpoint_path(out_dir, iteration), weights)
    _write_log(out_dir / LOG_NAME, rows)
    ckpt.save(
        out_dir / ckpt.LAST,
        {**weights, "optimizer": optimizer.state_dict(), "rng": ckpt.rng_state()},
    )
