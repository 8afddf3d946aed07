"""Progress with time left, for training, prediction and annotation alike.

On a terminal a tqdm bar; otherwise (log files, Snakemake, SLURM, where a bar is noise) a plain
line every ``every`` steps with the time per step and the time left, so a long job says when it
will end.
"""

from __future__ import annotations

import sys
import time

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s`` or ``1 h 02 min``: time-left estimates in log lines."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Steps ``start``..``total`` of ``desc``; silent unless ``enabled``.

    ``unit`` names a step on the bar, ``item`` in log lines (default ``unit``); ``noun``, when
    given, follows the count in log lines (``predict 3/9 images``), and ``rate`` adds steps per
    second to them.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        enabled: bool,
        every: int,
        *,
        start: int = 0,
        unit: str = "it",
        item: str | None = None,
        noun: str | None = None,
        rate: bool = False,
        leave: bool = True,
    ) -> None:
        self.total, self.desc, self.enabled, self.every = total, desc, enabled, max(1, every)
        self.start = self.done = start
        self.item, self.noun, self.rate = item or unit, noun, rate
        self.tic = time.perf_counter()
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=start, desc=desc, unit=unit, file=sys.stderr, leave=leave
            )

    def update(
        self, step: int | None = None, postfix: dict[str, str] | None = None, detail: str = ""
    ) -> None:
        """One more step done (``step``: the step just finished); ``postfix`` goes on the bar,
        ``detail`` (e.g. the loss terms) into the log line."""
        if not self.enabled:
            return
        self.done = self.done + 1 if step is None else step
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)
            return
        if self.done % self.every and self.done != self.total:
            return
        elapsed = max(time.perf_counter() - self.tic, 1e-9)
        per = elapsed / (self.done - self.start)
        head = f"{self.desc} {self.done}/{self.total}"
        if self.noun:
            head += f" {self.noun}"
        if detail:
            head += f" {detail}"
        speed = f"{1 / per:.3g} {self.item}/s, " if self.rate else ""
        print(
            f"{head} ({speed}{per:.2f} s/{self.item}, "
            f"{format_duration(per * (self.total - self.done))} left)",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
