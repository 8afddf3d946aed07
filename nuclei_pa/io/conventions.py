"""How users mark "unknown" and "fully annotated" in the files they already write (issue 24).

- **Label images:** -1 (StarDist's and InstanSeg's convention, in a signed image) always means
  "neither nucleus nor background"; ``ignore_value`` (e.g. 65535) can name one more value.
- **QuPath GeoJSON:** an annotation whose class starts with ``ignore_class`` (QuPath's own
  ``Ignore*``) marks an unlabelled area; one whose class starts with ``region_class``
  (QuPath's ``Region*``) a region in which every nucleus is outlined.
- **ImageJ / Fiji ROI sets:** a ROI in group ``ignore_group`` / ``region_group``, or named
  starting with ``ignore_class`` / ``region_class`` (``Ignore-0001``, ``region 2``), does the
  same.

Matching is by prefix, case-insensitive. Writers use QuPath's built-in class names
(``Ignore*``, ``Region*``) when the defaults are in use, so a round trip keeps them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nuclei_pa.errors import ConfigError

IGNORE, REGION = "ignore", "region"


@dataclass(frozen=True)
class Conventions:
    """The marks of unknown areas and fully annotated regions (see the module docstring)."""

    ignore_value: int | None = None
    ignore_class: str = "Ignore"
    region_class: str = "Region"
    ignore_group: int | None = None
    region_group: int | None = None

    KEYS = ("ignore_value", "ignore_class", "region_class", "ignore_group", "region_group")

    @classmethod
    def from_config(cls, data: Mapping[str, Any] | None) -> Conventions:
        """From config data; errors name the key."""
        data = data or {}
        for key in data:
            if key not in cls.KEYS:
                raise ConfigError(str(key), f"unknown key; known: {', '.join(cls.KEYS)}")
        for key in ("ignore_value", "ignore_group", "region_group"):
            value = data.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(key, f"expected an integer, got {value!r}")
        for key in ("ignore_group", "region_group"):
            value = data.get(key)
            if value is not None and not 1 <= value <= 255:
                raise ConfigError(key, f"ImageJ groups are 1-255, got {value}")
        for key in ("ignore_class", "region_class"):
            value = data.get(key, getattr(cls, key))
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(key, f"expected a class name, got {value!r}")
        out = cls(**{k: v for k, v in data.items() if v is not None})
        if out.ignore_class.lower().startswith(out.region_class.lower()) or (
            out.region_class.lower().startswith(out.ignore_class.lower())
        ):
            raise ConfigError("region_class", "must not share a prefix with ignore_class")
        if out.ignore_group is not None and out.ignore_group == out.region_group:
            raise ConfigError("region_group", "must differ from ignore_group")
        if out.ignore_value is not None and out.ignore_value == 0:
            raise ConfigError("ignore_value", "0 is background")
        return out

    def kind_of_class(self, name: str | None) -> str | None:
        """'ignore', 'region' or None (a nucleus) for a QuPath class or ImageJ ROI name."""
        if not name:
            return None
        low = name.strip().lower()
        if low.startswith(self.ignore_class.lower()):
            return IGNORE
        if low.startswith(self.region_class.lower()):
            return REGION
        return None

    def kind_of_roi(self, name: str | None, group: int) -> str | None:
        """An ImageJ ROI's kind, by its group first, then by its name."""
        if group and group == self.ignore_group:
            return IGNORE
        if group and group == self.region_group:
            return REGION
        return self.kind_of_class(name)

    def class_name(self, kind: str) -> str:
        """The class written for ``kind``: QuPath's built-in name for the default prefixes."""
        prefix = self.ignore_class if kind == IGNORE else self.region_class
        return f"{prefix}*" if prefix in ("Ignore", "Region") else prefix

    def group(self, kind: str) -> int:
        """The ImageJ group written for ``kind`` (0: none)."""
        return (self.ignore_group if kind == IGNORE else self.region_group) or 0


def mask_polygons(mask: np.ndarray) -> list[list[np.ndarray]]:
    """A mask as polygons, each [outer ring, hole rings...], in (x, y) pixel-corner coordinates.

    Rings run between the centres of inside and outside pixels (marching squares at 0.5), so
    filling them by the pixel-centre rule gives back exactly ``mask``: what a writer stores is
    what a reader paints. Each ring is closed (first vertex repeated).
    """
    from matplotlib.path import Path as MplPath
    from skimage import measure

    contours = measure.find_contours(np.pad(np.asarray(mask, dtype=float), 1), 0.5)
    rings = [np.column_stack([c[:, 1] - 0.5, c[:, 0] - 0.5]) for c in contours]
    rings = [r for r in rings if len(r) >= 4]
    paths = [MplPath(r) for r in rings]
    # how many other rings hold a ring: even → an outer boundary, odd → a hole
    inside = [
        [j for j, p in enumerate(paths) if j != i and p.contains_point(rings[i][0])]
        for i in range(len(rings))
    ]
    polygons: dict[int, list[np.ndarray]] = {}
    for i, holders in enumerate(inside):
        if len(holders) % 2 == 0:
            polygons[i] = [rings[i]]
    for i, holders in enumerate(inside):
        if len(holders) % 2 == 1:  # its outer ring: the holder held by one ring fewer
            outer = next(j for j in holders if len(inside[j]) == len(holders) - 1)
            polygons[outer].append(rings[i])
    return list(polygons.values())
