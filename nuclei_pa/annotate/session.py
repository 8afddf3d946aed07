"""Computer-assisted annotation rounds (paper §III.D, Fig. 7).

One round: train a pa model on the annotator's partial annotations of the very images to be
annotated (the paper: 200 iterations), predict those images, keep the annotator's instances
exactly and add every detection that overlaps none of them as a scored proposal, then write
the result in every format an annotator edits (see :mod:`.layout` for the folder). Round N
reads the corrected output of round N−1, starts from its model (``init`` = its last
checkpoint), and does the same again. The session is done when a round shows fewer new
proposals than ``min_new``: the model finds nothing more worth reviewing.

Everything the user gives is read and checked before anything is written; a round folder
appears complete or not at all, and an interrupted round resumes its training from the hidden
``.round_NN.work/`` folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nuclei_pa.annotate.export import write_review_files
from nuclei_pa.annotate.inputs import Corrections, list_session_images, read_corrections
from nuclei_pa.annotate.layout import (
    DONE_FILE,
    REPORT_CSV,
    REPORT_PNG,
    ROUND_FILE,
    ImageRef,
    completed_rounds,
    digest,
    editable_files,
    instances_document,
    masks_by_round,
    read_exact,
    read_round_record,
    read_state_document,
    round_dir,
    work_dir,
)
from nuclei_pa.annotate.merge import merge
from nuclei_pa.annotate.report import score_quantiles, write_report
from nuclei_pa.annotate.review import review, suppress_rejected
from nuclei_pa.engine.config import TrainConfig
from nuclei_pa.engine.predict import DEFAULTS as PREDICT_DEFAULTS
from nuclei_pa.errors import InputError
from nuclei_pa.io.annotation import Annotation
from nuclei_pa.io.atomic import atomic_dir, write_json, write_text
from nuclei_pa.io.coco import coco_document, labels_to_annotations
from nuclei_pa.io.dataset import IGNORE_DIR, REGIONS_DIR
from nuclei_pa.io.images import read_image, write_tiff
from nuclei_pa.io.progress import Progress
from nuclei_pa.model import ModelConfig
from nuclei_pa.model.config import INFERENCE_KEYS, inference_settings

__all__ = [
    "CPU_ROUND",
    "GPU_ROUND",
    "ROUND_ITERATIONS",
    "ProposalSettings",
    "RoundResult",
    "describe_defaults",
    "round_defaults",
    "run_round",
    "session_status",
]

ROUND_ITERATIONS = 200  # paper §III.D: 200 iterations on the images being annotated
# A round's training, sized for the machine (see round_defaults). On a GPU the paper's: batch 8,
# 200 iterations; patches of 512 px keep images up to 512 px whole and bound the memory of
# larger ones. On a CPU whole images are the cost: batch 8 of the 9 real 256-700 px DSB/ISBI
# fluorescence images took 8.2 s per iteration and 5 GB, ~27 min before the first proposal.
# Batch 2 of 256 px patches (mostly around annotated nuclei) took 0.38 s per iteration and
# 1.4 GB on 2 cores: round 1 of those images from 25 % of their nuclei took 2.1 min in all and
# proposed 103 nuclei, 67 of them true (IoU > 0.5). 150 iterations proposed none (scores stay
# under 0.5); 500 took 3.2 min for 107 (76 true). Patch training costs the same per iteration
# whatever the images' size, so 300 leaves room for a slower laptop within 5 minutes.
GPU_ROUND: dict[str, Any] = {"iterations": ROUND_ITERATIONS, "batch_size": 8, "crop_size": 512}
CPU_ROUND: dict[str, Any] = {"iterations": 300, "batch_size": 2, "crop_size": 256}
# Model settings a later round may not change: it continues training round 1's network.
_FREE_MODEL_KEYS = ("init", "anchor_wh")


@dataclass(frozen=True)
class ProposalSettings:
    """How detections become proposals, and when the session is done."""

    score_threshold: float = PREDICT_DEFAULTS["score_threshold"]
    mask_threshold: float = PREDICT_DEFAULTS["mask_threshold"]
    min_area: int = PREDICT_DEFAULTS["min_area"]
    dilate: bool = PREDICT_DEFAULTS["dilate"]
    tile_size: int | None = PREDICT_DEFAULTS["tile_size"]
    tile_overlap: int = PREDICT_DEFAULTS["tile_overlap"]
    overlap: float = 0.1  # a proposal with more of its area on annotated pixels is dropped
    min_new: int = 1  # done when a round shows fewer new proposals than this
    # The trained model's inference-only settings (ModelConfig.INFERENCE_KEYS) for proposing;
    # None: the model's own. Grown mask boxes give outlines that are not cut off straight.
    test_time_flips: bool | None = None
    mask_box_scale: float | None = None
    mask_box_grow: str | None = None

    def __post_init__(self) -> None:
        for name in ("score_threshold", "mask_threshold", "overlap"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.min_area < 1 or self.min_new < 0:
            raise ValueError("min_area must be ≥ 1 and min_new ≥ 0")
        inference_settings(self.inference())  # a bad value: a ValueError naming it

    def predict_kwargs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in PREDICT_DEFAULTS}

    def inference(self) -> dict[str, Any]:
        """The inference settings that override the model's (``load_model``'s ``inference``)."""
        return {k: getattr(self, k) for k in INFERENCE_KEYS if getattr(self, k) is not None}


@dataclass
class RoundResult:
    """What a round produced: its folder, its report row, and whether the session is done."""

    round_no: int
    folder: Path
    counts: dict[str, Any]
    done: bool
    message: str
    origin: dict[str, str] = field(default_factory=dict)


def round_defaults(device: str | torch.device | None = "auto") -> dict[str, Any]:
    """The training settings a round uses unless told otherwise, for the machine it runs on.

    The one place they are chosen (``nuclei-pa annotate``, :func:`run_round`): :data:`GPU_ROUND`
    on CUDA, :data:`CPU_ROUND` elsewhere; ``auto`` means CUDA when available. Explicit settings
    override them key by key.
    """
    return dict(GPU_ROUND if _device_kind(device) == "cuda" else CPU_ROUND)


def _device_kind(device: str | torch.device | None) -> str:
    """``cuda`` or ``cpu`` (etc.) by name, without requiring that device to exist here."""
    if device is None or str(device) == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return torch.device(device).type
    except (RuntimeError, TypeError):  # training names the bad device; size for a CPU till then
        return "cpu"


def describe_defaults(device: str | torch.device | None, chosen: dict[str, Any]) -> str:
    """One line saying which machine-dependent defaults a round took, and how to override."""
    if not chosen:
        return ""
    kind = "GPU" if _device_kind(device) == "cuda" else "CPU"
    words = {
        "iterations": lambda v: f"{v} iterations",
        "batch_size": lambda v: f"batch {v}",
        "crop_size": lambda v: "whole images" if v is None else f"{v} px patches",
    }
    parts = [words[k](v) for k, v in chosen.items() if k in words]
    flags = " ".join(f"--{k.replace('_', '-')}" for k in chosen)
    return f"{kind} defaults: {', '.join(parts)} (override with {flags})"


def session_status(out: str | Path) -> tuple[int, str | None]:
    """(last complete round, 0 if none; the DONE message if that round ended the session)."""
    rounds = completed_rounds(out)
    if not rounds:
        return 0, None
    done = Path(out) / DONE_FILE
    record = read_round_record(round_dir(out, rounds[-1]))
    if done.is_file() and record["counts"].get("status") == "done":
        return rounds[-1], done.read_text().strip()
    return rounds[-1], None


def run_round(
    images: str | Path,
    out: str | Path,
    *,
    annotations: str | Path | None = None,
    round_no: int | None = None,
    model_cfg: ModelConfig | None = None,
    train_cfg: TrainConfig | None = None,
    settings: ProposalSettings | None = None,
    progress: bool = True,
) -> RoundResult:
    """Run one annotation round and write ``out/round_NN`` and the session report.

    ``round_no`` defaults to the round after the last complete one. ``annotations`` (any format
    :func:`~nuclei_pa.annotate.inputs.read_corrections` reads) is required for round 1 and
    defaults to the previous round's folder after. ``model_cfg`` is round 1's network (default:
    the slim pa preset); later rounds continue the previous round's and only check that a given
    ``model_cfg`` agrees. ``train_cfg`` defaults to :class:`TrainConfig` with this machine's
    :func:`round_defaults`.
    """
    tic = time.perf_counter()
    out = Path(out)
    settings = settings or ProposalSettings()
    train_cfg = train_cfg or TrainConfig(**round_defaults("auto"))
    done_rounds = completed_rounds(out)
    if round_no is None:
        round_no = done_rounds[-1] + 1 if done_rounds else 1
    if round_no < 1:
        raise InputError(None, f"rounds count from 1, got {round_no}")
    _check_round_order(out, round_no, done_rounds)
    prev = round_dir(out, round_no - 1) if round_no > 1 else None
    prev_record = read_round_record(prev) if prev is not None else None
    if annotations is None:
        if prev is None:
            raise InputError(None, "round 1 needs the partial annotations (--annotations)")
        annotations = prev

    inputs = _read_inputs(images, annotations, prev)  # every input checked before any write
    refs, images_dir, corrections = inputs.refs, inputs.images_dir, inputs.corrections
    model_cfg = _round_model(round_no, prev, prev_record, model_cfg)

    # -- train, predict, merge -------------------------------------------------------------------
    work = work_dir(out, round_no)
    checkpoint = _train(work, images_dir, refs, inputs.human, model_cfg, train_cfg, progress)
    anns, counts, rejected_docs, scores = _propose(
        round_no,
        refs,
        corrections,
        inputs.previous,
        inputs.rejected_before,
        checkpoint,
        train_cfg,
        settings,
        progress,
    )
    counts = {
        "round": round_no,
        "images": len(refs),
        **counts,
        **score_quantiles(scores),
        "seconds": round(time.perf_counter() - tic, 1),
    }
    done = counts["new"] < settings.min_new
    counts["status"] = "done" if done else "continue"
    folder = round_dir(out, round_no)
    message = _message(round_no, counts["new"], settings.min_new, done, folder)

    # -- write the round folder, then the session report -----------------------------------------
    record = {
        "round": round_no,
        "images": [{"name": r.name, "height": r.shape[0], "width": r.shape[1]} for r in refs],
        "images_dir": str(images_dir.resolve()),
        "annotations": {r.stem: corrections.origin[r.stem] for r in refs},
        "init": model_cfg.init,
        "checkpoint": f"model/{checkpoint.name}",
        "model_config": model_cfg.to_dict(),
        "train_config": train_cfg.to_dict(),
        "settings": dataclasses.asdict(settings),
        "counts": counts,
        "proposal_scores": [round(s, 4) for s in scores],
        "message": message,
    }
    _write_round(folder, work / "model", checkpoint, refs, anns, rejected_docs, record, progress)
    shutil.rmtree(work, ignore_errors=True)
    write_report(
        [read_round_record(round_dir(out, n)) for n in completed_rounds(out)],
        out / REPORT_CSV,
        out / REPORT_PNG,
    )
    if done:
        write_text(out / DONE_FILE, message + "\n")
    else:
        (out / DONE_FILE).unlink(missing_ok=True)
    return RoundResult(round_no, folder, counts, done, message, dict(corrections.origin))


@dataclass
class _Inputs:
    """What a round reads: the images, the annotator's corrections, the previous round's state."""

    refs: list[ImageRef]
    images_dir: Path
    corrections: Corrections
    previous: dict[str, Annotation]
    rejected_before: dict[str, list[dict]]
    human: dict[str, Annotation]  # with its ignore and region marks


def _read_inputs(images: str | Path, annotations: str | Path, prev: Path | None) -> _Inputs:
    refs = list_session_images(images)
    images_dir = refs[0].path.parent
    if Path(annotations).resolve() == images_dir.resolve():
        raise InputError(annotations, "is the images folder; pass the annotations")
    corrections = read_corrections(annotations, refs)
    shapes = {r.stem: r.shape for r in refs}
    previous = read_exact(prev / "state" / "output.json", shapes) if prev is not None else {}
    rejected_before = (
        read_state_document(prev / "state" / "rejected.json") if prev is not None else {}
    )
    human = {s: corrections.annotation(s) for s in shapes}
    if not any(a.ids for a in human.values()):
        raise InputError(annotations, "holds no annotated nucleus to learn from")
    return _Inputs(refs, images_dir, corrections, previous, rejected_before, human)


def _message(round_no: int, new: int, min_new: int, done: bool, folder: Path) -> str:
    if done:
        return (
            f"round {round_no} shows {new} new proposals, fewer than min_new "
            f"{min_new}: annotation is complete once you have reviewed them in {folder}"
        )
    return (
        f"round {round_no}: {new} new proposals to review in {folder}; correct "
        "them (one format per image), then run the next round"
    )


def _write_round(
    folder: Path,
    model_dir: Path,
    checkpoint: Path,
    refs: list[ImageRef],
    anns: dict[str, Annotation],
    rejected_docs: dict[str, list[dict]],
    record: dict[str, Any],
    progress: bool,
) -> None:
    """The round folder, all at once: model, review files, state, and the record of it all."""
    round_no = record["round"]
    with atomic_dir(folder) as tmp:
        _link_model(model_dir, checkpoint, tmp / "model")
        bar = _bar(len(refs), "export", progress)
        write_review_files(tmp, refs, anns, on_image=bar.update, round=round_no)
        bar.close()
        write_json(
            tmp / "state" / "output.json",
            instances_document(refs, anns, with_label=True, round=round_no),
        )
        _write_marks(tmp / "state", refs, anns)
        write_json(tmp / "state" / "rejected.json", _rejected_document(refs, rejected_docs))
        files = editable_files([r.stem for r in refs])
        record["files"] = {str(rel): digest(tmp / rel) for rel in files}
        write_json(tmp / ROUND_FILE, record)


# ---------------------------------------------------------------------------------------------


def _check_round_order(out: Path, round_no: int, done_rounds: list[int]) -> None:
    later = [n for n in done_rounds if n > round_no]
    if later:
        raise InputError(
            round_dir(out, later[0]),
            f"was built on round {round_no}; remove it and any later round to redo round "
            f"{round_no}",
        )
    if round_no > 1 and round_no - 1 not in done_rounds:
        raise InputError(
            round_dir(out, round_no - 1), f"not found or incomplete; run round {round_no - 1} first"
        )
    target = round_dir(out, round_no)
    if round_no in done_rounds:  # never overwrite the annotator's corrections
        record = read_round_record(target)
        for rel, sha in record["files"].items():
            path = target / rel
            if path.is_file() and digest(path) != sha:
                raise InputError(
                    path,
                    f"holds your corrections; move {target} away to redo round {round_no}, or "
                    f"run round {round_no + 1}",
                )


def _round_model(
    round_no: int,
    prev: Path | None,
    prev_record: dict[str, Any] | None,
    requested: ModelConfig | None,
) -> ModelConfig:
    """Round 1: the requested network; later: the previous round's, warm-started from it."""
    if prev is None or prev_record is None:
        cfg = requested or ModelConfig.preset("slim", variant="pa")
    else:
        from nuclei_pa.engine import checkpoint as ckpt

        path = prev / prev_record["checkpoint"]
        state = ckpt.load(path)
        try:
            trained = ModelConfig.from_saved(state["trained_model_config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(path, f"unusable trained_model_config ({exc})") from exc
        if requested is not None:
            for f in dataclasses.fields(ModelConfig):
                if f.name in _FREE_MODEL_KEYS:
                    continue
                old, new = getattr(trained, f.name), getattr(requested, f.name)
                if old != new and not (f.name == "norm" and "auto" in (old, new)):
                    raise InputError(
                        path,
                        f"round {round_no} continues this model, trained with {f.name}={old!r}; "
                        f"got {f.name}={new!r} (model settings apply to round 1 only)",
                    )
        # The normalisation is pinned to the one the network was built with: 'auto' would be
        # resolved again from the new init, and the rebuilt config saved in the checkpoint
        # would not say what the weights are.
        norm = state.get("model_config", {}).get("norm", trained.norm)
        cfg = dataclasses.replace(trained, init=str(path.resolve()), anchor_wh=None, norm=norm)
    if cfg.variant != "pa":
        raise InputError(
            None,
            "annotation rounds need the pa variant: a baseline model learns every nucleus "
            "nobody outlined as background",
        )
    return cfg


def _train(
    work: Path,
    images_dir: Path,
    refs: list[ImageRef],
    human: dict[str, Annotation],
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    progress: bool,
) -> Path:
    """Train in ``work/model``, resuming an interrupted run of the same round and inputs."""
    from nuclei_pa.engine.train import train

    doc = instances_document(refs, human, description="nuclei-pa annotate: training set")
    text = json.dumps(doc, indent=1) + "\n"
    marks = hashlib.sha256()  # the ignore and region masks are inputs too
    for ref in refs:
        for mask in (human[ref.stem].ignore, human[ref.stem].region):
            marks.update(b"-" if mask is None else np.packbits(mask).tobytes())
    key = hashlib.sha256(
        json.dumps(
            [text, marks.hexdigest(), model_cfg.to_dict(), train_cfg.to_dict()],
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()
    key_file = work / "inputs.sha256"
    if not key_file.is_file() or key_file.read_text().strip() != key:
        shutil.rmtree(work, ignore_errors=True)  # other inputs: start the round afresh
    _write_marks(work, refs, human)  # beside train.json, where the training data looks
    write_text(work / "train.json", text)
    write_text(key_file, key + "\n")
    return train(
        (images_dir, work / "train.json"),
        work / "model",
        model_cfg,
        train_cfg,
        resume=True,
        progress=progress,
    )


def _write_marks(folder: Path, refs: list[ImageRef], anns: dict[str, Annotation]) -> None:
    """Each image's ignore and region masks as ``folder/ignore/<image>.tif`` and
    ``folder/regions/<image>.tif`` (the split layout's), where it has them."""
    for ref in refs:
        ann = anns[ref.stem]
        for sub, mask in ((IGNORE_DIR, ann.ignore), (REGIONS_DIR, ann.region)):
            if mask is not None:
                write_tiff(folder / sub / f"{Path(ref.name).stem}.tif", mask.astype(np.uint8))


def _propose(
    round_no: int,
    refs: list[ImageRef],
    corrections: Corrections,
    previous: dict[str, Annotation],
    rejected_before: dict[str, list[dict[str, Any]]],
    checkpoint: Path,
    train_cfg: TrainConfig,
    settings: ProposalSettings,
    progress: bool,
) -> tuple[dict[str, Annotation], dict[str, int], dict[str, list[dict]], list[float]]:
    """Predict every image, merge with the annotator's instances, drop repeated rejections.

    Returns the output annotations, the summed counts, every image's rejected proposals so far
    (COCO records with the round that showed them) and the scores of the proposals shown.
    """
    from nuclei_pa.engine.predict import inference_kwargs, load_model, predict_image

    model = load_model(checkpoint, train_cfg.device, **inference_kwargs(settings.inference()))
    threads = torch.get_num_threads()
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    totals = dict.fromkeys(
        ("human", "outlined", "accepted", "rejected", "proposed", "suppressed", "new"), 0
    )
    anns: dict[str, Annotation] = {}
    rejected_docs: dict[str, list[dict]] = {}
    scores: list[float] = []
    bar = _bar(len(refs), "predict", progress)
    try:
        for ref in refs:
            human = corrections.labels[ref.stem]
            seen = review(human, previous.get(ref.stem))
            records = list(rejected_before.get(ref.stem, []))
            if seen.rejected.any():  # shown by the previous round, deleted by the annotator
                new = labels_to_annotations(seen.rejected, image_id=0)
                records += [{**r, "round": round_no - 1} for r in new]
            rejected_docs[ref.stem] = records
            labels, det_scores = predict_image(
                model, read_image(ref.path), device=None, **settings.predict_kwargs()
            )
            merged = merge(human, labels, det_scores, overlap_threshold=settings.overlap)
            n_proposed = sum(merged.source_of(i) == "proposed" for i in merged.ids)
            rejected = list(masks_by_round(records, ref.shape).values())
            shown, n_suppressed = suppress_rejected(merged, rejected)
            shown = _compact(shown)
            # the annotator's marks stay in the review files, to edit with the nuclei
            shown.ignore = corrections.ignore.get(ref.stem)
            shown.region = corrections.region.get(ref.stem)
            anns[ref.stem] = shown
            props = [i for i in shown.ids if shown.source_of(i) == "proposed"]
            scores += [shown.scores[i] for i in props if i in shown.scores]
            n_human = len(shown.ids) - len(props)
            n_rejected = len(np.unique(seen.rejected[seen.rejected > 0]))
            for key, value in (
                ("human", n_human),
                ("outlined", seen.outlined),
                ("accepted", seen.accepted),
                ("rejected", n_rejected),
                ("proposed", n_proposed),
                ("suppressed", n_suppressed),
                ("new", len(props)),
            ):
                totals[key] += int(value)
            bar.update()
    finally:
        bar.close()
        torch.set_num_threads(threads)
    return anns, totals, rejected_docs, scores


def _compact(ann: Annotation) -> Annotation:
    """Ids 1..h for human instances (ascending old id), then h+1.. for proposals."""
    ids = ann.ids
    order = [i for i in ids if ann.source_of(i) == "human"]
    order += [i for i in ids if ann.source_of(i) == "proposed"]
    lut = np.zeros(int(ann.labels.max(initial=0)) + 1, dtype=np.int32)
    for new, old in enumerate(order, start=1):
        lut[old] = new
    return Annotation(
        lut[ann.labels],
        scores={int(lut[k]): v for k, v in ann.scores.items() if k in ids},
        source={int(lut[k]): ann.source_of(k) for k in ids},
    )


def _rejected_document(refs: list[ImageRef], docs: dict[str, list[dict]]) -> dict[str, Any]:
    images, records = [], []
    for image_id, ref in enumerate(refs, start=1):
        h, w = ref.shape
        images.append({"id": image_id, "file_name": ref.name, "height": h, "width": w})
        for rec in docs.get(ref.stem, []):
            records.append({**rec, "id": len(records) + 1, "image_id": image_id})
    return coco_document(images, records, description="proposals the annotator rejected")


def _link_model(work_model: Path, checkpoint: Path, dst: Path) -> None:
    """Hard-link (or copy, where links fail) the final checkpoint, ``last.pt`` and the training
    log into ``dst``. Earlier checkpoints only served resumption: ~100 MB each for the slim
    model, they would multiply a session's size for nothing."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in (checkpoint.name, "last.pt", "train_log.csv"):
        src = work_model / name
        try:
            os.link(src, dst / name)
        except OSError:
            shutil.copy2(src, dst / name)


def _bar(total: int, desc: str, enabled: bool) -> Progress:
    """Progress over images: a line about every tenth of the way when there is no terminal."""
    every = max(1, total // 10)
    return Progress(
        total, desc, enabled, every, unit="img", item="image", noun="images", leave=False
    )
