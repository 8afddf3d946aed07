"""Whole-slide images: read a pyramid at a chosen resolution, skip background, predict tile by
tile with seam-correct stitching, and stream the nuclei out as QuPath GeoJSON and CSV."""
