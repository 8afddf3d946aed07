"""nuclei-pa: nucleus segmentation with Mask R-CNN trained from partially annotated images.

Reimplementation of "Robust Nucleus Detection from Microscopical Image with Partially Labeled
Exemplars" (IEEE Access 2019) on torchvision, with the paper's data derivations and metrics.
"""

__version__ = "0.1.0"
