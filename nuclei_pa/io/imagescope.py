"""Aperio ImageScope XML annotations → instance label images.

An ImageScope file holds ``Annotations/Annotation/Regions/Region/Vertices/Vertex`` elements,
one ``Region`` per outlined object (Kumar et al. 2017 and MoNuSeg outline one nucleus each).
Rasterisation rules (one place, so every user gets the same labels):

- Vertex ``X`` is the column and ``Y`` the row, in pixels, with pixel centres at integer
  coordinates; a pixel belongs to a region when its centre lies inside the polygon or on its
  outline.
- A polygon crossing the image border is rasterised on the unbounded plane and cropped to the
  image (the polygon is clipped, not its vertices moved).
- Self-intersecting outlines are filled by the non-zero winding rule (the polygon's filled
  mask), not even-odd: a trace that loops over itself (e.g. star-shaped, or a nucleus outlined
  past its starting point) encloses its overlap twice, and even-odd would punch a hole there.
  Remaining holes are filled too: nuclei have none.
- Where regions overlap, the later one in the file is painted on top (file order is the
  annotators' drawing order); an earlier region fully covered disappears.

Invalid regions — fewer than 3 vertices, all vertices on one line, or entirely outside the
image — are annotation mistakes. By default (``invalid="error"``) the first one is an
:class:`InputError` naming the file, the region and the problem; ``invalid="skip"`` drops them
with one log line (public releases such as Kumar's ship a few). A valid region thinner than a
pixel covers no pixel centre and is dropped either way.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.draw import polygon as draw_polygon
from skimage.segmentation import relabel_sequential

from nuclei_pa.errors import InputError

log = logging.getLogger(__name__)

INVALID_POLICIES = ("error", "skip")


@dataclass(frozen=True)
class Region:
    """One outline: the file's region ``Id`` (for messages) and its (x, y) vertices."""

    id: str
    xy: np.ndarray


def read_regions(xml_path: str | Path) -> list[Region]:
    """Every region of an ImageScope file, in file order."""
    xml_path = Path(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(xml_path, f"not a readable XML file ({exc})") from exc
    if root.tag != "Annotations":
        raise InputError(
            xml_path, f"root element is <{root.tag}>, expected ImageScope's <Annotations>"
        )
    regions = []
    for k, region in enumerate(root.iter("Region")):
        rid = region.get("Id", str(k + 1))
        try:
            xy = [(float(v.attrib["X"]), float(v.attrib["Y"])) for v in region.iter("Vertex")]
        except (KeyError, ValueError) as exc:
            raise InputError(xml_path, f"region {rid}: a vertex without numeric X and Y") from exc
        regions.append(Region(rid, np.asarray(xy, dtype=float).reshape(-1, 2)))
    return regions


def is_degenerate(xy: np.ndarray) -> bool:
    """True when an outline encloses no area: < 3 vertices or all on one line.

    (Not the shoelace area: a self-crossing bow tie with equal lobes has signed area 0 but is a
    real outline.)
    """
    if len(xy) < 3:
        return True
    d = xy - xy[0]
    cross = d[:, 0, None] * d[None, :, 1] - d[:, 1, None] * d[None, :, 0]
    return bool(np.abs(cross).max() < 1e-9)


def region_problem(xy: np.ndarray, shape: tuple[int, int]) -> str | None:
    """Why a region cannot be a nucleus outline in an image of ``shape``, or None."""
    if len(xy) < 3:
        return f"has {len(xy)} vertices (an outline needs at least 3)"
    if is_degenerate(xy):
        return "has all its vertices on one line (no area)"
    h, w = shape
    if xy[:, 0].max() < 0 or xy[:, 1].max() < 0 or xy[:, 0].min() > w - 1 or xy[:, 1].min() > h - 1:
        return f"lies entirely outside the {w}×{h} image"
    return None


def winding_fill(xy: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, int, int]:
    """Pixels whose centre has a non-zero winding number around the polygon (x, y vertices).

    Returns the mask of the polygon's bounding box clipped to the image, and the box's top-left
    (row, col). Non-zero winding fills every part an outline encloses, however it crosses itself.
    """
    h, w = shape
    r0, c0 = max(int(np.ceil(xy[:, 1].min())), 0), max(int(np.ceil(xy[:, 0].min())), 0)
    r1, c1 = min(int(np.floor(xy[:, 1].max())), h - 1), min(int(np.floor(xy[:, 0].max())), w - 1)
    if r1 < r0 or c1 < c0:
        return np.zeros((0, 0), dtype=bool), r0, c0
    py = np.arange(r0, r1 + 1, dtype=float)[None, :, None]
    px = np.arange(c0, c1 + 1, dtype=float)[None, None, :]
    x0, y0 = xy[:, 0, None, None], xy[:, 1, None, None]
    x1, y1 = np.roll(xy[:, 0], -1)[:, None, None], np.roll(xy[:, 1], -1)[:, None, None]
    side = (x1 - x0) * (py - y0) - (px - x0) * (y1 - y0)  # > 0: pixel left of the edge
    up = (y0 <= py) & (y1 > py) & (side > 0)
    down = (y1 <= py) & (y0 > py) & (side < 0)
    return (up.sum(axis=0) - down.sum(axis=0)) != 0, r0, c0


def rasterize_regions(regions: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Paint valid polygons (x, y vertices) into an int32 label image by the module's rules;
    degenerate ones are skipped (callers decide whether they are errors)."""
    labels = np.zeros(shape[:2], dtype=np.int32)
    label = 0
    for xy in regions:
        if is_degenerate(xy):
            continue  # skimage would still paint the pixels on a degenerate outline
        box, r0, c0 = winding_fill(xy, labels.shape)
        # skimage's even-odd raster adds the pixels whose centres lie on the outline itself
        rr, cc = draw_polygon(xy[:, 1], xy[:, 0], shape=labels.shape)
        if rr.size:
            box[rr - r0, cc - c0] = True
        if not box.any():
            continue
        box = ndimage.binary_fill_holes(box)
        label += 1
        labels[r0 : r0 + box.shape[0], c0 : c0 + box.shape[1]][box] = label
    return relabel_sequential(labels)[0].astype(np.int32)


def read_imagescope(
    xml_path: str | Path, shape: tuple[int, ...], invalid: str = "error"
) -> np.ndarray:
    """The label image of one ImageScope XML file for an image of ``shape`` (H, W[, C])."""
    if invalid not in INVALID_POLICIES:
        raise ValueError(f"invalid must be one of {INVALID_POLICIES}, got {invalid!r}")
    xml_path = Path(xml_path)
    hw = (int(shape[0]), int(shape[1]))
    regions = read_regions(xml_path)
    bad = [(r.id, p) for r in regions if (p := region_problem(r.xy, hw)) is not None]
    if bad and invalid == "error":
        rid, problem = bad[0]
        more = f" (and {len(bad) - 1} more invalid regions)" if len(bad) > 1 else ""
        raise InputError(xml_path, f"region {rid} {problem}{more}")
    if bad:
        log.warning(
            "%s: skipped %d invalid region(s): %s",
            xml_path,
            len(bad),
            "; ".join(f"region {rid} {p}" for rid, p in bad),
        )
    labels = rasterize_regions([r.xy for r in regions], hw)
    dropped = len(regions) - len(bad) - int(labels.max())
    if dropped:
        log.info("%s: %d region(s) cover no pixel centre or are fully covered", xml_path, dropped)
    return labels
