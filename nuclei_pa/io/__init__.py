"""Reading and writing the project's file formats (TIFF images, label TIFFs, COCO JSON)."""

from nuclei_pa.io.atomic import atomic_dir, atomic_path, write_json, write_text
from nuclei_pa.io.images import read_image, read_labels, write_tiff

__all__ = [
    "atomic_dir",
    "atomic_path",
    "read_image",
    "read_labels",
    "write_json",
    "write_text",
    "write_tiff",
]
