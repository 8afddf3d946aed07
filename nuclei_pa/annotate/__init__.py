"""Computer-assisted annotation (paper §III.D, Fig. 7): formats, splines, merge rules, overlays.

Model proposals become editable closed cubic splines for Fiji or QuPath; the annotator's edits
come back in any common format and are merged with new proposals, human work always winning.
"""

from nuclei_pa.annotate.formats import (
    SOURCES,
    Annotation,
    detect_format,
    read_annotation,
    read_annotations,
    write_annotations,
    write_coco,
    write_geojson,
    write_imagej_rois,
    write_label_tiff,
)
from nuclei_pa.annotate.merge import merge
from nuclei_pa.annotate.overlay import draw_overlay, overlay_rgb
from nuclei_pa.annotate.splines import (
    fit_spline,
    instance_splines,
    mask_outline,
    rasterise,
    spline_iou,
    spline_polygon,
)

__all__ = [
    "SOURCES",
    "Annotation",
    "detect_format",
    "draw_overlay",
    "fit_spline",
    "instance_splines",
    "mask_outline",
    "merge",
    "overlay_rgb",
    "rasterise",
    "read_annotation",
    "read_annotations",
    "spline_iou",
    "spline_polygon",
    "write_annotations",
    "write_coco",
    "write_geojson",
    "write_imagej_rois",
    "write_label_tiff",
]
