"""The plate job: open, check the job folder, resume, run the frames, write, finish, report."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import passes as _passes
from ..io import PlateError, open_plate, parse_frame_range
from ..io import colour as _colour
from .config import PlateJobConfig, fixed_input_light, parse_camera
from .frame import FrameWorker, Outcome
from .lights import TargetLight
from .network import load_model, model_identity, resolve_device
from .report import PlateInterrupted, PlateReport, summarise

__all__ = ["JOB_FORMAT", "JOB_VERSION", "run_plate"]

JOB_FORMAT = "relight.plate-job"
JOB_VERSION = 1

_TOP_LEVEL = _passes.PASS_NAMES + tuple(_passes.SEQUENCE_FORMATS) + (
    "frames", "multilayer", "thumbs", "job.json", "report.json", "contact_sheet.png", "preview.mp4")
"""Names a job writes directly inside its folder."""


def run_plate(config: PlateJobConfig, progress: bool | Callable | None = True,
              should_stop: Callable[[], bool] | None = None) -> PlateReport:
    """Run a plate job (resumable); see the package docstring.

    The frames run under ``torch.inference_mode()`` and with ``config.threads`` CPU threads; the
    caller's autograd mode and thread count are unchanged afterwards.

    Args:
        config: the job's settings.
        progress: True: a tqdm bar on stderr (frames/s, ETA); a callable
            ``progress(done, total, record)`` called after every written frame; None/False: silent.
        should_stop: polled between frames; True stops the job cleanly (like Ctrl-C, but
            returns the report with ``interrupted=True``).

    Returns:
        :class:`PlateReport` (also written to ``DIR/report.json``).

    Raises:
        PlateError: bad input or settings (the message names the file or frame and what to do);
            frames finished before it stay valid.
        PlateInterrupted: Ctrl-C; finished frames are kept and the report is written first.
    """
    t_start = time.perf_counter()
    config.check()
    light = TargetLight(config)
    fixed_input_light(config)
    plate, numbers = _open(config)
    out = _check_out(config, plate)
    settings = _settings(config, light, model_identity(config.weights), plate)
    job_id = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    _check_job(out, settings, job_id, config.force)
    light.check_frames(numbers)
    _passes.write_json(out / "job.json", {"format": JOB_FORMAT, "version": JOB_VERSION, "job_id": job_id,
                                          "settings": settings})

    done = set() if config.force else {n for n in numbers if _passes.read_record(out, n, job_id) is not None}
    todo = [n for n in numbers if n not in done]
    report = PlateReport(out=out, input=str(config.input), frames=list(numbers), skipped=sorted(done))
    timer: dict[str, float] = {}
    failure: BaseException | None = None
    try:
        if todo:
            with torch.inference_mode(), _threads(config.threads):
                _run_frames(config, plate, light, out, job_id, todo, len(done), report, timer, progress, should_stop)
        if not report.interrupted:
            t0 = time.perf_counter()
            _finish(out, config, plate, numbers, job_id, report, light)
            timer["finish"] = time.perf_counter() - t0
    except KeyboardInterrupt:
        report.interrupted = True
        failure = PlateInterrupted(report)
    except Exception as exc:  # reported, then raised again
        report.error = str(exc)
        failure = exc
    summarise(out, numbers, job_id, report, timer, t_start)
    if isinstance(failure, PlateInterrupted):
        raise failure from None
    if failure is not None:
        raise failure
    return report


@contextlib.contextmanager
def _threads(count: int | None):
    """torch's intra-op CPU threads set to ``count`` for the block, then restored."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_frames(config, plate, light, out, job_id, todo, done_before, report, timer, progress, should_stop) -> None:
    """Set up the tracker and network, then compute and write the frames of ``todo``."""
    device = resolve_device(config.device)
    t0 = time.perf_counter()
    model, report.trained_weights = load_model(config.weights, device)
    worker = FrameWorker(config, plate, light, model, device)
    timer["setup"] = time.perf_counter() - t0
    plan = _feed_plan(plate.frame_numbers, set(todo), config.resume_warmup)
    writes = dict(plan)
    plate.frame_numbers = [n for n, _ in plan]
    total = len(report.frames)
    bar = _progress_bar(progress, total, done_before)
    try:
        previous = None
        frames = iter(plate)
        while True:
            before = dict(worker.timer)
            t0 = time.perf_counter()
            frame = next(frames, None)
            worker.timer["decode"] = worker.timer.get("decode", 0.0) + time.perf_counter() - t0
            if frame is None:
                break
            n = frame.number
            if previous is not None and n != previous + 1:
                worker.reset()
            previous = n
            outcome = worker.process(frame, write=writes[n])
            if outcome is None:
                continue
            t1 = time.perf_counter()
            stages = {k: worker.timer[k] - before.get(k, 0.0) for k in worker.timer}
            _write_outcome(out, config, outcome, job_id, stages)
            worker.timer["write"] = worker.timer.get("write", 0.0) + time.perf_counter() - t1
            report.processed.append(n)
            _advance(bar, progress, done_before + len(report.processed), total, outcome.record)
            if should_stop is not None and should_stop():
                report.interrupted = True
                break
    finally:
        timer.update(worker.timer)
        if bar is not None:
            bar.close()
        with contextlib.suppress(Exception):  # never hide the error that stopped the job
            worker.close()


# ------------------------------------------------------------------------------------------
# opening the plate and the job folder
# ------------------------------------------------------------------------------------------


def _open(config: PlateJobConfig):
    """(reader over the whole plate, frame numbers of the job's range). Bad input -> PlateError."""
    frames = parse_frame_range(config.frames) if isinstance(config.frames, str) else config.frames
    kw = dict(colourspace=config.colourspace, fps=config.fps, video_start=config.video_start)
    ranged = open_plate(config.input, frames=frames, allow_gaps=config.allow_gaps, **kw)
    numbers = list(ranged.frame_numbers)
    if not numbers:
        raise PlateError(f"no frames of {ranged.pattern} in the range {config.frames}")
    if frames is None:
        return ranged, numbers
    # warm-up frames of a resumed range may lie before its start: read from the whole plate
    # (unless frames outside the range are unreadable: then warm up inside the range only)
    try:
        return open_plate(config.input, allow_gaps=True, **kw), numbers
    except PlateError:
        return ranged, numbers


def _check_out(config: PlateJobConfig, plate) -> Path:
    """Create the job folder; refuse one that would write over or among the plate's files."""
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise PlateError(f"--out {out} is a file; give a folder for the job's outputs")
    res = out.resolve()
    sources = [Path(plate.path)] if plate.kind == "video" else list(plate.files.values())
    if plate.kind != "video" and res in {Path(p).resolve().parent for p in sources}:
        raise PlateError(f"--out {out} is the plate's own folder; the job would write among the plate's frames. "
                         "Choose another folder (e.g. a sibling 'relit' folder)")
    for p in sources:
        rp = Path(p).resolve()
        if rp == res or (res in rp.parents and rp.relative_to(res).parts[0] in _TOP_LEVEL):
            raise PlateError(f"--out {out} would write over the plate's file {p}; choose another folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlateError(f"cannot create the output folder {out}: {exc}") from None
    if not os.access(out, os.W_OK):
        raise PlateError(f"the output folder {out} is not writable; choose another --out")
    return out


def _settings(config: PlateJobConfig, light: TargetLight, model_id: dict, plate) -> dict:
    """Everything the job's results depend on (its hash is the job id)."""
    c = config
    return _passes.json_safe({
        "input": str(Path(c.input).resolve()),
        "plate": {"kind": plate.kind, "size": list(plate.size), "fps": plate.fps},
        "light": light.describe(),
        "camera": c.camera,
        "plate_camera": None if c.plate_camera is None else str(Path(c.plate_camera).resolve()),
        "input_light": c.input_light,
        "input_light_smoothing": c.input_light_smoothing,
        "passes": list(c.passes),
        "formats": list(c.formats),
        "multilayer": c.multilayer,
        "model": model_id,
        "window_policy": c.window_policy,
        "matte_feather": c.matte_feather,
        "ratio_range": list(c.ratio_range),
        "ratio_eps": c.ratio_eps,
        "network_space": c.network_space,
        "person_segmentation": c.person_segmentation,
        "colourspace": c.colourspace,
        "video_start": c.video_start,
        "lens": {"focal_mm": c.focal_mm, "sensor_width_mm": c.sensor_width_mm, "fov_deg": c.fov_deg},
        "tracker": dict(sorted(c.tracker.items())),
    })


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {json.dumps(a)} -> {json.dumps(b)}")
    return out


def _check_job(out: Path, settings: dict, job_id: str, force: bool) -> None:
    """A folder holding another job's frames needs ``force`` (names the settings that differ)."""
    path = out / "job.json"
    if not path.is_file() or force:
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        raise PlateError(f"{path} is unreadable; re-run with --force to start this job folder afresh, "
                         "or choose another --out") from None
    if old.get("job_id") == job_id:
        return
    diffs = _diff(old.get("settings", {}), settings)
    shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
    raise PlateError(f"{out} holds a job with other settings ({shown or 'another version'}). Re-run with --force "
                     "to redo the frames with the new settings (finished frames are overwritten), or choose "
                     "another --out")


def _feed_plan(numbers: list[int], todo: set[int], warmup: int) -> list[tuple[int, bool]]:
    """Frames to read, in order, each with whether it is written (warm-up frames are not)."""
    index = {n: i for i, n in enumerate(numbers)}
    wanted: set[int] = set()
    for n in todo:
        i = index[n]
        wanted.update(numbers[max(0, i - warmup):i + 1])
    return [(n, n in todo) for n in numbers if n in wanted]


# ------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------


def _write_outcome(out: Path, config: PlateJobConfig, outcome: Outcome, job_id: str, stages: dict) -> None:
    """Write a frame's files, then its record (last: the record marks the frame done)."""
    rec = outcome.record
    n = rec["frame"]
    meta = {"relight:frame": n, "relight:job": job_id}
    t0 = time.perf_counter()
    files = _passes.write_frame(out, outcome.passes, names=config.passes, formats=config.formats,
                                multilayer=config.multilayer, metadata=meta)
    if outcome.thumb is not None:
        files.append(_passes.write_thumb(out, n, outcome.thumb))
    else:
        _passes.thumb_path(out, n).unlink(missing_ok=True)
    rec["files"] = sorted(str(Path(f).relative_to(out)) for f in files)
    rec["job_id"] = job_id
    rec["timings"] = {**{k: round(v, 4) for k, v in stages.items()}, "write": round(time.perf_counter() - t0, 4)}
    _passes.write_json(_passes.record_path(out, n), _passes.json_safe(rec))


def _progress_bar(progress, total: int, initial: int):
    if progress is True:
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit="frame", desc="relight plate", dynamic_ncols=True,
                    smoothing=0.1, file=sys.stderr)
    return None


def _advance(bar, progress, done: int, total: int, record: dict) -> None:
    if bar is not None:
        bar.update(1)
        bar.set_postfix_str(f"frame {record['frame']}: {'relit' if record['relit'] else record['reason'][:30]}")
    elif callable(progress):
        progress(done, total, record)


def _finish(out: Path, config: PlateJobConfig, plate, numbers, job_id, report: PlateReport, light) -> None:
    """Contact sheet and preview (rebuilt only when frames were computed now or they are missing)."""
    records = {n: _passes.read_record(out, n, job_id) for n in numbers}
    done = [n for n in numbers if records[n] is not None]
    fresh = bool(report.processed)
    sheet = out / "contact_sheet.png"
    if config.contact_sheet and done and (fresh or not sheet.is_file()):
        relit = [n for n in done if records[n].get("relit")]
        fallback = {} if relit else _beauty_tiles(out, plate, done, records)
        title = f"{Path(str(config.input)).name}  light: {light.name}"
        _passes.write_contact_sheet(out, relit, sheet, title=title, fallback=fallback)
    preview = out / "preview.mp4"
    if config.preview and done and (fresh or not preview.is_file()):
        files = [out / f for n in done for f in records[n]["files"] if f.startswith("beauty/")]
        space = plate.colourspace or ("linear" if files and files[0].suffix == ".exr" else "sRGB")
        novel = parse_camera(config.camera)[0] != "plate" or (config.scene is not None and config.plate_camera is not None)
        _passes.write_preview(preview, files, space, plate.fps, over_black=novel)


def _beauty_tiles(out: Path, plate, done: list[int], records: dict) -> dict:
    """Up to four written beauty frames as display uint8 (a contact sheet when nothing was relit)."""
    from ..io.images import read_image

    tiles = {}
    for n in done[:: max(1, len(done) // 4)][:4]:
        files = [f for f in records[n]["files"] if f.startswith("beauty/")]
        if files:
            stored = read_image(out / files[0])
            rgb, _ = _colour.decode(stored, plate.colourspace or ("linear" if stored.dtype.kind == "f" else "sRGB"))
            tiles[n] = _colour.encode(rgb, None, _colour.SRGB, np.uint8)
    return tiles
