"""The Relight worker: relight_core behind a small JSON-lines protocol, for the Blender add-on.

``python -m relight_core.worker`` reads one request per line on stdin and answers on stdout; stdout
carries nothing but protocol lines (everything else a library prints goes to stderr, where the
worker also logs). The add-on starts it with the interpreter of the environment that holds
relight_core (BLENDER.md 0, 6), or calls :class:`Handler` directly when relight_core imports in
Blender's own Python (in-process mode: the same code answers).

Protocol (version :data:`PROTOCOL`)
-----------------------------------
Request: ``{"id": 7, "cmd": "track", "args": {...}}``. Every request gets exactly one final
message, and long ones get ``progress`` messages before it::

    {"id": 7, "type": "progress", "done": 3, "total": 40, "message": "frame 1003: tracked"}
    {"id": 7, "type": "result", "result": {...}}
    {"id": 7, "type": "error", "kind": "input", "message": "...", "traceback": "..."}

Error kinds: ``protocol`` (versions differ), ``bad_request`` (unknown command or arguments),
``input`` (bad plate, frame or settings: the message says what to do), ``cancelled``, and
``internal`` (a bug: the traceback is attached).

Commands: ``hello`` (handshake: versions, CUDA, GPU, default weights), ``track``, ``render``,
``light_from_plate``, ``mesh``, ``release`` (free models and GPU memory), ``cancel``
(``{"target": id}``, or the running job), ``shutdown``. Jobs (track, render, light_from_plate,
mesh, release) run one at a time in order on a job thread; ``cancel`` stops the running one
between frames. Their arguments and results are documented on the ``_cmd_*`` methods.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import queue
import sys
import threading
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

PROTOCOL = 1
"""Protocol version; the add-on refuses a worker that answers another one."""

JOB_COMMANDS = ("track", "render", "light_from_plate", "mesh", "release")
# Blender's front view: a camera at the origin looking along +Y, +Z up (Blender matrix_world)
FRONT_CAMERA = ((1.0, 0.0, 0.0, 0.0), (0.0, 0.0, -1.0, 0.0), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
_BLENDER_TO_OPENCV = np.diag([1.0, -1.0, -1.0])

Emit = Callable[[dict], None]


class RequestError(Exception):
    """A request that cannot be served; ``kind`` is the protocol's error kind."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class _Job:
    """A running request: its progress messages and its cancel flag."""

    def __init__(self, request_id, emit: Emit):
        self.id, self.emit = request_id, emit
        self.cancelled = threading.Event()

    def progress(self, done: int, total: int, message: str = "") -> None:
        self.emit({"id": self.id, "type": "progress", "done": int(done), "total": int(total), "message": message})

    def check(self) -> None:
        if self.cancelled.is_set():
            raise RequestError("cancelled", "cancelled")


def _json_safe(x):
    from .passes import json_safe

    return json_safe(x)


class Handler:
    """Serves requests (both the subprocess loop and the add-on's in-process mode use it).

    :meth:`handle` runs one request to its end on the calling thread and never raises: every
    outcome goes through ``emit``. :meth:`cancel` may be called from any other thread.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._running: dict = {}
        self._cancelled_early: set = set()  # ids cancelled while still queued
        self._closing = False
        self._models: dict = {}

    # -- entry points -----------------------------------------------------------------------

    def handle(self, request: dict, emit: Emit) -> None:
        """Run ``request`` (a decoded protocol line) and emit its progress and final message."""
        rid = request.get("id") if isinstance(request, dict) else None
        job = _Job(rid, emit)
        with self._lock:
            self._running[rid] = job
            if self._closing or rid in self._cancelled_early:
                self._cancelled_early.discard(rid)
                job.cancelled.set()
        try:
            cmd, args = _parse(request)
            job.check()
            result = getattr(self, f"_cmd_{cmd}")(args, job)
            emit({"id": rid, "type": "result", "result": _json_safe(result)})
        except RequestError as exc:
            emit({"id": rid, "type": "error", "kind": exc.kind, "message": str(exc)})
        except (ValueError, FileNotFoundError) as exc:  # PlateError is a ValueError
            emit({"id": rid, "type": "error", "kind": "input", "message": str(exc)})
        except Exception as exc:  # a bug: keep serving, hand the traceback over
            emit({"id": rid, "type": "error", "kind": "internal", "message": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc()})
        finally:
            with self._lock:
                self._running.pop(rid, None)

    def cancel(self, target=None) -> bool:
        """Ask the job ``target`` (default: every running job) to stop; True if one was running.

        A ``target`` that has not started yet is cancelled when it starts."""
        with self._lock:
            jobs = [j for i, j in self._running.items() if target is None or i == target]
            if target is not None and not jobs:
                self._cancelled_early.add(target)
        for j in jobs:
            j.cancelled.set()
        return bool(jobs)

    def close(self) -> None:
        """Cancel the running job and every later one (the worker is shutting down)."""
        with self._lock:
            self._closing = True
        self.cancel()

    # -- commands ---------------------------------------------------------------------------

    def _cmd_hello(self, args: dict, job: _Job) -> dict:
        """Handshake. args: ``protocol`` (the client's). Result: versions, CUDA, GPU, weights."""
        client = args.get("protocol", PROTOCOL)
        if client != PROTOCOL:
            raise RequestError("protocol", f"the add-on speaks protocol {client}, this relight_core worker speaks "
                                           f"{PROTOCOL}: install matching versions of the add-on and relight_core")
        import torch

        from . import __version__
        from .checkpoints import default_weights_status

        cuda = torch.cuda.is_available()
        return {"protocol": PROTOCOL, "relight_core": __version__, "python": sys.version.split()[0],
                "executable": sys.executable, "pid": os.getpid(), "torch": torch.__version__,
                "cuda_available": cuda, "cuda_version": torch.version.cuda,
                "gpu": torch.cuda.get_device_name(0) if cuda else None,
                "weights": default_weights_status()}

    def _cmd_release(self, args: dict, job: _Job) -> dict:
        """Drop cached models and return GPU memory to the driver. Result: ``{"released": n}``."""
        n = len(self._models)
        self._models.clear()
        import gc

        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {"released": n}

    def _cmd_track(self, args: dict, job: _Job) -> dict:
        """Track the subject's head through a plate.

        args: ``plate`` (video, ``####`` pattern, folder or image), optional ``frames``
        ("START:END"), ``colourspace``, ``video_start``, ``fps``, one of ``focal_mm``/``fov_deg``
        (with ``sensor_width_mm``), ``tracker`` (extra TrackerConfig fields).

        Result: ``size`` [w, h], ``fps``, ``frame_numbers``, ``intrinsics`` (pixel K of the plate
        camera), ``focal_px``, ``fov_deg`` (horizontal), ``metres_per_unit``, and ``frames``: per
        frame ``frame``, ``found``, ``reason``, ``cut``, ``yaw``/``pitch``/``roll`` and, when
        found, ``head_to_camera``: 4x4 head space -> plate camera (OpenCV axes, metres, the
        head scale in the rotation block).
        """
        from .composite import head_to_camera_metric
        from .track.tracker import Tracker

        plate = _open_plate(args)
        numbers = list(plate.frame_numbers)
        tracker, K = None, None
        frames = []
        try:
            for i, frame in enumerate(plate):
                job.check()
                if tracker is None:
                    tracker = Tracker(_tracker_config(args, plate.fps))
                    K = _intrinsics(tracker.config, *frame.size)
                t = tracker.track(_display_uint8(frame), frame.number)
                rec = {"frame": t.number, "found": bool(t.found), "reason": t.reason, "cut": bool(t.cut),
                       "yaw": t.yaw, "pitch": t.pitch, "roll": t.roll}
                if t.found:
                    rec["head_to_camera"] = head_to_camera_metric(t.rotation, t.translation, t.metres_per_unit)
                frames.append(rec)
                job.progress(i + 1, len(numbers), f"frame {t.number}: {'tracked' if t.found else t.reason}")
        finally:
            if tracker is not None:
                tracker.close()
        w, h = plate.size
        f = float(K[0, 0])
        return {"size": [w, h], "fps": plate.fps, "frame_numbers": numbers, "intrinsics": K, "focal_px": f,
                "fov_deg": math.degrees(2.0 * math.atan(0.5 * w / f)), "metres_per_unit": tracker.metres_per_unit,
                "frames": frames, "found": sum(r["found"] for r in frames)}

    def _cmd_render(self, args: dict, job: _Job) -> dict:
        """Relight frames of a plate with the plate job (resumable: done frames are skipped).

        args: :class:`relight_core.plate.PlateJobConfig` fields (``input``, ``out``, ``scene``,
        ``plate_camera``, ``frames``, ``weights``...); ``exr32`` is always among the formats,
        since the add-on reads its passes from there. Optional ``exposure``: stops of extra
        target light (the add-on's Exposure; see :func:`_expose_light`).

        Result: ``out``, ``summary``, ``warnings``, ``trained_weights`` and ``frames``: per frame
        ``frame``, ``relit``, ``reason`` and ``passes``: a ``.npz`` of every pass as float32
        ``[H, W, C]`` scene-linear arrays, rows from the top (written after the job, atomically).
        """
        from .plate import PlateJobConfig, run_plate

        known = {f.name for f in dataclasses.fields(PlateJobConfig)} | {"exposure"}
        unknown = sorted(set(args) - known)
        if unknown:
            raise RequestError("bad_request", f"render: unknown setting(s) {unknown}")
        settings = dict(args)
        exposure = settings.pop("exposure", 0.0)
        if isinstance(exposure, bool) or not isinstance(exposure, (int, float)) or not math.isfinite(exposure):
            raise RequestError("bad_request", f"exposure: expected a finite number of stops, got {exposure!r}")
        settings = _expose_light(settings, float(exposure))
        settings["formats"] = tuple(dict.fromkeys(tuple(settings.get("formats", ())) + ("exr32",)))
        for key in ("passes", "ratio_range"):
            if key in settings:
                settings[key] = tuple(settings[key])
        config = PlateJobConfig(**settings)
        report = run_plate(config, progress=lambda done, total, rec: job.progress(
            done, total, f"frame {rec['frame']}: {'relit' if rec['relit'] else rec.get('reason') or 'passed through'}"),
            should_stop=job.cancelled.is_set)
        if report.interrupted:
            raise RequestError("cancelled", "cancelled; the frames finished so far are kept")
        out = Path(report.out)
        frames = []
        for n in report.frames:
            rec = json.loads((out / "frames" / f"frame.{n:04d}.json").read_text())
            frames.append({"frame": n, "relit": bool(rec.get("relit")), "reason": rec.get("reason") or "",
                           "passes": str(_blender_passes(out, n, config.passes))})
        return {"out": str(out), "summary": report.summary(), "warnings": report.warnings,
                "trained_weights": report.trained_weights, "frames": frames}

    def _cmd_light_from_plate(self, args: dict, job: _Job) -> dict:
        """The plate's light at one frame as an equirectangular world image.

        args: ``plate``, ``frame``, ``out`` (an ``.exr`` path), optional ``camera_matrix``
        (the plate camera's Blender ``matrix_world``; default: front view), ``height`` (64;
        width is twice it), plate options as for ``track``.

        Result: ``path`` (float32 RGB EXR, Blender's Environment Texture layout, linear radiance
        with negative SH ringing clamped to 0), ``sh_camera`` ([9, 3] in the plate camera's DPR
        frame), ``sh_world`` ([9, 3] in Blender world axes), ``albedo`` (the skin albedo paired
        with the estimate).
        """
        from . import sh
        from .io import write_exr
        from .track.lighting import estimate_lighting
        from .track.tracker import Tracker

        number = _int(args, "frame")
        height = _int(args, "height", 64)
        plate = _open_plate(args, frames=range(number, number + 1))
        frame = next(iter(plate))
        job.progress(0, 2, f"frame {number}: tracking")
        config = _tracker_config(args, plate.fps)
        config.static = True
        with Tracker(config) as tracker:
            track = tracker.track(_display_uint8(frame), number)
        K = _intrinsics(config, *frame.size)
        if not track.found:
            raise RequestError("input", f"frame {number} of {args['plate']}: {track.reason}; pick a frame where the "
                                        "face is clearly visible")
        job.check()
        job.progress(1, 2, f"frame {number}: estimating the light")
        est = estimate_lighting(frame.rgb, track.landmarks, track.rotation, K=K)
        if not est.ok:
            raise RequestError("input", f"frame {number}: the light could not be estimated ({est.reason}); "
                                        "try another frame")
        cam = np.asarray(args.get("camera_matrix") or FRONT_CAMERA, dtype=np.float64)[:3, :3]
        cam = cam / np.linalg.norm(cam, axis=0, keepdims=True)
        world_to_dpr = np.asarray(sh.BLENDER_CAMERA_TO_DPR) @ cam.T
        sh_world = sh.rotate(np.asarray(est.sh, np.float64), world_to_dpr.T)
        env = sh.sh_to_envmap(sh_world, height, 2 * height, clamp=True).numpy().astype(np.float32)
        path = write_exr(Path(args["out"]), env, half=False)
        job.progress(2, 2, f"frame {number}: written")
        return {"path": str(path), "sh_camera": est.sh, "sh_world": sh_world, "albedo": est.albedo}

    def _cmd_mesh(self, args: dict, job: _Job) -> dict:
        """The subject's head as a mesh file: head space axes, in metres (true scale).

        args: ``plate``, ``frame``, ``out`` (.ply/.obj/.glb), optional ``weights``, ``device``,
        ``resolution`` (grid size, 256), plate options as for ``track``.
        Result: ``path``, ``vertices``, ``faces``.
        """
        try:
            from .mesh import extract_head_mesh, write_mesh
        except ImportError:
            raise RequestError("input", "this relight_core has no head mesh extraction (relight_core.mesh); "
                                        "update relight_core") from None
        from .track.align import align_crop
        from .track.tracker import Tracker

        number = _int(args, "frame")
        plate = _open_plate(args, frames=range(number, number + 1))
        frame = next(iter(plate))
        config = _tracker_config(args, plate.fps)
        config.static = True
        job.progress(0, 3, f"frame {number}: tracking")
        with Tracker(config) as tracker:
            track = tracker.track(_display_uint8(frame), number)
        if not track.found:
            raise RequestError("input", f"frame {number} of {args['plate']}: {track.reason}; pick a frame where the "
                                        "face is clearly visible")
        job.check()
        job.progress(1, 3, "loading the network")
        model = self._model(args.get("weights"), args.get("device", "auto"))
        crop = align_crop(_display_uint8(frame), track.five_points, model.config.image_size)
        job.check()
        job.progress(2, 3, "extracting the surface")

        def chunk(done: int, total: int) -> None:
            job.check()  # raising here stops the grid sampling (cancel)

        mesh = extract_head_mesh(model, crop, resolution=_int(args, "resolution", 256),
                                 metres_per_unit=track.metres_per_unit, progress=chunk)
        mesh.apply_scale(track.metres_per_unit)  # head units -> metres: the anchor is at true scale
        path = write_mesh(mesh, Path(args["out"]))
        job.progress(3, 3, "written")
        return {"path": str(path), "vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces))}

    # -- helpers ----------------------------------------------------------------------------

    def _model(self, weights, device: str):
        """A network, cached until ``release`` (loading the weights is the slow part)."""
        key = (str(weights), device)
        if key not in self._models:
            import torch

            from .checkpoints import load_default_model, load_model

            dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                               ("cpu" if device == "auto" else device))
            if weights in ("tiny", "small", "paper"):
                from .models.config import get_config
                from .models.relighter import Relighter

                torch.manual_seed(0)
                model = Relighter(get_config(weights)).to(dev).eval()
            elif weights:
                model = load_model(weights, dev)
            else:
                model = load_default_model(dev)[0]
            self._models = {key: model}  # one network at a time: GPU memory is the limit
        return self._models[key]


def _parse(request) -> tuple[str, dict]:
    if not isinstance(request, dict):
        raise RequestError("bad_request", "a request is a JSON object {\"id\": ..., \"cmd\": ..., \"args\": {...}}")
    cmd = request.get("cmd")
    if cmd not in ("hello",) + JOB_COMMANDS:
        raise RequestError("bad_request", f"unknown command {cmd!r}; the worker knows hello, "
                                          f"{', '.join(JOB_COMMANDS)}, cancel and shutdown")
    args = request.get("args") or {}
    if not isinstance(args, dict):
        raise RequestError("bad_request", f"{cmd}: args must be a JSON object")
    return cmd, args


def _int(args: dict, key: str, default=None) -> int:
    value = args.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise RequestError("bad_request", f"{key}: expected an integer, got {value!r}")
    return int(value)


def _open_plate(args: dict, frames: range | None = None):
    from .io import open_plate, parse_frame_range

    if not args.get("plate"):
        raise RequestError("bad_request", "plate: the plate's path is missing")
    if frames is None and args.get("frames"):
        frames = parse_frame_range(str(args["frames"]))
    return open_plate(args["plate"], args.get("colourspace"), frames, fps=args.get("fps"),
                      video_start=int(args.get("video_start", 1)))


def _tracker_config(args: dict, fps: float):
    from .track.tracker import TrackerConfig

    fields = dict(fps=fps or 24.0, focal_mm=args.get("focal_mm"), fov_deg=args.get("fov_deg"),
                  sensor_width_mm=args.get("sensor_width_mm", 36.0))
    fields.update(args.get("tracker") or {})
    try:
        return TrackerConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise RequestError("input", f"tracker settings: {exc}") from None


def _intrinsics(config, width: int, height: int) -> np.ndarray:
    """Pixel K of the plate camera, exactly as the tracker computes it."""
    from .track.pose import plate_intrinsics

    return plate_intrinsics(width, height, focal_px=config.focal_px, fov_deg=config.fov_deg,
                            focal_mm=config.focal_mm, sensor_width_mm=config.sensor_width_mm)


def _display_uint8(frame) -> np.ndarray:
    """``[H, W, 3]`` uint8 display sRGB of a frame (what the tracker reads)."""
    from .io import colour

    src = np.asarray(frame.source_pixels)
    if src.dtype == np.uint8 and frame.colourspace == colour.SRGB:
        return np.ascontiguousarray(colour.split_channels(src)[0])
    return colour.encode(frame.rgb, None, colour.SRGB, np.uint8)


def _expose_light(settings: dict, stops: float) -> dict:
    """``settings`` with the target light ``2**stops`` times as bright (0: unchanged).

    The light itself is scaled, not the output: the network relights from the target SH and the
    shading ratio is clamped, so brighter light is not a brighter image times a constant. A
    scene's lights gain ``stops`` of exposure and its world ``2**stops`` strength; a preset or SH
    file becomes a scaled SH file. The scaled light is written into the job folder (``light/``)
    and the job's identity follows its content, so each exposure is its own job.
    """
    if stops == 0.0:
        return settings
    from .io import write_text_atomic
    from .plate.config import DEFAULT_LIGHT, check_preset, load_scene, load_sh_file

    folder = Path(settings["out"]) / "light"
    tag = f"exposure{stops:+.4f}"
    if settings.get("scene"):
        data = load_scene(settings["scene"]).to_dict()  # world map paths come back absolute
        for frame in data["frames"]:
            for light in frame["lights"]:
                light["exposure"] += stops
            if frame["world"] is not None:
                frame["world"]["strength"] *= 2.0**stops
        path = folder / f"scene.{tag}.json"
        settings = dict(settings, scene=str(path))
    else:
        if settings.get("sh_file"):
            coeffs = load_sh_file(settings["sh_file"])
        else:
            name = settings.get("light") or DEFAULT_LIGHT
            if name == "rotating":
                raise RequestError("input", "exposure: the rotating preset has no fixed light to scale; "
                                            "set Exposure to 0 or pick another light")
            check_preset(name)
            from .sh import preset

            coeffs = preset(name)
        data = {"sh": (coeffs * 2.0**stops).tolist()}
        path = folder / f"sh.{tag}.json"
        settings = dict(settings, light=None, sh_file=str(path))
    write_text_atomic(path, json.dumps(data, indent=1))
    return settings


def _blender_passes(out: Path, number: int, names) -> Path:
    """``out/blender/frame.####.npz``: the frame's exr32 passes as float32 arrays (cached)."""
    from .io import atomic_path
    from .io.exr import read_exr

    target = out / "blender" / f"frame.{number:04d}.npz"
    record = out / "frames" / f"frame.{number:04d}.json"
    if target.is_file() and target.stat().st_mtime >= record.stat().st_mtime:
        return target
    arrays = {}
    for name in dict.fromkeys(("beauty",) + tuple(names)):
        arrays[name] = read_exr(out / "exr32" / name / f"{name}.{number:04d}.exr").astype(np.float32)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return target


# ------------------------------------------------------------------------------------------
# the subprocess loop
# ------------------------------------------------------------------------------------------


def serve(lines, write_line: Callable[[str], None], handler: Handler | None = None) -> None:
    """Answer requests read from ``lines`` until ``shutdown`` or end of input.

    ``hello``, ``cancel`` and ``shutdown`` are answered at once; jobs queue on one job thread.
    At the end the running job is cancelled and awaited.
    """
    handler = handler or Handler()
    lock = threading.Lock()

    def emit(message: dict) -> None:
        text = json.dumps(message, allow_nan=False)
        with lock:
            write_line(text)

    jobs: queue.Queue = queue.Queue()

    def run_jobs() -> None:
        while (request := jobs.get()) is not None:
            handler.handle(request, emit)

    thread = threading.Thread(target=run_jobs, name="relight-jobs", daemon=True)
    thread.start()
    try:
        for line in lines:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
            except ValueError as exc:
                emit({"id": None, "type": "error", "kind": "bad_request", "message": f"not JSON: {exc}"})
                continue
            cmd = request.get("cmd") if isinstance(request, dict) else None
            rid = request.get("id") if isinstance(request, dict) else None
            if cmd == "cancel":
                target = (request.get("args") or {}).get("target")
                emit({"id": rid, "type": "result", "result": {"cancelled": handler.cancel(target)}})
            elif cmd == "shutdown":
                emit({"id": rid, "type": "result", "result": {"shutdown": True}})
                break
            elif cmd in JOB_COMMANDS:
                jobs.put(request)
            else:
                handler.handle(request, emit)  # hello, or an error for an unknown command
    finally:
        handler.close()
        jobs.put(None)
        thread.join(timeout=60)


def main() -> int:
    # Keep the real stdout for protocol lines; point file descriptor 1 at stderr so that
    # anything else (library prints, subprocesses) cannot break the protocol.
    protocol_out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def write_line(text: str) -> None:
        protocol_out.write(text + "\n")
        protocol_out.flush()

    print(f"relight worker: protocol {PROTOCOL}, pid {os.getpid()}", file=sys.stderr, flush=True)
    serve(iter(sys.stdin.readline, ""), write_line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
