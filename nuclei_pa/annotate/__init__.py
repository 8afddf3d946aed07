"""Computer-assisted annotation (paper §III.D, Fig. 7): rounds, merge rules, overlays.

Model proposals become editable closed cubic splines for Fiji or QuPath (written through
:mod:`nuclei_pa.io.formats`); the annotator's edits come back in any common format and are merged
with new proposals, human work always winning.
"""

from nuclei_pa.annotate.merge import merge
from nuclei_pa.annotate.overlay import draw_overlay, overlay_rgb

__all__ = ["draw_overlay", "merge", "overlay_rgb"]
