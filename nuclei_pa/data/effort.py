"""Annotation effort: what a training set cost its annotator, in outlined-nucleus units.

Comparing "25 % of nuclei at random" with "regions covering 25 % of the area" (issue 24) is
only fair at equal effort, so effort needs a unit and a price list:

- an outlined nucleus costs **1 unit** (the paper's count: DH25 keeps 525 of 2120 nuclei);
- a fully annotated region's boundary costs :data:`REGION_COST` = **2 units**: one for drawing
  it (a rectangle is a single drag, but it is placed so as to cut few nuclei, and the nuclei it
  does cut are outlined whole — those count as nuclei), and one for the check that makes a
  region a region: scanning its inside for faint, small or crowded nuclei nobody outlined yet.
  Random partial labels need no such check; a region without it is only partial labels;
- an ignore area costs :data:`IGNORE_COST` = **1 unit**: one shape drawn, no check.

Both prices are assumptions, stated and adjustable (``--region-cost``), not measurements: with
a timing study of real annotators they would be replaced, and the comparison re-read. Region
and ignore counts are of the stored masks' connected parts, so overlapping regions, which
merge, count once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nuclei_pa.io.dataset import Sample

REGION_COST = 2.0
IGNORE_COST = 1.0


def parts(mask: np.ndarray | None) -> int:
    """Separate parts of a mask (8-connected); 0 for none."""
    if mask is None or not mask.any():
        return 0
    return int(ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))[1])


@dataclass
class Effort:
    """What was annotated: nuclei outlined, region boundaries and ignore areas drawn."""

    nuclei: int = 0
    regions: int = 0
    ignore_areas: int = 0

    def add(self, sample: Sample) -> None:
        self.nuclei += sample.n_instances
        self.regions += parts(sample.region)
        self.ignore_areas += parts(sample.ignore)

    def units(self, region_cost: float = REGION_COST, ignore_cost: float = IGNORE_COST) -> float:
        """Total effort in outlined-nucleus units."""
        return self.nuclei + region_cost * self.regions + ignore_cost * self.ignore_areas

    def describe(self, region_cost: float = REGION_COST) -> str:
        text = f"{self.units(region_cost):g} effort units ({self.nuclei} nuclei"
        if self.regions:
            text += f" + {self.regions} regions × {region_cost:g}"
        if self.ignore_areas:
            text += f" + {self.ignore_areas} ignore areas × {IGNORE_COST:g}"
        return text + ")"


def effort_of(samples: Iterable[Sample]) -> Effort:
    """The effort of a whole split."""
    total = Effort()
    for sample in samples:
        total.add(sample)
    return total
