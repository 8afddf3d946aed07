"""QuPath GeoJSON: read polygons (cells by their nucleus), write spline outlines as annotations."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np

from nuclei_pa.errors import InputError
from nuclei_pa.io.annotation import SOURCE_RGB, Annotation, parse_score, parse_source
from nuclei_pa.io.atomic import write_json
from nuclei_pa.io.conventions import IGNORE, REGION, Conventions
from nuclei_pa.io.jsonfile import read_json
from nuclei_pa.io.shapes import (
    Shape,
    check_bounds,
    marked_parts,
    paint_shapes,
    rasterise_rings,
    warn_skipped,
)
from nuclei_pa.io.splines import instance_splines, spline_polygon

CLASS_NAME = "Nucleus"
_UUID_NS = uuid.UUID("8f0c6a0e-4a36-4b55-9b3c-6b7f0f7a2d11")  # deterministic feature ids


def looks_geojson(data: Any) -> bool:
    if isinstance(data, dict):
        return data.get("type") in (
            "FeatureCollection",
            "Feature",
            "Polygon",
            "MultiPolygon",
            "GeometryCollection",
        )
    return isinstance(data, list) and all(
        isinstance(f, dict) and f.get("type") == "Feature" for f in data
    )


def _features(path: Path, data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):
        return data
    if data.get("type") == "FeatureCollection":
        feats = data.get("features")
        if not isinstance(feats, list):
            raise InputError(path, "FeatureCollection without a 'features' list")
        return feats
    if data.get("type") == "Feature":
        return [data]
    return [{"type": "Feature", "geometry": data, "properties": {}}]  # a bare geometry


def _polygons(path: Path, what: str, geom: Any) -> list[list[Any]] | None:
    """Polygon coordinate lists of a geometry; None when it has no area (points, lines)."""
    if not isinstance(geom, dict):
        return None
    kind = geom.get("type")
    if kind == "Polygon":
        return [geom.get("coordinates")]
    if kind == "MultiPolygon":
        return list(geom.get("coordinates") or [])
    if kind == "GeometryCollection":
        polys = [_polygons(path, what, g) for g in geom.get("geometries") or []]
        found = [p for group in polys if group for p in group]
        return found or None
    if kind in ("Point", "MultiPoint", "LineString", "MultiLineString"):
        return None
    raise InputError(path, f"{what}: unknown geometry type {kind!r}")


def _ring_array(path: Path, what: str, ring: Any) -> np.ndarray:
    try:
        arr = np.asarray([[float(p[0]), float(p[1])] for p in ring], dtype=float)
    except (TypeError, ValueError, IndexError):
        raise InputError(path, f"{what}: ring is not a list of [x, y] positions") from None
    if len(arr) and np.allclose(arr[0], arr[-1]):
        arr = arr[:-1]
    if len(arr) < 3:
        raise InputError(path, f"{what}: ring has fewer than 3 distinct positions")
    return arr


def _measurement(props: dict[str, Any], key: str) -> Any:
    meas = props.get("measurements")
    if isinstance(meas, dict):
        return meas.get(key)
    if isinstance(meas, list):  # QuPath 0.2: [{"name": ..., "value": ...}]
        for m in meas:
            if isinstance(m, dict) and m.get("name") == key:
                return m.get("value")
    return None


def _classification(value: Any) -> str | None:
    """QuPath's class name: ``{"name": ..., "color": ...}`` (0.2 on) or a bare string."""
    if isinstance(value, dict):
        value = value.get("name")
    return str(value) if value else None


def read_geojson(path: Path, shape: tuple[int, int], conv: Conventions) -> Annotation:
    data = read_json(path)
    if not looks_geojson(data):
        raise InputError(path, "not GeoJSON: expected a FeatureCollection or a list of Features")
    shapes: list[Shape] = []
    skipped: list[str] = []
    for i, feat in enumerate(_features(path, data)):
        if not isinstance(feat, dict):
            raise InputError(path, f"feature {i} is not an object")
        props = feat.get("properties") or {}
        name = str(props.get("name") or feat.get("id") or f"feature {i}")
        what = f"feature {i} ({name})" if name != f"feature {i}" else name
        # QuPath cells carry the nucleus as a second geometry; that is the instance we want.
        geom = feat.get("nucleusGeometry") or props.get("nucleusGeometry") or feat.get("geometry")
        polys = _polygons(path, what, geom)
        if polys is None:
            kind = geom.get("type") if isinstance(geom, dict) else "no geometry"
            skipped.append(f"{name} ({kind})")
            continue
        rings: list[np.ndarray] = []
        for poly in polys:
            if not isinstance(poly, list) or not poly:
                raise InputError(path, f"{what}: polygon without rings")
            rings.extend(_ring_array(path, what, ring) for ring in poly)
        for ring in rings:
            check_bounds(path, what, ring, shape)
        # Even-odd filling treats holes (inner rings) as holes, and disjoint parts as parts.
        r0, c0, mask = rasterise_rings(rings, shape)
        score = props.get("score", _measurement(props, "score"))
        cls = _classification(props.get("classification"))
        shapes.append(
            Shape(
                r0,
                c0,
                mask,
                name,
                score=parse_score(path, what, score),
                source=parse_source(props.get("source"), name),
                cls=cls,
                object_type=str(props["objectType"]) if props.get("objectType") else None,
                kind=conv.kind_of_class(cls),
            )
        )
    warn_skipped(path, skipped)
    return paint_shapes(path, shapes, shape)


def write_geojson(
    path: str | Path,
    ann: Annotation,
    samples_per_segment: int = 8,
    conventions: Conventions | None = None,
    **fit_kwargs: Any,
) -> None:
    """QuPath-importable FeatureCollection: one "Nucleus" annotation per instance.

    Geometry is the fitted spline sampled densely as a closed ring (QuPath has no spline type),
    clipped to the image; properties carry ``source``, ``score`` (also as a measurement, which
    QuPath displays), a per-source display colour, and the classification and objectType read
    from QuPath (default "Nucleus", "annotation"). Objects are unlocked for editing. Ignored
    areas and regions follow as annotations of class ``Ignore*`` and ``Region*`` (or the
    configured classes), exact pixel outlines with their holes.
    """
    conv = conventions or Conventions()
    path = Path(path)
    h, w = ann.labels.shape
    features = []
    for lab, pts in instance_splines(ann.labels, **fit_kwargs).items():
        src = ann.source_of(lab)
        ring = spline_polygon(pts, samples_per_segment)
        ring = np.clip(ring, [0.0, 0.0], [float(w), float(h)])
        ring = np.round(np.vstack([ring, ring[:1]]), 3)
        name = f"{src}-{lab:04d}"
        props: dict[str, Any] = {
            "objectType": ann.object_types.get(lab, "annotation"),
            "name": name,
            "classification": {"name": ann.classes.get(lab, CLASS_NAME)},
            "color": list(SOURCE_RGB[src]),
            "isLocked": False,
            "source": src,
        }
        if lab in ann.scores:
            props["score"] = float(ann.scores[lab])
            props["measurements"] = {"score": float(ann.scores[lab])}
        features.append(
            {
                "type": "Feature",
                "id": str(uuid.uuid5(_UUID_NS, f"{path.stem}/{name}")),
                "geometry": {"type": "Polygon", "coordinates": [ring.tolist()]},
                "properties": props,
            }
        )
    counts = {IGNORE: 0, REGION: 0}
    for kind, rings in marked_parts(ann):
        counts[kind] += 1
        name = f"{kind}-{counts[kind]:04d}"
        features.append(
            {
                "type": "Feature",
                "id": str(uuid.uuid5(_UUID_NS, f"{path.stem}/{name}")),
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [np.round(r, 3).tolist() for r in rings],
                },
                "properties": {
                    "objectType": "annotation",
                    "name": name,
                    "classification": {"name": conv.class_name(kind)},
                    "isLocked": False,
                },
            }
        )
    write_json(path, {"type": "FeatureCollection", "features": features})
