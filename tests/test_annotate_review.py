"""Bookkeeping of a round (accepted, rejected, outlined, repeats), exact restoration of
untouched spline outlines, and the annotate command's defaults and help."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from roifile import ImagejRoi

from nuclei_pa.annotate.inputs import restore_untouched
from nuclei_pa.annotate.review import review, suppress_rejected
from nuclei_pa.cli import main
from nuclei_pa.io.annotation import Annotation
from nuclei_pa.io.formats import read_annotation
from nuclei_pa.io.imagej import write_imagej_rois
from tests.conftest import disk_labels

SHAPE = (64, 64)
CENTRES = [(12, 12), (12, 40), (40, 12), (40, 40), (52, 52)]


def previous_round() -> Annotation:
    """Disks 1-2 human, 3-5 proposed (scores 0.7-0.9)."""
    labels = disk_labels(SHAPE, CENTRES, 6)
    source = {1: "human", 2: "human", 3: "proposed", 4: "proposed", 5: "proposed"}
    return Annotation(labels, scores={3: 0.7, 4: 0.8, 5: 0.9}, source=source)


def test_review_counts_by_hand():
    prev = previous_round()
    corrected = prev.labels.copy()
    corrected[corrected == 4] = 0  # proposal 4 deleted
    corrected[corrected == 5] = 0  # proposal 5 redrawn 1 px to the right: still accepted
    corrected[disk_labels(SHAPE, [(52, 53)], 6) > 0] = 5
    corrected[disk_labels(SHAPE, [(26, 26)], 4) > 0] = 9  # a nucleus nobody was shown
    corrected[corrected == 2] = 0  # a human one replaced by a much smaller outline
    corrected[disk_labels(SHAPE, [(12, 40)], 2) > 0] = 2
    seen = review(corrected, prev)
    assert (seen.accepted, seen.outlined) == (2, 2)  # 3 and 5; 9 and the shrunk 2
    assert np.array_equal(seen.rejected > 0, prev.labels == 4)
    first = review(corrected, None)
    assert (first.accepted, first.outlined, first.rejected.any()) == (0, 5, False)


def test_suppress_rejected_drops_only_repeats():
    ann = previous_round()
    rejected = disk_labels(SHAPE, [(40, 41)], 6)  # proposal 4 again, 1 px off: a repeat
    elsewhere = disk_labels(SHAPE, [(12, 12)], 6)  # matches human 1: humans are never dropped
    out, n = suppress_rejected(ann, [rejected, elsewhere])
    assert n == 1
    assert out.ids == [1, 2, 3, 5] and 4 not in out.scores and 4 not in out.source
    assert np.array_equal(out.labels[ann.labels != 4], ann.labels[ann.labels != 4])
    same, n = suppress_rejected(ann, [])
    assert same is ann and n == 0


def test_untouched_spline_outlines_come_back_exactly(tmp_path):
    # irregular shapes, which a spline cannot reproduce pixel for pixel
    rng = np.random.default_rng(0)
    labels = disk_labels(SHAPE, CENTRES, 6)
    labels[(labels > 0) & (rng.random(SHAPE) < 0.15)] = 0
    exact = Annotation.from_labels(labels, source="proposed")
    path = tmp_path / "img.zip"
    write_imagej_rois(path, exact)
    with zipfile.ZipFile(path) as zf:
        rois = {n: zf.read(n) for n in zf.namelist()}
    moved = ImagejRoi.frombytes(rois["proposed-0002.roi"])
    moved = ImagejRoi.frompoints(
        np.asarray(moved.coordinates()) + np.array([3.0, 0.0]), name="proposed-0002"
    )
    rois["proposed-0002.roi"] = moved.tobytes()
    del rois["proposed-0005.roi"]
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in rois.items():
            zf.writestr(name, data)
    edited = read_annotation(path, SHAPE).labels
    assert not np.array_equal(edited > 0, (labels > 0) & (labels != 5))  # splines are lossy
    restored = restore_untouched(edited, exact, ".zip")
    for lab in (1, 3, 4):  # untouched: the exact masks, whatever their ids now
        ids = np.unique(restored[labels == lab])
        assert len(ids) == 1 and np.array_equal(restored == ids[0], labels == lab)
    moved_id = edited[12, 43]  # the moved outline (centre x 40 → 43), as the user left it
    assert moved_id > 0
    assert np.array_equal(restored == moved_id, edited == moved_id)
    assert not (restored[labels == 5]).any()


def test_cli_defaults_match_the_library():
    from nuclei_pa.annotate.session import ROUND_ITERATIONS, ProposalSettings
    from nuclei_pa.commands import annotate as command

    assert command.ITERATIONS == ROUND_ITERATIONS == 200
    defaults = ProposalSettings()
    assert (defaults.min_new, defaults.overlap) == (command.MIN_NEW, command.OVERLAP)


def test_help_explains_the_session(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["annotate", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for text in ["--annotations", "--min-new", "--round", "round_NN/rois/<stem>.zip", "DONE"]:
        assert text in out, text
