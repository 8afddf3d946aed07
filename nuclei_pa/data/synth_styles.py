"""H&E organ styles of the synthetic generator.

The paper's histopathology test (Kumar et al. 2017, Table 3) holds out bladder, colon and stomach
images whose nuclei look unlike the training organs. Each style here caricatures one organ along
the axes that make that shift hard: nucleus size, density, elongation, outline irregularity,
chromatin pattern, staining strength and how nuclei are arranged (glands, sheets, clusters).
Sizes and counts are multipliers on the config's ``radius`` and ``nuclei_per_image`` so that one
config knob still scales every style.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Arrangement = Literal["cluster", "sheet", "gland", "scattered"]


@dataclass(frozen=True)
class HEStyle:
    """How one organ's tissue looks; see ``STYLES`` for the values used."""

    description: str
    size: float  # multiplier on SynthConfig.radius
    density: float  # multiplier on SynthConfig.nuclei_per_image
    elongation: tuple[float, float]  # aspect-ratio range of epithelial nuclei
    irregularity: float  # amplitude of the outline's Fourier harmonics
    arrangement: Arrangement  # how epithelial nuclei are placed
    grouped: float  # fraction of nuclei placed in the arrangement (rest: stroma)
    hematoxylin: float  # optical density of an average nucleus' hematoxylin
    eosin: float  # optical density of stroma eosin
    chromatin: float  # coarseness of nuclear texture (0 = smooth, dense; 1 = vesicular)
    nucleoli: float  # mean number of nucleoli per epithelial nucleus
    lymphocytes: float  # fraction of nuclei that are small, round, dark lymphocytes
    fibroblasts: float  # fraction of nuclei that are thin, elongated stromal nuclei
    lumen: float  # fraction of the image left white (lumens, fat, tears)
    overlap: float  # largest fraction of a nucleus another may cover


STYLES: dict[str, HEStyle] = {
    "breast": HEStyle(
        "invasive carcinoma: large pleomorphic vesicular nuclei in crowded nests",
        size=1.15,
        density=1.2,
        elongation=(1.0, 1.5),
        irregularity=0.11,
        arrangement="cluster",
        grouped=0.75,
        hematoxylin=0.75,
        eosin=0.35,
        chromatin=0.8,
        nucleoli=1.0,
        lymphocytes=0.12,
        fibroblasts=0.06,
        lumen=0.04,
        overlap=0.08,
    ),
    "kidney": HEStyle(
        "tubules: small round regular nuclei ringing open lumens, pink cytoplasm",
        size=0.8,
        density=1.0,
        elongation=(1.0, 1.35),
        irregularity=0.04,
        arrangement="gland",
        grouped=0.75,
        hematoxylin=0.7,
        eosin=0.5,
        chromatin=0.3,
        nucleoli=0.3,
        lymphocytes=0.06,
        fibroblasts=0.08,
        lumen=0.06,
        overlap=0.04,
    ),
    "liver": HEStyle(
        "hepatocyte plates: evenly spaced round nuclei with nucleoli, abundant cytoplasm",
        size=1.0,
        density=0.65,
        elongation=(1.0, 1.2),
        irregularity=0.03,
        arrangement="scattered",
        grouped=0.85,
        hematoxylin=0.6,
        eosin=0.5,
        chromatin=0.55,
        nucleoli=1.2,
        lymphocytes=0.06,
        fibroblasts=0.05,
        lumen=0.1,
        overlap=0.03,
    ),
    "prostate": HEStyle(
        "glands: basal rows of oval nuclei around lumens, pale cytoplasm",
        size=0.95,
        density=1.0,
        elongation=(1.15, 1.7),
        irregularity=0.05,
        arrangement="gland",
        grouped=0.75,
        hematoxylin=0.7,
        eosin=0.3,
        chromatin=0.4,
        nucleoli=0.6,
        lymphocytes=0.05,
        fibroblasts=0.1,
        lumen=0.05,
        overlap=0.05,
    ),
    "bladder": HEStyle(
        "urothelial carcinoma: dense sheets of dark, irregular, overlapping nuclei",
        size=1.0,
        density=1.6,
        elongation=(1.0, 1.7),
        irregularity=0.13,
        arrangement="sheet",
        grouped=0.85,
        hematoxylin=0.9,
        eosin=0.25,
        chromatin=0.45,
        nucleoli=0.5,
        lymphocytes=0.08,
        fibroblasts=0.04,
        lumen=0.03,
        overlap=0.1,
    ),
    "colon": HEStyle(
        "crypts: crowded elongated (cigar-shaped) dark nuclei palisading around lumens",
        size=0.9,
        density=1.4,
        elongation=(1.7, 2.8),
        irregularity=0.06,
        arrangement="gland",
        grouped=0.8,
        hematoxylin=0.9,
        eosin=0.35,
        chromatin=0.2,
        nucleoli=0.2,
        lymphocytes=0.15,
        fibroblasts=0.05,
        lumen=0.05,
        overlap=0.08,
    ),
    "stomach": HEStyle(
        "mucosa: small dense nuclei in glands amid many lymphocytes",
        size=0.8,
        density=1.4,
        elongation=(1.0, 1.5),
        irregularity=0.06,
        arrangement="cluster",
        grouped=0.6,
        hematoxylin=0.8,
        eosin=0.4,
        chromatin=0.25,
        nucleoli=0.3,
        lymphocytes=0.35,
        fibroblasts=0.05,
        lumen=0.07,
        overlap=0.06,
    ),
}
"""Organ styles; ``breast``, ``kidney``, ``liver`` and ``prostate`` are the paper's training
organs, ``bladder``, ``colon`` and ``stomach`` its unseen test organs."""
