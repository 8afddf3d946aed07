"""What turns one slide tile into nuclei: a trained model, or the classical Otsu + watershed.

Both take statistics of the *whole slide* once, from the tissue of a low level, and apply them
unchanged to every tile: a per-tile Otsu threshold or per-tile percentile stretch would make a
nucleus look different to two overlapping tiles and break the seams (and stretch a tile of pale
tissue into "nuclei").

A predictor is called with an RGB uint8 tile and returns instance labels (int32, 0 =
background) of that tile and each label's score.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage
from skimage import color, feature, filters, morphology, segmentation

from nuclei_pa.classical import nucleus_channel

Predictor = Callable[[np.ndarray], tuple[np.ndarray, dict[int, float]]]


class ClassicalPredictor:
    """Otsu + distance-transform watershed (as :func:`nuclei_pa.classical.otsu_watershed`) with
    the hematoxylin threshold fixed once for the slide. Every nucleus scores 1.

    Three changes make it local, so a tile sees what the whole slide would: only holes up to
    ``max_hole`` pixels are filled (a hole is a global property: a tile edge can open a ring);
    foreground regions touching the tile border are dropped (the tile cannot know how the cut
    region continues; a neighbour with ``max_extent`` ≤ overlap sees it whole); and regions
    wider than ``max_extent`` pixels are dropped (dark stroma, folds — no nucleus is that wide,
    and nothing wider than the tile overlap can be stitched). Regions touching the slide's own
    edge are therefore lost too; slides have a glass margin.
    """

    def __init__(
        self,
        threshold: float,
        *,
        smooth_sigma: float = 1.0,
        min_distance: int = 4,
        min_area: int = 15,
        max_hole: int = 64,
        max_extent: int | None = 96,
    ) -> None:
        self.threshold = float(threshold)
        self.smooth_sigma, self.min_distance, self.min_area = smooth_sigma, min_distance, min_area
        self.max_hole, self.max_extent = max_hole, max_extent

    @classmethod
    def for_pixels(cls, rgb: np.ndarray, **kwargs: Any) -> ClassicalPredictor:
        """Threshold from tissue pixels (N, 3): Otsu on their hematoxylin density."""
        hed = color.rgb2hed(np.asarray(rgb, np.uint8).reshape(-1, 1, 3))[..., 0].ravel()
        return cls(float(filters.threshold_otsu(hed)), **kwargs)

    def describe(self) -> str:
        return (
            f"classical(threshold={self.threshold:.6g}, sigma={self.smooth_sigma}, "
            f"min_distance={self.min_distance}, min_area={self.min_area}, "
            f"max_hole={self.max_hole}, max_extent={self.max_extent})"
        )

    def __call__(self, tile: np.ndarray) -> tuple[np.ndarray, dict[int, float]]:
        chan = filters.gaussian(nucleus_channel(tile), sigma=self.smooth_sigma)
        fg = chan > self.threshold
        if fg.any():
            fg = morphology.remove_small_objects(fg, max_size=self.min_area - 1)
            fg = morphology.remove_small_holes(fg, max_size=self.max_hole)
        comp, _ = ndimage.label(fg)
        # a region cut by the tile border may be part of a wider one: its watershed split is
        # unknowable here, so it is left to the neighbouring tile that sees it whole
        drop = {int(k) for edge in (comp[0], comp[-1], comp[:, 0], comp[:, -1]) for k in edge}
        for k, sl in enumerate(ndimage.find_objects(comp), start=1):
            too_wide = (
                self.max_extent is not None
                and sl is not None
                and (max(s.stop - s.start for s in sl) > self.max_extent)
            )
            if sl is not None and (k in drop or too_wide):
                comp[sl][comp[sl] == k] = 0
        fg = comp > 0
        dist = ndimage.distance_transform_edt(fg)
        peaks = feature.peak_local_max(
            dist, min_distance=self.min_distance, labels=comp, exclude_border=False
        )
        markers = np.zeros(fg.shape, dtype=np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        labels = segmentation.watershed(-dist, markers, mask=fg).astype(np.int32)
        return labels, {int(k): 1.0 for k in np.unique(labels) if k}


class ModelPredictor:
    """A trained model on one tile via :func:`nuclei_pa.engine.predict.predict_image`.

    A model trained with ``intensity: percentile`` gets the slide's percentiles (from its tissue
    pixels) on every tile, never the tile's own.
    """

    def __init__(self, model: Any, tissue_rgb: np.ndarray, **params: Any) -> None:
        from nuclei_pa.engine.tensors import intensity_levels

        self.model = model
        self.params = params
        mode = getattr(model, "intensity", "fixed")
        pixels = np.asarray(tissue_rgb, np.uint8).reshape(-1, 1, 3)
        self.levels = intensity_levels(pixels, mode)

    def describe(self) -> str:
        levels = None if self.levels is None else np.round(self.levels, 6).tolist()
        # the model's inference settings, when not the defaults (an interrupted run's
        # fingerprint from before they existed stays the same)
        heads = getattr(self.model, "roi_heads", None)
        flips = bool(getattr(self.model, "test_time_flips", False))
        scale = float(getattr(heads, "mask_box_scale", 1.0))
        inference = ""
        if flips or scale != 1.0:
            grow = getattr(heads, "mask_box_grow", "cut")
            inference = f", inference={[('flips', flips), ('scale', scale), ('grow', grow)]}"
        return f"model(levels={levels}, params={sorted(self.params.items())}{inference})"

    def __call__(self, tile: np.ndarray) -> tuple[np.ndarray, dict[int, float]]:
        from nuclei_pa.engine.predict import predict_image

        return predict_image(
            self.model, tile, tile_size=0, device=None, levels=self.levels, **self.params
        )
