"""Public datasets of the paper: what each one is (files, checksums, licence, citation).

``REGISTRY`` names each source's files (URL, cache file name, checksum), licence and citation.
:func:`nuclei_pa.data.prepare.fetch` downloads them through :mod:`nuclei_pa.io.download` (which
says how they are verified) and :func:`nuclei_pa.data.prepare.prepare` converts them to the
project's ``train/`` + ``test/`` split folders (see :mod:`nuclei_pa.data.convert`).
"""

from __future__ import annotations

from dataclasses import dataclass

from nuclei_pa.io.download import RemoteFile


@dataclass(frozen=True)
class DatasetSource:
    """A public dataset: its files, terms of use, and the converter that makes our splits."""

    name: str
    files: tuple[RemoteFile, ...]
    citation: str
    licence: str
    converter: str  # key of nuclei_pa.data.convert.CONVERTERS
    page: str = ""  # human-readable page to download from by hand
    notes: str = ""


REGISTRY: dict[str, DatasetSource] = {
    s.name: s
    for s in (
        DatasetSource(
            name="dh100",
            files=(
                RemoteFile(
                    # A shared Dropbox folder; dl=1 serves the whole folder as one zip.
                    url="https://www.dropbox.com/sh/2cgeu79o74stx6z/AABXRmbZFgclUCSLUTSjDLPZa?dl=1",
                    filename="dh100_dropbox.zip",
                ),
            ),
            citation=(
                "Robust Nucleus Detection from Microscopical Image with Partially Labeled "
                "Exemplars, IEEE Access 7 (2019), arXiv:1907.09738, and the dataset paper it "
                "cites as its reference [31]; data as distributed with "
                "https://github.com/feng-lab/nuclei"
            ),
            licence="not stated by the authors; ask them before redistributing",
            converter="dh100",
            page="https://github.com/feng-lab/nuclei",
            notes=(
                "Layout of the authors' paths_catalog.py: DH100/{train,val,test}2019/ images and "
                "DH100/annotations/instances_{train,val,test}2019.json (COCO). train2019 becomes "
                "our train split, test2019 our test split; val2019, when present, is written as a "
                "separate val/ split (option val='train' merges it into train, 'drop' skips it) "
                "so that train keeps the paper's 60 images. DH25 and DH25crop are derived by "
                "the project, not downloaded. Dropbox publishes no checksum and re-zips the "
                "folder on every request, so the recorded hash identifies one particular zip."
            ),
        ),
        DatasetSource(
            name="kumar",
            files=(
                RemoteFile(
                    # MoNuSeg 2018 training data = Kumar et al.'s 30 images and annotations.
                    url="https://drive.google.com/uc?export=download&"
                    "id=1ZgqFJomqQGNnsx7w7QBzQQMVA16lbVCA",
                    filename="MoNuSeg_2018_Training_Data.zip",
                    # pinned by torch_em (torch_em/data/datasets/histopathology/monuseg.py,
                    # CHECKSUM["train"]) for this same Google Drive file
                    sha256="25d3d3185bb2970b397cafa72eb664c9b4d24294aee382e7e3df9885affce742",
                ),
            ),
            citation=(
                "Kumar N., Verma R., Sharma S., Bhargava S., Vahadane A., Sethi A., A Dataset and "
                "a Technique for Generalized Nuclear Segmentation for Computational Pathology, "
                "IEEE Trans. Med. Imaging 36(7):1550-1560 (2017), doi:10.1109/TMI.2017.2677499"
            ),
            licence=(
                "CC BY-NC-SA 4.0 as stated on the MoNuSeg challenge data page "
                "(https://monuseg.grand-challenge.org/Data/); check it before redistributing"
            ),
            converter="kumar",
            page="https://nucleisegmentationbenchmark.weebly.com/dataset.html",
            notes=(
                "30 H&E TCGA images of 1000x1000 px (TIFF) with Aperio ImageScope XML polygons; "
                "the same 30 images form the MoNuSeg 2018 training set, whose zip (Google Drive, "
                "linked from the challenge's data page) is downloaded here. Splits follow Kumar "
                "et al. 2017: 16 training images, 8 same-organ and 6 unseen-organ test images. "
                "The organisers publish no checksum; the SHA-256 pinned here is the one the "
                "torch_em loader pins for this Google Drive file (the version it downloads "
                "today); a zip from another release fails the check and says so. Google Drive "
                "may serve a virus-scan or quota web page instead of the file: that is "
                "recognised and explained (download it by hand then)."
            ),
        ),
        DatasetSource(
            name="tnbc",
            files=(
                RemoteFile(
                    # version 1.1 (2019-02-27, a few mislabelled pixels corrected) of the
                    # record https://doi.org/10.5281/zenodo.1175282
                    url="https://zenodo.org/records/2579118/files/TNBC_NucleiSegmentation.zip",
                    filename="TNBC_NucleiSegmentation.zip",
                    # the MD5 Zenodo lists for this file (25,232,361 bytes)
                    md5="1605712a752b201b57eacc8f866adb4f",
                ),
            ),
            citation=(
                "Naylor P., Laé M., Reyal F., Walter T., Segmentation of Nuclei in "
                "Histopathology Images by Deep Regression of the Distance Map, IEEE Trans. Med. "
                "Imaging 38(2):448-459 (2019), doi:10.1109/TMI.2018.2865709; data: Zenodo "
                "doi:10.5281/zenodo.1175282"
            ),
            licence="CC BY 4.0 (the Zenodo record's licence field); check it before redistributing",
            converter="tnbc",
            page="https://zenodo.org/records/2579118",
            notes=(
                "50 H&E images (512x512 PNG) of 11 triple-negative breast cancer patients: "
                "Slide_XX/*.png with binary masks GT_XX/*.png. Instances come from connected "
                "components of the binary masks, so touching nuclei drawn without a gap merge "
                "into one. All 50 images form the train split (test is empty); the paper's "
                "TNBC experiment adds Kumar breast images: see "
                "nuclei_pa.data.convert.tnbc_breast_split. The zip is version 1.1 of the "
                "record, checked against the MD5 Zenodo publishes for it."
            ),
        ),
    )
}


def source(name: str) -> DatasetSource:
    """The registry entry ``name``, or a ValueError listing the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(REGISTRY)}") from None


def describe(name: str) -> str:
    """A short text about a source (files, licence, citation) for logs and reports."""
    src = source(name)
    lines = [f"{src.name}: {src.page}"]
    lines += [
        f"  {f.filename} <- {f.url} "
        + (f"(sha256 {f.sha256})" if f.sha256 else f"(md5 {f.md5})" if f.md5 else "(unpublished)")
        for f in src.files
    ]
    lines += [f"  licence: {src.licence}", f"  cite: {src.citation}"]
    if src.notes:
        lines.append(f"  notes: {src.notes}")
    return "\n".join(lines)


__all__ = ["REGISTRY", "DatasetSource", "describe", "source"]
