"""The partial-annotation Mask R-CNN (paper section II) on torchvision."""

from nuclei_pa.model.build import build_model, count_parameters, median_box_wh, resolve_norm
from nuclei_pa.model.config import ModelConfig
from nuclei_pa.model.detector import NucleusRCNN

__all__ = [
    "ModelConfig",
    "NucleusRCNN",
    "build_model",
    "count_parameters",
    "median_box_wh",
    "resolve_norm",
]
