"""Evaluation: the paper's instance-segmentation metrics and the paired test between methods.

The dense reference (:mod:`nuclei_pa.eval.dense`) and the folder-level evaluation
(:mod:`nuclei_pa.eval.folders`) are imported from their modules, not re-exported here.
"""

from nuclei_pa.eval.matching import (
    MAP_THRESHOLDS,
    ImageMetrics,
    OverlapTable,
    aji_pairs,
    best_pairs,
    image_metrics,
    iou_matrix,
    metrics_from_overlaps,
    overlap_table,
)
from nuclei_pa.eval.stats import WilcoxonResult, wilcoxon

__all__ = [
    "MAP_THRESHOLDS",
    "ImageMetrics",
    "OverlapTable",
    "WilcoxonResult",
    "aji_pairs",
    "best_pairs",
    "image_metrics",
    "iou_matrix",
    "metrics_from_overlaps",
    "overlap_table",
    "wilcoxon",
]
