"""Where an annotation session keeps things, and the records that make rounds resumable.

::

    OUT/
      rounds.csv                 one row per round (see :mod:`.report`)
      rounds.png                 counts per round and the proposals' score histograms
      DONE                       present once a round proposed fewer new nuclei than --min-new
      round_01/
        rois/<stem>.zip          Fiji ROI set: spline-fit polygons, human-… / proposed-… names
        geojson/<stem>.geojson   QuPath annotations with source and score
        coco.json                every image in one COCO document, RLE, source and score
        labels/<stem>.tif        int32 instance labels (human and proposed alike)
        overlays/<stem>.png      outlines: human blue, proposals orange
        model/                   the round's checkpoints and train_log.csv
        round.json               settings, counts, inputs, and a digest of every editable file
        state/                   exact masks for the next round: not for editing
          output.json            every instance written, with its label id, source and score
          rejected.json          every proposal rejected so far, with the round that showed it

The four review formats hold the same instances; the user corrects whichever suits their tool.
The digests in ``round.json`` tell the next round which file was edited, and ``state/`` lets it
restore, pixel for pixel, every instance the user left untouched in a spline format.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nuclei_pa.errors import InputError
from nuclei_pa.io.annotation import Annotation
from nuclei_pa.io.coco import (
    coco_document,
    decode_segmentation,
    labels_to_annotations,
    load_coco,
)
from nuclei_pa.io.jsonfile import read_json

ROUND_FILE = "round.json"
DONE_FILE = "DONE"
REPORT_CSV = "rounds.csv"
REPORT_PNG = "rounds.png"
COCO_FILE = "coco.json"
# Per-image review files: folder → suffix. The order is the order edits are looked for.
PER_IMAGE = {"rois": ".zip", "geojson": ".geojson", "labels": ".tif"}
_ROUND_RE = re.compile(r"round_(\d{2,})")


@dataclass(frozen=True)
class ImageRef:
    """One image of the session: its file, and its (H, W) for checking annotations against."""

    path: Path
    shape: tuple[int, int]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def stem(self) -> str:
        return self.path.stem


def round_dir(out: str | Path, round_no: int) -> Path:
    return Path(out) / f"round_{round_no:02d}"


def work_dir(out: str | Path, round_no: int) -> Path:
    """Hidden scratch folder of a round in progress: training resumes from it after a crash."""
    return Path(out) / f".round_{round_no:02d}.work"


def completed_rounds(out: str | Path) -> list[int]:
    """Round numbers whose folder is complete (has its ``round.json``), ascending."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = []
    for p in out.iterdir():
        m = _ROUND_RE.fullmatch(p.name)
        if m and (p / ROUND_FILE).is_file():
            found.append(int(m.group(1)))
    return sorted(found)


def digest(path: str | Path) -> str:
    """SHA-256 of a file: how a later round tells an edited review file from an untouched one."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def editable_files(stems: list[str]) -> list[Path]:
    """The review files a round writes, relative to its folder."""
    files = [Path(COCO_FILE)]
    for sub, suffix in PER_IMAGE.items():
        files += [Path(sub) / f"{stem}{suffix}" for stem in stems]
    return files


def read_round_record(folder: Path) -> dict[str, Any]:
    """A complete round's ``round.json``; a missing or damaged one names the file."""
    path = folder / ROUND_FILE
    if not path.is_file():
        raise InputError(folder, "not a complete annotation round (no round.json)")
    record = read_json(path)
    for key in ("round", "images", "files", "checkpoint", "counts"):
        if key not in record:
            raise InputError(path, f"lacks '{key}' (written by another version?)")
    return record


def find_round_folder(path: Path) -> Path | None:
    """The round folder ``path`` is, or lies in (a review file or subfolder of one), if any."""
    for candidate in (path, path.parent, path.parent.parent):
        if (candidate / ROUND_FILE).is_file() and _ROUND_RE.fullmatch(candidate.name):
            return candidate
    return None


# ---------------------------------------------------------------------------------------------
# Instances as COCO documents: the public review file and the exact state files


def instance_records(
    ann: Annotation, image_id: int, first_id: int, with_label: bool = False
) -> list[dict[str, Any]]:
    """COCO annotations of one image with ``source`` and, where known, ``score`` per instance.

    ``with_label`` adds the instance's id in the label image (the state files need it to rebuild
    the label image the review files were written from, ids and all).
    """
    records = labels_to_annotations(ann.labels, image_id, first_id=first_id)
    for rec, lab in zip(records, ann.ids, strict=True):
        rec["source"] = ann.source_of(lab)
        if lab in ann.scores:
            rec["score"] = float(ann.scores[lab])
        if with_label:
            rec["label"] = int(lab)
    return records


def instances_document(
    refs: list[ImageRef], anns: dict[str, Annotation], with_label: bool = False, **info: Any
) -> dict[str, Any]:
    """One COCO document of every image's instances (image ids follow ``refs``)."""
    images, records = [], []
    for image_id, ref in enumerate(refs, start=1):
        h, w = ref.shape
        images.append({"id": image_id, "file_name": ref.name, "height": h, "width": w})
        records += instance_records(anns[ref.stem], image_id, len(records) + 1, with_label)
    return coco_document(images, records, **info)


def read_state_document(path: Path) -> dict[str, list[dict[str, Any]]]:
    """A state COCO file as {image stem: its annotation records}, every image listed."""
    index = load_coco(path)
    return {
        Path(img["file_name"]).stem: index.anns_by_image.get(img_id, [])
        for img_id, img in index.images.items()
    }


def read_exact(path: Path, shapes: dict[str, tuple[int, int]]) -> dict[str, Annotation]:
    """``state/output.json`` back as the exact annotations it was written from (same ids)."""
    out = {}
    for stem, records in read_state_document(path).items():
        if stem not in shapes:
            continue
        labels = np.zeros(shapes[stem], dtype=np.int32)
        ann = Annotation(labels)
        for rec in records:
            lab = int(rec["label"])
            labels[decode_segmentation(rec["segmentation"], *shapes[stem])] = lab
            ann.source[lab] = rec.get("source", "human")
            if "score" in rec:
                ann.scores[lab] = float(rec["score"])
        out[stem] = ann
    return out


def masks_by_round(records: list[dict[str, Any]], shape: tuple[int, int]) -> dict[int, np.ndarray]:
    """Rejected proposals of one image as one label image per round that proposed them.

    A round's proposals never overlap one another, so each round's fit in one label image.
    """
    out: dict[int, np.ndarray] = {}
    for rec in records:
        labels = out.setdefault(int(rec["round"]), np.zeros(shape, dtype=np.int32))
        labels[decode_segmentation(rec["segmentation"], *shape)] = int(labels.max()) + 1
    return out
