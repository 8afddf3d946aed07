"""What a crop keeps of the nuclei its border cuts: one rule for the ``crop`` derivation
(:mod:`nuclei_pa.data.derive`) and patch training (:mod:`nuclei_pa.engine.dataset`), so both cut
nuclei alike. Below both, so neither imports the other for it."""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_CROP_AREA", "is_sliver"]

# Pixels a nucleus cut by a crop border must keep to stay annotated (crop derivation, patches).
MIN_CROP_AREA = 10


def is_sliver(areas: np.ndarray, min_area: int = MIN_CROP_AREA) -> np.ndarray:
    """Which instances of a crop to drop, given their pixel counts in it: present but under
    ``min_area``, since nobody would annotate a nucleus they cannot see."""
    areas = np.asarray(areas)
    return (areas > 0) & (areas < min_area)
