"""The session report: ``rounds.csv`` and ``rounds.png``, rebuilt from every round's record.

Rebuilt rather than appended, so a re-run round replaces its row and the report always agrees
with the round folders on disk. Columns:

``round, images``
``human``       instances annotated at the start of the round (trained on, kept exactly)
``outlined``    of those, drawn by hand since the previous round (round 1: all of them)
``accepted``    of those, proposals of the previous round the annotator kept (possibly edited)
``rejected``    proposals of the previous round the annotator deleted
``proposed``    the model's detections that overlap no annotated nucleus
``suppressed``  of those, repeats of an earlier rejected proposal, not shown again
``new``         proposals shown for review (proposed − suppressed); --min-new compares with this
``score_*``     min, quartiles and max of the shown proposals' scores (empty without any)
``seconds``     wall time of the round up to its export (reading, training, predicting)
``status``      ``continue``, or ``done`` on the round that proposed fewer than --min-new
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from nuclei_pa.io.atomic import atomic_path, write_text

__all__ = ["COLUMNS", "score_quantiles", "write_report"]

COLUMNS = (
    "round",
    "images",
    "human",
    "outlined",
    "accepted",
    "rejected",
    "proposed",
    "suppressed",
    "new",
    "score_min",
    "score_q25",
    "score_median",
    "score_q75",
    "score_max",
    "seconds",
    "status",
)
_QUANTILES = {
    "score_min": 0,
    "score_q25": 25,
    "score_median": 50,
    "score_q75": 75,
    "score_max": 100,
}


def score_quantiles(scores: list[float]) -> dict[str, float | None]:
    """Min, quartiles and max of the proposals' scores; None each when there are none."""
    if not scores:
        return dict.fromkeys(_QUANTILES)
    values = np.percentile(np.asarray(scores, dtype=float), list(_QUANTILES.values()))
    return {k: round(float(v), 4) for k, v in zip(_QUANTILES, values, strict=True)}


def write_report(records: list[dict[str, Any]], csv_path: Path, png_path: Path) -> None:
    """One CSV row per round record (ascending round) and the two-panel figure."""
    records = sorted(records, key=lambda r: r["round"])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for rec in records:
        writer.writerow({k: "" if v is None else v for k, v in rec["counts"].items()})
    write_text(csv_path, buf.getvalue())
    _figure(records, png_path)


def _figure(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r["round"] for r in records]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    series = {
        "annotated (human)": "human",
        "outlined by hand": "outlined",
        "accepted proposals": "accepted",
        "rejected proposals": "rejected",
        "new proposals": "new",
    }
    for label, key in series.items():
        left.plot(rounds, [r["counts"][key] for r in records], marker="o", label=label)
    left.set_xlabel("round")
    left.set_ylabel("nuclei (all images)")
    left.set_xticks(rounds)
    left.grid(alpha=0.3)
    left.legend(fontsize=8, frameon=False)
    last = records[-1]
    status = last["counts"]["status"]
    left.set_title(f"done after round {last['round']}" if status == "done" else "annotation rounds")
    bins = np.linspace(0.0, 1.0, 21)
    for rec in records:
        scores = rec.get("proposal_scores", [])
        if scores:
            right.hist(scores, bins=bins, histtype="step", lw=1.5, label=f"round {rec['round']}")
    right.set_xlabel("proposal score")
    right.set_ylabel("proposals")
    right.set_title("scores of the proposals shown")
    right.grid(alpha=0.3)
    if any(rec.get("proposal_scores") for rec in records):
        right.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
