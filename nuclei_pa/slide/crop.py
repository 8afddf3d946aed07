"""A region of a predicted slide as an ordinary image + annotation pair, for ImageJ/Fiji.

Fiji cannot open a 50k² slide with 10⁵ ROIs; a pathologist checks a region. The slide's GeoJSON
is read one feature per line (as :mod:`nuclei_pa.slide.output` writes it, so a huge file is
never loaded whole); the nuclei wholly inside the region are shifted into its coordinates and
written with the project's own writers: a Fiji ROI set (.zip) beside an RGB TIFF of the region.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nuclei_pa.errors import InputError
from nuclei_pa.io.annotation import Annotation
from nuclei_pa.io.atomic import write_json
from nuclei_pa.io.formats import read_annotation
from nuclei_pa.io.imagej import write_imagej_rois
from nuclei_pa.io.images import write_tiff
from nuclei_pa.slide.reader import Slide


def features_in(geojson: str | Path, x: int, y: int, width: int, height: int) -> list[dict]:
    """Features of a slide GeoJSON whose ring lies inside [x, x+width) × [y, y+height), shifted."""
    kept = []
    with open(geojson, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip().rstrip(",")
            if not line.startswith('{"type": "Feature"'):
                continue
            feature = json.loads(line)
            ring = np.asarray(feature["geometry"]["coordinates"][0], float)
            lo, hi = ring.min(axis=0), ring.max(axis=0)
            if lo[0] < x or lo[1] < y or hi[0] > x + width or hi[1] > y + height:
                continue
            feature["geometry"]["coordinates"] = [np.round(ring - (x, y), 2).tolist()]
            kept.append(feature)
    return kept


def export_crop(
    slide_path: str | Path,
    geojson: str | Path,
    out_dir: str | Path,
    x: int,
    y: int,
    width: int,
    height: int,
) -> Annotation:
    """Write ``out_dir``/<stem>_<x>_<y>.tif (level-0 pixels) and its Fiji ROI set (.zip)."""
    out_dir = Path(out_dir)
    name = f"{Path(slide_path).stem}_{x}_{y}"
    with Slide(slide_path) as slide:
        h0, w0 = slide.sizes[0]
        if x < 0 or y < 0 or x + width > w0 or y + height > h0 or width < 1 or height < 1:
            raise InputError(slide.path, f"region {x},{y} {width}×{height} is not inside {w0}×{h0}")
        pixels = slide.read(0, y, y + height, x, x + width)
    out_dir.mkdir(parents=True, exist_ok=True)
    region = out_dir / f"{name}.geojson"
    write_json(
        region, {"type": "FeatureCollection", "features": features_in(geojson, x, y, width, height)}
    )
    ann = read_annotation(region, (height, width))
    write_tiff(out_dir / f"{name}.tif", pixels)
    write_imagej_rois(out_dir / f"{name}.zip", ann)
    return ann
