"""The partial-annotation Mask R-CNN (paper section II) on torchvision."""

from nuclei_pa.model.build import NucleusRCNN, build_model, count_parameters, median_box_wh
from nuclei_pa.model.config import ModelConfig

__all__ = ["ModelConfig", "NucleusRCNN", "build_model", "count_parameters", "median_box_wh"]
