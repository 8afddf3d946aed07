"""Iteration-based training with exact resume: SGD, cosine (or fixed) learning rate, clipping.

Killed at any moment (even ``kill -9``) and started again with the same arguments, training
continues from the newest complete checkpoint and ends with bitwise the same weights as an
uninterrupted run on CPU. Three things make that hold:

* batches are a pure function of ``(seed, iteration)`` (:mod:`.data`);
* every iteration reseeds Python, NumPy and torch (CPU and CUDA) from
  ``(seed, iteration, rank)``, so the model's own random draws (RPN/R-CNN/centre sampling) never
  depend on what ran before: a checkpoint's saved RNG states are restored too, but exactness
  does not rest on them;
* checkpoints hold the weights with every persistent buffer (the pa module's step counter),
  the optimiser's momentum, and are written atomically.

On CUDA the kernels themselves are not bitwise reproducible unless ``deterministic`` is set.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import random
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from nuclei_pa.engine import checkpoint as ckpt
from nuclei_pa.engine.config import SAVED_BEFORE, TRAJECTORY_KEYS, TrainConfig
from nuclei_pa.engine.dataset import InfiniteBatchSampler, NucleusDataset, collate, open_dataset
from nuclei_pa.engine.distributed import (
    World,
    barrier,
    broadcast,
    check_replicas_agree,
    finish,
    init_world,
    mean_over_ranks,
    process_device,
)
from nuclei_pa.engine.tensors import resolve_device
from nuclei_pa.errors import InputError
from nuclei_pa.io.atomic import atomic_path
from nuclei_pa.io.progress import Progress
from nuclei_pa.model import ModelConfig, build_model, median_box_wh

LOG_NAME = "train_log.csv"
DataSource = str | Path | tuple[str | Path, str | Path]


@dataclass
class TrainResult:
    """What a finished (or stopped) run leaves: its last checkpoint and the trained model."""

    checkpoint: Path
    iteration: int
    model: nn.Module


def train(
    data: DataSource,
    out_dir: str | Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    resume: bool = True,
    progress: bool = True,
    stop_after: int | None = None,
    reference: str | Path | None = None,
) -> Path:
    """Train on ``data`` and return the final checkpoint, ``out_dir/ckpt_{iterations:06d}.pt``.

    ``data`` is a split folder or an ``(images folder, COCO file)`` pair. ``out_dir`` gets a
    checkpoint every ``checkpoint_every`` iterations (and at the end), ``last.pt`` (the newest
    one) and ``train_log.csv`` (every loss term of every iteration). With ``resume`` an existing
    run in ``out_dir`` is continued from its newest checkpoint; without it, its checkpoints and
    log are deleted first. ``stop_after`` ends the run after the first checkpoint at or beyond
    that iteration (to test resumption). ``reference``: the training images' full annotations
    (COCO file or split folder), when known, so ``train_log.csv`` also says how many of the pa
    module's centre boxes sit on unlabelled nuclei. Under ``torchrun`` every process calls this.
    """
    return train_model(
        data, out_dir, model_cfg, train_cfg, resume, progress, stop_after, reference
    ).checkpoint


def prepare_model_config(model_cfg: ModelConfig, dataset: NucleusDataset) -> ModelConfig:
    """Fill in the pa module's anchor size, the training set's median nucleus box, if unset."""
    if model_cfg.variant == "pa" and model_cfg.anchor_wh is None:
        boxes = dataset.boxes_xywh()
        if len(boxes) == 0:
            raise InputError(dataset.annotations, "no nucleus is at least 1 px wide and high")
        return dataclasses.replace(model_cfg, anchor_wh=median_box_wh(boxes))
    return model_cfg


def train_model(
    data: DataSource,
    out_dir: str | Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    resume: bool = True,
    progress: bool = True,
    stop_after: int | None = None,
    reference: str | Path | None = None,
) -> TrainResult:
    """:func:`train`, also returning the model (tests compare data-parallel replicas with it)."""
    out_dir = Path(out_dir)
    dataset = open_dataset(data, reference)
    device = resolve_device(train_cfg.device)
    world = init_world(device)
    try:
        device = process_device(device, world)
        if train_cfg.batch_size % world.size:
            raise InputError(
                None,
                f"batch size {train_cfg.batch_size} does not split evenly across "
                f"{world.size} processes",
            )
        model_cfg = prepare_model_config(model_cfg, dataset)
        dataset.intensity = model_cfg.intensity
        dataset.augment = train_cfg.augment
        with _runtime(train_cfg, device):
            return _Run(dataset, out_dir, model_cfg, train_cfg, device, world).run(
                resume, progress, stop_after
            )
    finally:
        finish(world)


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: one, or weights and biases apart when the biases get
    their own rate factor (``lr_factor``, applied at every step) or weight decay."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not cfg.separate_biases:
        return [{"params": [p for _, p in named]}]
    biases = [p for n, p in named if n.endswith(".bias")]
    decay = cfg.weight_decay if cfg.bias_weight_decay is None else cfg.bias_weight_decay
    return [
        {"params": [p for n, p in named if not n.endswith(".bias")]},
        {"params": biases, "lr_factor": cfg.bias_lr_factor, "weight_decay": decay},
    ]


class _Run:
    """One training process's state: model, optimiser, data stream, log."""

    def __init__(
        self,
        dataset: NucleusDataset,
        out_dir: Path,
        model_cfg: ModelConfig,
        cfg: TrainConfig,
        device: torch.device,
        world: World,
    ) -> None:
        self.dataset, self.out_dir, self.model_cfg, self.cfg = dataset, out_dir, model_cfg, cfg
        self.device, self.world = device, world
        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        self.model = build_model(model_cfg).to(device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(
            param_groups(self.model, cfg),
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
        )
        self.fingerprint = dataset.fingerprint()
        self.amp = uses_bf16(cfg.amp, device)

    # -- resuming -------------------------------------------------------------------------
    def _start_point(self, resume: bool) -> tuple[int, Path | None]:
        """Rank 0 picks the checkpoint to continue from (or clears the folder); all ranks follow."""
        choice: tuple[int, Path | None, str | None] = (0, None, None)
        if self.world.is_main:
            ckpt.remove_stale_temporaries(self.out_dir)
            found = ckpt.list_checkpoints(self.out_dir)
            usable = [it for it in found if it <= self.cfg.iterations]
            if not resume:
                for path in [*found.values(), self.out_dir / ckpt.LAST, self.out_dir / LOG_NAME]:
                    path.unlink(missing_ok=True)
            elif usable:
                choice = (usable[-1], found[usable[-1]], None)
            elif found:
                choice = (
                    0,
                    None,
                    f"holds a longer run (checkpoints from iteration {min(found)} on) than the "
                    f"{self.cfg.iterations} iterations asked for; use another output folder, or "
                    "--restart to discard it",
                )
        start, path, problem = broadcast(choice, self.world)
        if problem is not None:  # raised on every rank, so none waits for the others
            raise InputError(self.out_dir, problem)
        return start, path

    def _restore(self, path: Path) -> None:
        state = ckpt.load(path)
        trained = state.get("trained_model_config", state.get("model_config"))
        try:
            saved_model = ModelConfig.from_saved(trained)
        except (TypeError, ValueError) as exc:
            raise InputError(path, f"unusable model_config ({exc})") from exc
        if saved_model != self.model_cfg:
            key = next(
                f.name
                for f in dataclasses.fields(ModelConfig)
                if getattr(saved_model, f.name) != getattr(self.model_cfg, f.name)
            )
            raise _mismatch(
                path, "model", key, getattr(saved_model, key), getattr(self.model_cfg, key)
            )
        saved_train = state.get("train_config", {})
        defaults = TrainConfig()
        for key in TRAJECTORY_KEYS if saved_train else ():
            # a key newer than the checkpoint: it was trained the way the default trains now
            old = saved_train.get(key, SAVED_BEFORE.get(key, getattr(defaults, key)))
            if old != getattr(self.cfg, key):
                raise _mismatch(path, "train", key, old, getattr(self.cfg, key))
        old_iterations = saved_train.get("iterations", self.cfg.iterations)
        if self.cfg.lr_schedule == "cosine" and old_iterations != self.cfg.iterations:
            # the cosine's length is part of every step's learning rate
            raise _mismatch(path, "train", "iterations", old_iterations, self.cfg.iterations)
        saved_data = state.get("data", {}).get("sha256")
        if saved_data is not None and saved_data != self.fingerprint:
            raise InputError(
                path,
                f"was trained on a different {self.dataset.annotations.name}; to fine-tune on new "
                "annotations use --init with this checkpoint and a new output folder, or --restart",
            )
        if "optimizer" not in state:
            raise InputError(path, "holds no optimiser state, so training cannot resume from it")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        ckpt.set_rng_state(state["rng"])

    # -- the loop -------------------------------------------------------------------------
    def run(self, resume: bool, progress: bool, stop_after: int | None) -> TrainResult:
        cfg, world = self.cfg, self.world
        start, path = self._start_point(resume)
        if path is not None:
            self._restore(path)
        if start >= cfg.iterations:
            return TrainResult(ckpt.checkpoint_path(self.out_dir, start), start, self.model)
        net: nn.Module = self.model
        if world.size > 1:
            net = nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True,  # a head may sit out an iteration (no positives)
            )
        self.model.train()
        log = TrainLog(self.out_dir / LOG_NAME, start) if world.is_main else None
        meter = _progress(start, cfg, enabled=progress and world.is_main)
        batches = self._batches(start)
        iteration = start
        try:
            for iteration in range(start + 1, cfg.iterations + 1):
                row = self._step(net, batches, iteration)
                if log is not None:
                    log.append(row)
                _report(meter, iteration, row)
                if iteration % cfg.checkpoint_every == 0 or iteration == cfg.iterations:
                    if world.is_main:
                        assert log is not None
                        log.flush()
                        self._save(iteration)
                    barrier(world)
                    if stop_after is not None and iteration >= stop_after:
                        break
            check_replicas_agree(self.model, world)
        finally:
            meter.close()
            if log is not None:
                log.close()
            del batches  # shuts data-loading workers down
        return TrainResult(ckpt.checkpoint_path(self.out_dir, iteration), iteration, self.model)

    def _batches(self, start: int) -> Iterator[tuple[list[torch.Tensor], list[dict]]]:
        self.sampler = sampler = InfiniteBatchSampler(
            len(self.dataset),
            self.cfg.batch_size,
            self.cfg.seed,
            self.cfg.flips,
            start=start,
            rank=self.world.rank,
            world_size=self.world.size,
            crops=self.dataset.crop_windows(self.cfg.crop_size) if self.cfg.crop_size else None,
            augment=self.cfg.augment.active,
        )
        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.cfg.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        return iter(loader)

    def _step(self, net: nn.Module, batches: Iterator, iteration: int) -> dict[str, float]:
        tic = time.perf_counter()
        seed_iteration(self.cfg.seed, iteration, self.world.rank)
        images, targets = next(batches)
        images = [im.to(self.device, non_blocking=True) for im in images]
        targets = [{k: v.to(self.device, non_blocking=True) for k, v in t.items()} for t in targets]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            losses = net(images, targets)
        losses = {k: v.float() for k, v in losses.items()}
        loss = sum(losses.values())
        terms = torch.stack([loss.detach(), *(v.detach() for v in losses.values())])
        values = dict(
            zip(["loss", *losses], mean_over_ranks(terms, self.world).tolist(), strict=True)
        )
        if not all(math.isfinite(v) for v in values.values()):
            raise FloatingPointError(
                f"iteration {iteration}: loss terms {values} are not finite; lower the learning "
                "rate or clip gradients harder"
            )
        lr = self.cfg.lr_at(iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_factor", 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = self.cfg.clip_grad_norm if self.cfg.clip_grad_norm > 0 else math.inf
        grad_norm = float(nn.utils.clip_grad_norm_(self.params, max_norm))
        self.optimizer.step()
        return {
            "iteration": iteration,
            **values,
            **getattr(self.model, "diagnostics", {}),
            "grad_norm": grad_norm,
            "lr": lr,
            "seconds": time.perf_counter() - tic,
            "peak_memory_mb": _peak_memory_mb(self.device),
        }

    def _save(self, iteration: int) -> None:
        previous = [p for it, p in ckpt.list_checkpoints(self.out_dir).items() if it < iteration]
        path = ckpt.checkpoint_path(self.out_dir, iteration)
        ckpt.save(
            path,
            {
                "format": ckpt.FORMAT,
                "iteration": iteration,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "model_config": ckpt.rebuild_config(self.model_cfg).to_dict(),
                "trained_model_config": self.model_cfg.to_dict(),
                "train_config": self.cfg.to_dict(),
                "rng": ckpt.rng_state(),
                "sampler": self.sampler.state_dict(next_iteration=iteration),
                "data": {"annotations": str(self.dataset.annotations), "sha256": self.fingerprint},
                "world_size": self.world.size,
            },
        )
        ckpt.point_last(path)
        if previous:  # the one before is the only other holding an optimiser (see checkpoint)
            ckpt.drop_optimizer(previous[-1])


def _mismatch(path: Path, kind: str, key: str, old: Any, new: Any) -> InputError:
    return InputError(
        path,
        f"this run was trained with {kind} setting {key}={old!r}, now {new!r}; use another "
        "output folder, or --restart to discard it",
    )


def seed_iteration(seed: int, iteration: int, rank: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU) from (seed, iteration, rank)."""
    words = np.random.SeedSequence([seed, iteration, rank]).generate_state(2, dtype=np.uint32)
    random.seed(int(words[0]))
    np.random.seed(int(words[1]))
    torch.manual_seed((int(words[0]) << 32) | int(words[1]))


def uses_bf16(amp: str, device: torch.device) -> bool:
    """Whether training setting ``amp`` autocasts to bfloat16 on ``device`` (see TrainConfig)."""
    if amp != "auto":
        return amp == "bf16"
    if device.type == "cuda":
        return False  # not yet measured against float32 on GPUs: bf16 only when asked for
    return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()


@contextlib.contextmanager
def _runtime(cfg: TrainConfig, device: torch.device) -> Iterator[None]:
    """Thread count and deterministic kernels for the run; the caller's settings come back after."""
    threads = torch.get_num_threads()
    deterministic = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    fill = torch.utils.deterministic.fill_uninitialized_memory
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cpu" or cfg.deterministic:
        # warn_only: an op without a deterministic kernel warns instead of stopping the run.
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = False  # costs time, buys nothing
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        torch.utils.deterministic.fill_uninitialized_memory = fill
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class TrainLog:
    """``train_log.csv``: one row per iteration, appended as training goes.

    Opening it for a run resumed at iteration ``start`` keeps exactly the complete rows up to
    ``start`` (rows of iterations redone after a kill, and a torn last line, are dropped), so
    the finished log has each iteration once, in order.
    """

    def __init__(self, path: Path, start: int) -> None:
        self.path = path
        self.fields: list[str] | None = None
        kept: list[dict[str, str]] = []
        if path.is_file():
            kept, self.fields = _complete_rows(path, start)
        if path.exists() or kept:
            with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
                if self.fields and kept:
                    writer = csv.DictWriter(f, self.fields)
                    writer.writeheader()
                    writer.writerows(kept)
        if not kept:
            self.fields = None
        self.file = None

    def append(self, row: dict[str, float]) -> None:
        if self.file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = self.fields is None
            if fresh:
                self.fields = list(row)
            self.file = self.path.open("a", newline="")
            self.writer = csv.DictWriter(self.file, self.fields, extrasaction="ignore")
            if fresh:
                self.writer.writeheader()
        self.writer.writerow(row)

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _complete_rows(path: Path, upto: int) -> tuple[list[dict[str, str]], list[str] | None]:
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or "iteration" not in header:
            return [], None
        rows = []
        for values in reader:
            if len(values) != len(header):
                continue
            try:
                it = int(float(values[header.index("iteration")]))
                [float(v) for v in values]
            except ValueError:
                continue
            if it <= upto and (not rows or it > int(float(rows[-1]["iteration"]))):
                rows.append(dict(zip(header, values, strict=True)))
    return rows, header


def _progress(start: int, cfg: TrainConfig, enabled: bool) -> Progress:
    """Training's progress: the loss on the bar, every loss term in a line every ``log_every``."""
    return Progress(cfg.iterations, "train", enabled, cfg.log_every, start=start, rate=True)


def _report(meter: Progress, iteration: int, row: dict[str, float]) -> None:
    terms = " ".join(
        f"{k.removeprefix('loss_')}={v:.4f}" for k, v in row.items() if k.startswith("loss")
    )
    meter.update(iteration, postfix={"loss": f"{row['loss']:.4f}"}, detail=terms)
