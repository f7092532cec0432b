"""Temporal stability on a real clip: the warping error (the paper's WE) of each method.

The clip is tracked as the plate job tracks it (:class:`relight_core.track.tracker.Tracker` in
video mode), each tracked frame is cropped, and every method relights it under one target light
fixed to the camera (so the light does not move with the head). For consecutive tracked frames of
one shot, dense optical flow (OpenCV Farneback, forward-backward checked) between the two *input*
crops warps the previous output onto the current one; the error is the mean squared RGB distance
(display sRGB in [0, 1], summed over channels) over the face region of the current frame where
the flow is consistent (:func:`.metrics.warping_error`). The same pixels score every method.

Methods: the network frame by frame as images (``per_frame``), the network's video path with the
temporal network (``video``, :class:`relight_core.models.relighter.VideoRelighter`, window reset
at cuts), the classical baseline, and the input crops themselves (the motion's own floor: flow
errors and real changes of the picture).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import metrics as M
from .classical import mesh_relight
from .common import crop_tensor, display, head_light, label_cam2world, render, to_uint8


def _grey(image01: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(to_uint8(image01), cv2.COLOR_RGB2GRAY)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size:
        return image
    import cv2

    return cv2.resize(np.asarray(image, dtype=np.float32), (size, size), interpolation=cv2.INTER_AREA)


def _video_step(video, planes, label, sh_head) -> np.ndarray:
    """:meth:`VideoRelighter.step` on already encoded planes -> display ``[S, S, 3]`` in [0, 1]."""
    import torch

    from ...models.relighter import to_display

    model = video.model
    with torch.no_grad():
        smoothed = video.smooth(planes, model.shade(planes, sh_head))
        camera = torch.as_tensor(np.asarray(label, dtype=np.float32))[None].to(planes.device)
        out = model.render(smoothed["albedo_planes"], smoothed["shading_planes"], camera, model.planes_to_style(planes))
    return to_display(out["image"], model.config.output_colour)[0].permute(1, 2, 0).cpu().numpy()


def clip_suite(model, device, path: Path, frames: int, light: np.ndarray, progress=None) -> tuple[dict, list[dict]]:
    """Relight up to ``frames`` tracked frames of the clip at ``path`` (frames without a usable face
    are skipped and break the pair chain).

    Returns (summary dict, per-frame image dicts of the first frames for the contact sheet).
    """
    from ...io import open_plate
    from ...io.colour import SRGB, encode
    from ...models.relighter import VideoRelighter
    from ...track.lighting import estimate_lighting
    from ...track.pose import plate_intrinsics
    from ...track.tracker import Tracker, TrackerConfig
    from .common import crop_from_track

    plate = open_plate(path)
    size = model.config.image_size
    video = VideoRelighter(model)
    methods = ("per_frame", "video", "classical", "input")
    errors: dict[str, list[float]] = {m: [] for m in methods}
    previous = None
    tracked, skipped, cuts, sheet = 0, [], 0, []
    with Tracker(TrackerConfig(fps=plate.fps)) as tracker:
        for frame in plate:
            if tracked >= frames:
                break
            pixels = encode(frame.rgb, None, SRGB, np.uint8)
            track = tracker.track(pixels, frame.number)
            if track.cut:
                video.reset()
                cuts += previous is not None
                previous = None
            if not track.found:
                skipped.append({"frame": frame.number, "reason": track.reason})
                previous = None
                continue
            face = crop_from_track(pixels, track, plate_intrinsics(*frame.size), size)
            sh_head = head_light(light, label_cam2world(face.label)).to(device)
            planes = model.encode(crop_tensor(face.crop, device))
            outputs = {"per_frame": _resize(render(model, planes, face.label, sh_head)["display"], size)}
            outputs["video"] = _resize(_video_step(video, planes, face.label, sh_head), size)
            est = estimate_lighting(face.linear, face.landmarks, K=face.K)
            relit = face.linear  # the classical baseline passes a frame without a light estimate through
            if est.ok:
                relit = mesh_relight(face.linear, face.landmarks, face.K, est.sh, face.to_plate_frame(light))[0]
            outputs["classical"] = display(relit)
            outputs["input"] = face.crop.astype(np.float32) / 255.0
            current = {"grey": _grey(outputs["input"]), "outputs": outputs, "face": face.face}
            if previous is not None:
                flow, valid = M.consistent_flow(previous["grey"], current["grey"])
                region = valid & face.face
                for m in methods:
                    errors[m].append(M.warping_error(previous["outputs"][m], outputs[m], flow, region))
            previous = current
            tracked += 1
            if len(sheet) < 3:
                sheet.append({"frame": frame.number, **{m: to_uint8(v) for m, v in outputs.items()}})
            if progress is not None:
                progress()
    summary = {"file": str(path), "frames_tracked": tracked, "pairs": len(errors["input"]), "cuts_inside": cuts,
               "skipped_frames": len(skipped), "first_skipped": skipped[:5],
               "temporal_window": model.config.temporal_window,
               "warping_error": {m: M.summary(v) for m, v in errors.items()}}
    if summary["pairs"] == 0:
        summary["note"] = "no pair of consecutive tracked frames: the warping error is undefined"
    return summary, sheet

