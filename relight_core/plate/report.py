"""What a plate job did: :class:`PlateReport` (also ``DIR/report.json``) and its summary."""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import passes as _passes

__all__ = ["PlateReport", "PlateInterrupted", "summarise"]


@dataclass
class PlateReport:
    """What a job did. ``frames`` covers the whole range (earlier runs included, from the records).

    Attributes:
        out: the job folder. input: the plate.
        frames: frame numbers of the range. processed: frames computed in this run.
        skipped: frames already done (not recomputed). relit: frames with a relit face.
        passed_through: frame -> reason, for frames without a usable face.
        several_faces: frames where more than one face was visible.
        cuts: frames where the tracker reset (shot cuts, new subject).
        interrupted: the run was stopped before the end (re-run to resume).
        error: the error that stopped the run, if any.
        trained_weights: False when the network's weights are untrained (random).
        timings: seconds per stage in this run (``setup``, ``decode``, ``track``, ``light``,
            ``network`` and its ``network.*`` sub-stages, ``composite``, ``write``, ``finish``,
            ``total``), the ``frames`` and ``relit_frames`` counts, and ``frames_per_second``.
        warnings: sentences for the user.
        files: the job's summary files.
    """

    out: Path
    input: str
    frames: list[int] = field(default_factory=list)
    processed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    relit: list[int] = field(default_factory=list)
    passed_through: dict[int, str] = field(default_factory=dict)
    several_faces: list[int] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)
    interrupted: bool = False
    error: str | None = None
    trained_weights: bool | None = None
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["out"] = str(self.out)
        d["passed_through"] = {str(k): v for k, v in self.passed_through.items()}
        return d

    def summary(self) -> str:
        """A few lines for the terminal: counts, reasons, cuts, per-stage times, notes."""
        from ..io.sequence import format_ranges

        lines = [f"relight plate {self.input} -> {self.out}"]
        n = len(self.frames)
        lines.append(f"  frames: {n} in range; {len(self.processed)} computed now, {len(self.skipped)} already done")
        lines.append(f"  relit: {len(self.relit)} frames" + (f" ({format_ranges(self.relit)})" if self.relit else ""))
        if self.passed_through:
            lines.append(f"  passed through unchanged: {len(self.passed_through)} frames")
            by_reason: dict[str, list[int]] = {}
            for k, v in sorted(self.passed_through.items()):
                by_reason.setdefault(re.sub(r"\d+(\.\d+)? px < ", "N px < ", v), []).append(k)
            for reason, numbers in by_reason.items():
                lines.append(f"    {reason}: {format_ranges(numbers)}")
        if self.several_faces:
            lines.append(f"  several faces visible (the tracked subject was relit): {format_ranges(self.several_faces)}")
        if self.cuts:
            lines.append(f"  tracking resets (cuts, new subject): {', '.join(map(str, self.cuts))}")
        lines += self._timing_lines()
        for w in self.warnings:
            lines.append(f"  NOTE: {w}")
        if self.interrupted:
            lines.append("  STOPPED before the end: re-run the same command to resume")
        if self.error:
            lines.append(f"  ERROR: {self.error}")
        return "\n".join(lines)

    def _timing_lines(self) -> list[str]:
        t = self.timings
        if not t.get("frames", 0):
            return []
        per = ", ".join(f"{k} {1000 * t[k] / t['frames']:.0f} ms" for k in ("decode", "track", "write") if k in t)
        lines = [f"  per computed frame ({t['frames']:.0f}): {per}; {t.get('frames_per_second', 0):.2f} "
                 f"frames/s overall, {t.get('total', 0):.0f} s in all"]
        relit = t.get("relit_frames", 0)
        if relit:
            def ms(k):
                return f"{1000 * t.get(k, 0.0) / relit:.0f}"

            inner = ", ".join(f"{k.split('.', 1)[1]} {ms(k)}" for k in t if k.startswith("network."))
            lines.append(f"  per relit frame ({relit:.0f}, warm-up included): light {ms('light')} ms, network "
                         f"{ms('network')} ms ({inner}), composite {ms('composite')} ms")
        return lines


class PlateInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a job cleanly; ``report`` says what was done (re-run to resume)."""

    def __init__(self, report: PlateReport):
        super().__init__("plate job interrupted")
        self.report = report


def summarise(out: Path, numbers, job_id: str, report: PlateReport, timer: dict, t_start: float) -> None:
    """Fill the report from the records of the range (earlier runs too) and write report.json."""
    for n in numbers:
        rec = _passes.read_record(out, n, job_id)
        if rec is None:
            continue
        if rec.get("relit"):
            report.relit.append(n)
        else:
            report.passed_through[n] = rec.get("reason") or "not relit"
        if rec.get("faces", 0) > 1:
            report.several_faces.append(n)
        if rec.get("cut"):
            report.cuts.append(n)
    t = dict(timer)
    t["frames"] = len(report.processed)
    t["relit_frames"] = len(set(report.processed) & set(report.relit))
    t["total"] = time.perf_counter() - t_start
    t["frames_per_second"] = len(report.processed) / t["total"] if t["total"] > 0 else 0.0
    report.timings = {k: round(v, 4) for k, v in t.items()}
    if report.trained_weights is False:
        report.warnings.append("the network's weights are UNTRAINED (random): the relighting is not meaningful "
                               "until trained weights are shipped or given with --weights")
    if numbers and not report.relit and len(report.passed_through) == len(numbers):
        report.warnings.append(f"no usable face in any of the {len(numbers)} frames: the output is the plate "
                               "unchanged (see the reasons above; a smaller --tracker min size or a closer shot may help)")
    report.files = {"report": str(out / "report.json"), "job": str(out / "job.json"),
                    "contact_sheet": str(out / "contact_sheet.png"), "preview": str(out / "preview.mp4"),
                    "records": str(out / "frames")}
    try:
        _passes.write_json(out / "report.json", _passes.json_safe(report.to_json()))
    except OSError:
        pass  # the report object still reaches the caller
