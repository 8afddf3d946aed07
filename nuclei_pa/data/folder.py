"""A user's own folder of images and annotations → the project's dataset folder.

This is the one way real data enters the project: the ``folder`` dataset kind of the workflow,
``nuclei-pa import``, and the public datasets' converters (Kumar et al. is this kind with their
split table) all resolve a :class:`FolderSpec` into a :class:`FolderPlan` and write it with
:func:`write_folder_dataset` as ``<out>/train`` and ``<out>/test`` split folders.

Matching rules (one place, so every caller agrees):

- Images are the image files under ``images`` (searched recursively, keyed by file stem; two
  files with one stem are an error). Annotations are one COCO JSON for every image, or a folder
  holding one file per image named by the image's stem in any format
  :func:`~nuclei_pa.io.formats.read_annotation` reads (label TIFF/PNG, ImageJ ROI set,
  QuPath GeoJSON, ImageScope XML, single-image COCO).
- A *name* (in ``test.names`` or the metadata CSV's ``image`` column) refers to the image whose
  stem equals it, or starts with it followed by ``-``, ``_`` or ``.`` (``TCGA-E2-A1B5`` names
  ``TCGA-E2-A1B5-01Z-00-DX1``); a name matching two images is an error.
- Every image needs annotations and, when a metadata CSV is given, a row; an annotation file or
  a name without an image is an error. With ``allow_missing`` names without an image (and their
  annotation files) are logged in one line and left out — for a partial copy of a benchmark.
  With ``only_listed`` images (and annotation files) the metadata does not name are skipped, with
  a log line: a public archive holding more than the benchmark's images.

Sparse labels (issue 24): ``sparse`` says how the files mark unknown areas and fully annotated
regions (:class:`~nuclei_pa.io.conventions.Conventions`: -1 or ``ignore_value`` in label
images, QuPath classes, ImageJ ROI groups or names), and ``regions`` is an optional folder with
a second file per image (same stem) whose shapes or non-zero pixels are fully annotated
regions. Both land in :class:`~nuclei_pa.io.dataset.Sample` and the split's masks. A class or
group configured for regions or ignored areas that no annotation file uses is an error.

Everything is located and checked before any pixel is read, and the two splits are written into
one atomically renamed folder, so bad input leaves no partial output.
"""

from __future__ import annotations

import csv
import fnmatch
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nuclei_pa.data.convert_common import IMAGE_SUFFIXES, index_by_stem, load_image
from nuclei_pa.errors import ConfigError, InputError
from nuclei_pa.io.atomic import atomic_dir
from nuclei_pa.io.conventions import Conventions
from nuclei_pa.io.dataset import Sample, write_split
from nuclei_pa.io.formats import (
    ANNOTATION_SUFFIXES,
    VECTOR_SUFFIXES,
    detect_format,
    read_annotation,
    read_region_file,
)
from nuclei_pa.io.jsonfile import read_json

log = logging.getLogger(__name__)

_SEPARATORS = ("-", "_", ".")
TEST_SELECTORS = ("names", "glob", "fraction", "images", "all")


@dataclass(frozen=True)
class TestSplit:
    """Which images are held out for testing: exactly one selector is set."""

    __test__ = False  # not a pytest class, whatever its name

    names: tuple[str, ...] | None = None
    glob: str | None = None
    fraction: float | None = None  # a seeded random fraction of the images
    seed: int = 0
    images: Path | None = None  # a second folder of test images …
    annotations: Path | None = None  # … with its own annotations
    all: bool | None = None  # every image tests (a set imported only to evaluate a model on)

    def __post_init__(self) -> None:
        chosen = [k for k in TEST_SELECTORS if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ConfigError(
                "test",
                f"give exactly one of {', '.join(TEST_SELECTORS)}; got "
                f"{', '.join(chosen) if chosen else 'none'}",
            )
        if self.fraction is not None and not 0.0 < self.fraction < 1.0:
            raise ConfigError("test.fraction", f"expected a number in (0, 1), got {self.fraction}")
        if (self.images is None) != (self.annotations is None):
            raise ConfigError("test.annotations", "a test images folder needs its annotations")


@dataclass(frozen=True)
class FolderSpec:
    """A folder dataset: images, their annotations, the test split and optional metadata."""

    images: Path
    annotations: Path
    test: TestSplit
    metadata: Path | None = None  # CSV: column ``image`` plus any (organ, group, …)
    table: Mapping[str, Mapping[str, str]] | None = None  # the same, given in code
    channel: int | None = None  # which channel of multichannel images to use
    allow_missing: bool = False
    only_listed: bool = False
    invalid_regions: str = "error"  # ImageScope regions that cannot be outlines: error | skip
    sparse: Conventions = field(default_factory=Conventions)  # how unknown, full areas are marked
    regions: Path | None = None  # a folder with a second file per image: its full regions

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> FolderSpec:
        """From plain config data; errors name the offending key relative to the spec."""
        known = {
            "images",
            "annotations",
            "test",
            "metadata",
            "channel",
            "allow_missing",
            "only_listed",
            "invalid_regions",
            "sparse",
            "regions",
        }
        for key in data:
            if key not in known:
                raise ConfigError(str(key), f"unknown key; known: {', '.join(sorted(known))}")
        for key in ("images", "annotations", "test"):
            if data.get(key) is None:
                raise ConfigError(key, "required")
        test = data["test"]
        if not isinstance(test, Mapping):
            raise ConfigError("test", f"expected a mapping, got {type(test).__name__}")
        unknown = set(test) - {*TEST_SELECTORS, "seed", "annotations"}
        if unknown:
            raise ConfigError(f"test.{sorted(unknown)[0]}", "unknown key")
        names = test.get("names")
        if names is not None and (isinstance(names, str) or not isinstance(names, Sequence)):
            raise ConfigError("test.names", "expected a list of image names")
        split = TestSplit(
            names=None if names is None else tuple(str(n) for n in names),
            glob=test.get("glob"),
            fraction=None if test.get("fraction") is None else float(test["fraction"]),
            seed=int(test.get("seed", 0)),
            images=None if test.get("images") is None else Path(test["images"]),
            annotations=None if test.get("annotations") is None else Path(test["annotations"]),
            all=True if test.get("all") else None,
        )
        invalid = data.get("invalid_regions", "error")
        if invalid not in ("error", "skip"):
            raise ConfigError("invalid_regions", f"expected 'error' or 'skip', got {invalid!r}")
        channel = data.get("channel")
        if channel is not None and (not isinstance(channel, int) or channel < 0):
            raise ConfigError("channel", f"expected a channel index ≥ 0, got {channel!r}")
        return cls(
            images=Path(data["images"]),
            annotations=Path(data["annotations"]),
            test=split,
            metadata=None if data.get("metadata") is None else Path(data["metadata"]),
            channel=channel,
            allow_missing=bool(data.get("allow_missing", False)),
            only_listed=bool(data.get("only_listed", False)),
            invalid_regions=invalid,
            sparse=_conventions(data.get("sparse")),
            regions=None if data.get("regions") is None else Path(data["regions"]),
        )


def _conventions(data: Any) -> Conventions:
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError("sparse", f"expected a mapping, got {type(data).__name__}")
    try:
        return Conventions.from_config(data)
    except ConfigError as exc:
        raise ConfigError(f"sparse.{exc.key}", exc.problem) from exc


@dataclass(frozen=True)
class Entry:
    """One image to import: its name (file stem), files and metadata."""

    name: str
    image: Path
    annotations: Path
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FolderPlan:
    train: list[Entry]
    test: list[Entry]
    missing: list[str] = field(default_factory=list)  # names without an image (allow_missing)

    def summary(self) -> str:
        text = f"{len(self.train)} training and {len(self.test)} test images"
        return text + (f" ({len(self.missing)} listed images missing)" if self.missing else "")


# ---------------------------------------------------------------------------------------------
# locating files


def refers_to(name: str, stem: str) -> bool:
    """Whether ``name`` refers to the image ``stem``: equal, or a prefix followed by a separator."""
    return stem == name or (stem.startswith(name) and stem[len(name)] in _SEPARATORS)


def _resolve_name(name: str, stems: Sequence[str], where: Path) -> str | None:
    """The stem a name refers to (exact match first), or None."""
    if name in stems:
        return name
    hits = [s for s in stems if refers_to(name, s)]
    if len(hits) > 1:
        raise InputError(where, f"name {name!r} matches several images: {', '.join(hits[:4])}")
    return hits[0] if hits else None


def _read_table(path: Path) -> dict[str, dict[str, str]]:
    """Metadata CSV rows keyed by their ``image`` column (stems or file names)."""
    if not path.is_file():
        raise InputError(path, "metadata CSV not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
            fields = rows[0].keys() if rows else []
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a readable CSV file ({exc})") from exc
    if not rows or "image" not in fields:
        raise InputError(path, "needs a header row with an 'image' column and one row per image")
    table: dict[str, dict[str, str]] = {}
    for k, row in enumerate(rows, start=2):
        key = Path((row.pop("image") or "").strip())
        name = key.stem if key.suffix.lower() in IMAGE_SUFFIXES else str(key)
        if not name:
            raise InputError(path, f"line {k}: empty 'image' value")
        if name in table:
            raise InputError(path, f"line {k}: image {name!r} listed twice")
        table[name] = {c: (v or "").strip() for c, v in row.items() if c is not None}
    return table


def _annotation_index(spec_images: Path, annotations: Path) -> dict[str, Path] | Path:
    """Per-image annotation files by stem, or the one COCO file every image is in."""
    if annotations.is_file():
        if annotations.suffix.lower() != ".json":
            raise InputError(
                annotations,
                "a single annotations file must be a COCO JSON for every image; per-image files "
                "(label images, ROI sets, GeoJSON, ImageScope XML) go in a folder",
            )
        return annotations
    if not annotations.is_dir():
        raise InputError(annotations, "annotations not found (a COCO JSON file or a folder)")
    # beside the images in one folder, only vector formats can be annotations
    same = annotations.resolve() == spec_images.resolve()
    return index_by_stem(
        annotations, VECTOR_SUFFIXES if same else ANNOTATION_SUFFIXES, "annotation"
    )


def _coco_stems(path: Path) -> set[str]:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(path, "not a COCO instances file (no 'images' list)")
    return {Path(str(img.get("file_name", ""))).stem for img in data["images"]}


def _entries(
    images_dir: Path,
    annotations: Path,
    table: Mapping[str, Mapping[str, str]] | None,
    spec: FolderSpec,
) -> tuple[list[Entry], list[str]]:
    """Every usable image of a folder with its annotation file and metadata; missing names."""
    if not images_dir.is_dir():
        raise InputError(images_dir, "images folder not found")
    images = index_by_stem(images_dir, IMAGE_SUFFIXES, "image")
    ann = _annotation_index(images_dir, annotations)
    stems = sorted(images)
    meta: dict[str, dict[str, str]] = {}
    missing: list[str] = []
    if table is not None:
        for name, row in table.items():
            stem = _resolve_name(name, stems, images_dir)
            if stem is None:
                missing.append(name)
            else:
                meta[stem] = dict(row)
        unlisted = [s for s in stems if s not in meta]
        if unlisted and spec.only_listed:
            log.info(
                "%s: %d image(s) not in the metadata, skipped: %s",
                images_dir,
                len(unlisted),
                ", ".join(unlisted),
            )
            stems = [s for s in stems if s in meta]
        elif unlisted:
            raise InputError(
                spec.metadata or images_dir,
                f"no metadata row for image {unlisted[0]}"
                + (f" (and {len(unlisted) - 1} more)" if len(unlisted) > 1 else ""),
            )
    if isinstance(ann, Path):
        listed = _coco_stems(ann)
        for stem in stems:
            if stem not in listed:
                raise InputError(ann, f"has no entry for image {images[stem].name}")
        orphans = sorted(listed - set(images))
        files = {s: ann for s in stems}
    else:
        for stem in stems:
            if stem not in ann:
                raise InputError(
                    annotations / f"{stem}.*",
                    f"no annotations for image {images[stem].name} (expected a file named "
                    f"{stem} with one of {', '.join(ANNOTATION_SUFFIXES)})",
                )
        orphans = sorted(set(ann) - set(images))
        files = {s: ann[s] for s in stems}
    if table is not None and spec.only_listed:
        orphans = [o for o in orphans if any(refers_to(n, o) for n in table)]
    if orphans:
        src = ann if isinstance(ann, Path) else ann[orphans[0]]
        raise InputError(src, f"annotations for image {orphans[0]!r}, which is not in {images_dir}")
    entries = [Entry(s, images[s], files[s], meta.get(s, {})) for s in stems]
    return entries, missing


def plan_folder(spec: FolderSpec) -> FolderPlan:
    """Locate every file and decide the split without reading any pixel (cheap: plan time)."""
    table = dict(spec.table) if spec.table is not None else None
    if spec.metadata is not None:
        table = _read_table(spec.metadata)
    entries, missing = _entries(spec.images, spec.annotations, table, spec)
    test = spec.test
    if test.images is not None:
        assert test.annotations is not None
        held, more = _entries(test.images, test.annotations, table, spec)
        clash = {e.name for e in held} & {e.name for e in entries}
        if clash:
            raise InputError(test.images, f"image {sorted(clash)[0]} is in both folders")
        train = entries
        missing = sorted(set(missing) & set(more))
    else:
        stems = [e.name for e in entries]
        if test.names is not None:
            chosen = set()
            for name in test.names:
                stem = _resolve_name(name, stems, spec.images)
                if stem is not None:
                    chosen.add(stem)
                elif not (spec.allow_missing or name in missing):
                    raise ConfigError("test.names", f"{name!r} names no image in {spec.images}")
                elif name not in missing:
                    missing.append(name)
        elif test.all:
            chosen = set(stems)
        elif test.glob is not None:
            chosen = {
                e.name
                for e in entries
                if fnmatch.fnmatch(e.name, test.glob) or fnmatch.fnmatch(e.image.name, test.glob)
            }
        else:
            assert test.fraction is not None
            n = max(1, round(test.fraction * len(stems))) if stems else 0
            order = np.random.default_rng(test.seed).permutation(len(stems))
            chosen = {stems[i] for i in order[:n]}
        train = [e for e in entries if e.name not in chosen]
        held = [e for e in entries if e.name in chosen]
    if missing and not spec.allow_missing:
        raise InputError(
            spec.metadata or spec.images,
            f"{len(missing)} listed image(s) not found: {', '.join(sorted(missing))} (set "
            "allow_missing to use a partial copy)",
        )
    if not train and not test.all:
        raise ConfigError(
            "test",
            f"the split leaves no training image ({len(held)} test images); to import a set "
            "only to evaluate on, put every image in the test split (test: {all: true}, "
            "nuclei-pa import --all-test)",
        )
    if not held:
        raise ConfigError("test", f"the split leaves no test image ({len(train)} training images)")
    return FolderPlan(train, held, sorted(missing))


# ---------------------------------------------------------------------------------------------
# reading and writing


def read_entry(entry: Entry, spec: FolderSpec, seen: set[str] | None = None) -> Sample:
    """Read one image and its annotations into a :class:`Sample`; ``seen`` collects the QuPath
    classes met and which marks ('ignore', 'region') were found, for :func:`check_marks_found`.
    """
    image = load_image(entry.image, channel=spec.channel)
    fmt = detect_format(entry.annotations)
    ann = read_annotation(
        entry.annotations,
        image.shape,
        image_name=entry.image.name if fmt == "coco" else None,
        invalid_regions=spec.invalid_regions,
        conventions=spec.sparse,
    )
    region = ann.region
    if spec.regions is not None:
        found = [
            p
            for p in sorted(spec.regions.glob(f"{entry.name}.*"))
            if p.suffix.lower() in ANNOTATION_SUFFIXES
        ]
        if len(found) > 1:
            raise InputError(found[1], f"{entry.name} has several region files ({found[0].name})")
        if found:
            more = read_region_file(found[0], image.shape)
            region = more if region is None else region | more  # overlapping regions merge
    if seen is not None:
        seen.update(f"class {c}" for c in ann.classes.values())
        seen.update(k for k, m in (("ignore", ann.ignore), ("region", region)) if m is not None)
    return Sample(entry.name, image, ann.labels, dict(entry.meta), ann.ignore, region)


def check_marks_found(spec: FolderSpec, seen: set[str]) -> None:
    """A region or ignore class (or ImageJ group) set in ``sparse`` that no file uses is a
    typo, not a dataset without regions: say so, naming the annotations and what was found."""
    default = Conventions()
    for kind, cls, group in (
        ("region", spec.sparse.region_class, spec.sparse.region_group),
        ("ignore", spec.sparse.ignore_class, spec.sparse.ignore_group),
    ):
        configured = cls != getattr(default, f"{kind}_class") or group is not None
        if not configured or kind in seen:
            continue
        what = f"class {cls!r}" + (f" or ROI group {group}" if group is not None else "")
        classes = sorted(c.removeprefix("class ") for c in seen if c.startswith("class "))
        raise InputError(
            spec.annotations,
            f"{kind} {what} (sparse.{kind}_class) names no annotation in any file; "
            f"classes found: {', '.join(classes) or 'none'}",
        )


def write_folder_dataset(
    spec: FolderSpec, out_dir: str | Path, **info: Any
) -> dict[str, dict[str, int]]:
    """Write ``out_dir/train`` and ``out_dir/test`` (atomically together); {split: counts}."""
    plan = plan_folder(spec)
    if plan.missing:
        log.warning(
            "%s: %d listed image(s) missing, used without them: %s",
            spec.images,
            len(plan.missing),
            ", ".join(plan.missing),
        )
    log.info("%s: %s", spec.images, plan.summary())

    seen: set[str] = set()

    def samples(entries: list[Entry]) -> Iterator[Sample]:
        for e in entries:
            yield read_entry(e, spec, seen)

    counts = {}
    with atomic_dir(out_dir) as tmp:
        for split, entries in (("train", plan.train), ("test", plan.test)):
            if entries:  # an evaluation-only import has no training split
                counts[split] = write_split(tmp / split, samples(entries), split=split, **info)
        check_marks_found(spec, seen)  # inside: a failure leaves no output
    return counts
