"""Nuclei streamed to a QuPath GeoJSON and a CSV as they are found, resumable after a kill.

Both files grow as hidden ``.NAME.part`` files beside their final names. After every tile row
they are flushed to disk and a small checkpoint records their lengths and the number of nuclei;
a rerun with the same settings truncates the parts to those lengths (dropping whatever a killed
row had half written) and goes on from the next row. Only a finished run renames the parts onto
the final names, CSV first and GeoJSON last, so a GeoJSON under its own name is always complete.

GeoJSON follows QuPath's import schema: a FeatureCollection of ``"objectType": "detection"``
Features with a Polygon in level-0 pixel coordinates, classification "Nucleus" and the score as
a measurement. The CSV has one row per nucleus: centroid in level-0 pixels (and µm when the
slide knows its resolution), area in µm², score.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from nuclei_pa.io.atomic import write_json
from nuclei_pa.io.splines import mask_outline

CSV_HEADER = "id,x,y,x_um,y_um,area_px,area_um2,score\n"
HEADER = '{"type": "FeatureCollection", "features": [\n'
FOOTER = "\n]}\n"
_UUID_NS = uuid.UUID("2b1e6f55-0d0c-4a8e-9a59-5c6f3f1e7c42")  # deterministic feature ids
NUCLEUS_RGB = [255, 160, 0]


@dataclass(frozen=True)
class Nucleus:
    """One nucleus: its mask cropped to its box, placed at plane row ``y0``, column ``x0``."""

    y0: int
    x0: int
    mask: np.ndarray
    score: float


def paths(out: str | Path) -> dict[str, Path]:
    """The final, partial and checkpoint paths of the outputs named by ``out`` (a .geojson)."""
    out = Path(out)
    csv = out.with_suffix(".csv")
    return {
        "geojson": out,
        "csv": csv,
        "geojson_part": out.with_name(f".{out.name}.part"),
        "csv_part": csv.with_name(f".{csv.name}.part"),
        "checkpoint": out.with_name(f".{out.name}.resume.json"),
    }


class NucleusSink:
    """Appends nuclei to the partial outputs; ``commit`` marks a row done, ``finish`` publishes.

    ``fingerprint`` names the run's settings; a checkpoint written under another fingerprint is
    ignored and the run starts afresh. ``downsample`` and ``mpp`` map plane pixels to level-0
    pixels and to µm.
    """

    def __init__(
        self,
        out: str | Path,
        fingerprint: dict[str, Any],
        *,
        downsample: float,
        mpp: float | None,
        restart: bool = False,
    ) -> None:
        self.paths = paths(out)
        self.fingerprint = fingerprint
        self.downsample, self.mpp = downsample, mpp
        self.stem = self.paths["geojson"].stem
        self.rows_done, self.count = 0, 0
        state = None if restart else self._load_checkpoint()
        self.paths["geojson"].parent.mkdir(parents=True, exist_ok=True)
        if state is None:
            self._gj: TextIO = open(self.paths["geojson_part"], "w", encoding="utf-8")  # noqa: SIM115
            self._csv: TextIO = open(self.paths["csv_part"], "w", encoding="utf-8")  # noqa: SIM115
            self._gj.write(HEADER)
            self._csv.write(CSV_HEADER)
        else:
            self.rows_done, self.count = state["rows_done"], state["count"]
            self._gj = self._reopen(self.paths["geojson_part"], state["geojson_bytes"])
            self._csv = self._reopen(self.paths["csv_part"], state["csv_bytes"])

    @property
    def resumed(self) -> bool:
        return self.rows_done > 0

    def _load_checkpoint(self) -> dict[str, Any] | None:
        p = self.paths
        if not all(p[k].is_file() for k in ("checkpoint", "geojson_part", "csv_part")):
            return None
        try:
            state = json.loads(p["checkpoint"].read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(state, dict) or state.get("fingerprint") != self.fingerprint:
            return None
        if (
            p["geojson_part"].stat().st_size < state["geojson_bytes"]
            or p["csv_part"].stat().st_size < state["csv_bytes"]
        ):
            return None  # parts shorter than recorded: not ours to trust
        return state

    @staticmethod
    def _reopen(path: Path, length: int) -> TextIO:
        with open(path, "r+b") as fh:
            fh.truncate(length)
        return open(path, "a", encoding="utf-8")

    def add(self, nucleus: Nucleus) -> None:
        """Append one nucleus to both outputs."""
        self.count += 1
        n, ds = self.count, self.downsample
        ring = (mask_outline(nucleus.mask) + np.array([nucleus.x0, nucleus.y0])) * ds
        ring = np.round(np.vstack([ring, ring[:1]]), 2).tolist()
        rows, cols = np.nonzero(nucleus.mask)
        y = (nucleus.y0 + rows.mean() + 0.5) * ds
        x = (nucleus.x0 + cols.mean() + 0.5) * ds
        area_px = float(rows.size) * ds * ds
        meas: dict[str, float] = {"score": round(nucleus.score, 6)}
        x_um = y_um = area_um2 = ""
        if self.mpp is not None:
            um0 = self.mpp / ds  # µm per level-0 pixel
            area = area_px * um0 * um0
            meas["Area µm^2"] = round(area, 3)
            x_um, y_um, area_um2 = f"{x * um0:.3f}", f"{y * um0:.3f}", f"{area:.3f}"
        feature = {
            "type": "Feature",
            "id": str(uuid.uuid5(_UUID_NS, f"{self.stem}/{n}")),
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {
                "objectType": "detection",
                "name": f"nucleus-{n}",
                "classification": {"name": "Nucleus", "color": NUCLEUS_RGB},
                "isLocked": False,
                "measurements": meas,
            },
        }
        self._gj.write(("" if n == 1 else ",\n") + json.dumps(feature, ensure_ascii=False))
        self._csv.write(
            f"{n},{x:.2f},{y:.2f},{x_um},{y_um},{area_px:.1f},{area_um2},{nucleus.score:.6f}\n"
        )

    def commit(self, rows_done: int) -> None:
        """Everything added so far is durable; a rerun starts at row ``rows_done``."""
        for fh in (self._gj, self._csv):
            fh.flush()
            os.fsync(fh.fileno())
        self.rows_done = rows_done
        write_json(
            self.paths["checkpoint"],
            {
                "fingerprint": self.fingerprint,
                "rows_done": rows_done,
                "count": self.count,
                "geojson_bytes": self.paths["geojson_part"].stat().st_size,
                "csv_bytes": self.paths["csv_part"].stat().st_size,
            },
        )

    def finish(self) -> None:
        """Close the GeoJSON and publish both outputs under their final names."""
        self._gj.write(FOOTER)
        for fh in (self._gj, self._csv):
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        os.replace(self.paths["csv_part"], self.paths["csv"])
        os.replace(self.paths["geojson_part"], self.paths["geojson"])
        self.paths["checkpoint"].unlink(missing_ok=True)

    def close(self) -> None:
        """Close the partial files, keeping them and the checkpoint for a resume."""
        for fh in (self._gj, self._csv):
            if not fh.closed:
                fh.close()

    def discard(self) -> None:
        """Remove every trace of this run (bad input: nothing to resume)."""
        self.close()
        for key in ("geojson_part", "csv_part", "checkpoint"):
            self.paths[key].unlink(missing_ok=True)
