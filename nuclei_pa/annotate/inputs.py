"""The images of a session and the annotator's instances for each, from whatever they edited.

Annotations come as one COCO file for every image, one file per image (named by the image's
stem: ``img007.zip``, ``img007.geojson``, ``img007.tif`` …) in a folder, a single file when
there is a single image, or a previous round's folder. In a round folder the user edits the
review file of their choice in place; the digests in its ``round.json`` tell which one, and
images nobody touched are read from the round's exact state.

Areas the annotator marked unknown and fully annotated regions (issue 24: -1 in a label image,
QuPath ``Ignore*`` / ``Region*`` classes, ImageJ ROIs so named) come along per image; a round
keeps them beside its exact state (``state/ignore/``, ``state/regions/``), so an image nobody
touched keeps its marks too.

Spline formats are lossy: re-fitting the rasterised outline of a spline each round would shrink
an untouched nucleus by about 1 % of its area per round. So when a ROI set or GeoJSON comes
from a round folder, every instance the user left untouched — it rasterises exactly as the file
the round wrote — is replaced by the exact mask the round exported.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nuclei_pa.annotate.layout import (
    COCO_FILE,
    PER_IMAGE,
    ImageRef,
    digest,
    find_round_folder,
    read_exact,
    read_round_record,
)
from nuclei_pa.annotate.review import matches
from nuclei_pa.errors import InputError
from nuclei_pa.eval.matching import overlap_table
from nuclei_pa.io.annotation import Annotation
from nuclei_pa.io.dataset import IGNORE_DIR, REGIONS_DIR, read_mask
from nuclei_pa.io.formats import (
    ANNOTATION_SUFFIXES,
    detect_format,
    read_annotation,
    write_annotations,
)
from nuclei_pa.io.images import list_images, read_image

__all__ = ["Corrections", "list_session_images", "read_corrections", "restore_untouched"]


@dataclass
class Corrections:
    """The annotator's instances per image stem, and the file each image's came from."""

    labels: dict[str, np.ndarray] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    # per image stem, where present: areas marked unknown, fully annotated regions (bool masks)
    ignore: dict[str, np.ndarray] = field(default_factory=dict)
    region: dict[str, np.ndarray] = field(default_factory=dict)

    def keep_marks(self, stem: str, ann: Annotation) -> None:
        """Remember ``ann``'s ignore and region masks as ``stem``'s."""
        for name in ("ignore", "region"):
            mask = getattr(ann, name)
            if mask is not None:
                getattr(self, name)[stem] = mask

    def annotation(self, stem: str) -> Annotation:
        """``stem``'s instances as the annotator's (source "human"), with its marks."""
        ann = Annotation.from_labels(self.labels[stem])
        ann.ignore, ann.region = self.ignore.get(stem), self.region.get(stem)
        return ann


def list_session_images(images: str | Path) -> list[ImageRef]:
    """Every image of a folder (a split folder through its ``images/``), each read once to
    check it and learn its shape; stems must be unique (outputs are named by them)."""
    folder = Path(images)
    if not folder.is_dir():
        raise InputError(folder, "images folder not found")
    if (folder / "images").is_dir():
        folder = folder / "images"
    refs: list[ImageRef] = []
    seen: dict[str, Path] = {}
    for path in list_images(folder):
        if path.stem in seen:
            raise InputError(path, f"same stem as {seen[path.stem].name}; outputs are named by it")
        seen[path.stem] = path
        shape = read_image(path).shape[:2]
        refs.append(ImageRef(path, (int(shape[0]), int(shape[1]))))
    if not refs:
        raise InputError(folder, "no images (.tif/.tiff/.png/.jpg) found")
    return refs


def read_corrections(path: str | Path, refs: list[ImageRef]) -> Corrections:
    """Instances of every image in ``refs`` from ``path`` (a file, a folder or a round folder).

    Every image needs annotations (an image may hold none, but its file must say so), so a
    misnamed file fails here instead of training on an image as if nothing were in it.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "annotations not found")
    round_folder = find_round_folder(path)
    if round_folder is not None and path == round_folder:
        return _read_round_folder(path, refs)
    exact = _exact_state(round_folder, refs) if round_folder is not None else {}
    out = Corrections()
    for ref in refs:
        file = _file_for(path, ref, len(refs))
        ann = _read(file, ref)
        if ref.stem in exact and file.suffix.lower() in (".zip", ".geojson"):
            out.labels[ref.stem] = restore_untouched(ann.labels, exact[ref.stem], file.suffix)
        else:
            out.labels[ref.stem] = ann.labels
        out.origin[ref.stem] = str(file)
        out.keep_marks(ref.stem, ann)
    return out


def state_marks(folder: Path, ref: ImageRef) -> Annotation:
    """The ignore and region masks a round kept of ``ref`` (an empty annotation holding them)."""
    state = folder / "state"
    ann = Annotation(np.zeros(ref.shape, dtype=np.int32))
    ann.ignore = read_mask(state / IGNORE_DIR / f"{ref.stem}.tif", ref.shape)
    ann.region = read_mask(state / REGIONS_DIR / f"{ref.stem}.tif", ref.shape)
    return ann


def _read(file: Path, ref: ImageRef) -> Annotation:
    name = ref.name if detect_format(file) == "coco" else None
    return read_annotation(file, ref.shape, image_name=name)


def _file_for(path: Path, ref: ImageRef, n_images: int) -> Path:
    """The file holding ``ref``'s annotations under ``path``."""
    if path.is_file():
        if detect_format(path) == "coco" or n_images == 1:
            return path
        raise InputError(
            path,
            f"holds one image's annotations but {n_images} images were given; pass a COCO file "
            "or a folder with one file per image, named by the image's stem",
        )
    found = [
        p
        for p in sorted(path.iterdir())
        if p.is_file() and p.stem == ref.stem and p.suffix.lower() in ANNOTATION_SUFFIXES
    ]
    if len(found) > 1:
        raise InputError(
            found[1], f"{ref.name} has several annotation files here ({found[0].name} too)"
        )
    if found:
        return found[0]
    if (path / "annotations.json").is_file():  # a split folder
        return path / "annotations.json"
    raise InputError(
        path / f"{ref.stem}.*",
        f"no annotations for {ref.name} (expected {ref.stem} with one of "
        f"{', '.join(ANNOTATION_SUFFIXES)})",
    )


def _exact_state(folder: Path, refs: list[ImageRef]) -> dict[str, Annotation]:
    return read_exact(folder / "state" / "output.json", {r.stem: r.shape for r in refs})


def _read_round_folder(folder: Path, refs: list[ImageRef]) -> Corrections:
    """Per image, the one review file the user edited, else the round's exact output."""
    record = read_round_record(folder)
    written = record["files"]
    exact = _exact_state(folder, refs)

    def edited(rel: str) -> bool:
        p = folder / rel
        return p.is_file() and digest(p) != written.get(rel)

    coco_edited = edited(COCO_FILE)
    out = Corrections()
    for ref in refs:
        if ref.stem not in exact:
            raise InputError(folder, f"has no annotations of {ref.name}; pass --annotations")
        changed = [
            rel for sub, suffix in PER_IMAGE.items() if edited(rel := f"{sub}/{ref.stem}{suffix}")
        ]
        if coco_edited and changed:
            changed = [COCO_FILE, *changed]
        if len(changed) > 1:
            raise InputError(
                folder / changed[1],
                f"edited as well as {changed[0]}; delete the one you do not want used, or pass "
                "--annotations with the one to use",
            )
        if coco_edited:
            changed = [COCO_FILE]
        if not changed or changed[0] == COCO_FILE:  # COCO has no place for the marks
            out.keep_marks(ref.stem, state_marks(folder, ref))
        if not changed:
            out.labels[ref.stem] = exact[ref.stem].labels
            out.origin[ref.stem] = f"{folder / 'state' / 'output.json'} (unchanged)"
            continue
        file = folder / changed[0]
        ann = _read(file, ref)
        if changed[0] != COCO_FILE:  # what the annotator left in the file they edited
            out.keep_marks(ref.stem, ann)
        labels = ann.labels
        if file.suffix in (".zip", ".geojson"):
            labels = restore_untouched(labels, exact[ref.stem], file.suffix)
        out.labels[ref.stem] = labels
        out.origin[ref.stem] = f"{file} (edited)"
    return out


def restore_untouched(edited: np.ndarray, exact: Annotation, suffix: str) -> np.ndarray:
    """``edited`` (read from a spline file) with untouched instances swapped for exact masks.

    The file the round wrote is re-created from ``exact`` with the same writer and read back;
    an edited instance identical, pixel for pixel, to one of those was left alone by the user,
    and takes the exact mask it was fitted to. Edited and new instances are painted last, so
    the annotator's latest outline wins any pixel it shares with an untouched neighbour.
    """
    with tempfile.TemporaryDirectory() as tmp:
        again = Path(tmp) / f"written{suffix}"
        write_annotations(again, exact)
        written = read_annotation(again, exact.labels.shape).labels
    table = overlap_table(edited, written)
    same = (table.intersection == table.gt_area[table.gt_index]) & (
        table.intersection == table.pred_area[table.pred_index]
    )
    fitted_to = dict(matches(written, exact.labels))
    untouched = {
        int(table.gt_ids[g]): fitted_to[int(table.pred_ids[p])]
        for g, p in zip(table.gt_index[same], table.pred_index[same], strict=True)
        if int(table.pred_ids[p]) in fitted_to
    }
    out = np.zeros_like(edited, dtype=np.int32)
    for lab, src in untouched.items():
        out[exact.labels == src] = lab
    changed = (edited > 0) & ~np.isin(edited, list(untouched))
    out[changed] = edited[changed]
    return out
