"""One frame of a plate job: track -> lights -> network -> composite (:class:`FrameWorker`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import composite as comp
from .. import passes as _passes
from ..io import PlateError
from ..io import colour as _colour
from .config import PlateJobConfig, fixed_input_light, parse_camera
from .lights import LIGHT_FRAMES, LightSmoother, TargetLight, plate_light_to_head
from .network import NetworkStep

__all__ = ["Outcome", "FrameWorker"]


@dataclass
class Outcome:
    """What a frame produced: its passes, its record (JSON) and, when relit, contact-sheet tiles."""

    passes: _passes.FramePasses
    record: dict
    thumb: dict | None = None


class FrameWorker:
    """Everything that runs per frame once the job is set up (tracker, network, matte).

    ``timer`` accumulates seconds per stage (``decode``, ``track``, ``light``, ``network`` and
    its sub-stages, ``composite``). Close with :meth:`close`.
    """

    def __init__(self, config: PlateJobConfig, plate, light: TargetLight, model, device: torch.device):
        from ..track.tracker import Tracker, TrackerConfig

        self.config, self.plate, self.light, self.model = config, plate, light, model
        tc = dict(fps=plate.fps, focal_mm=config.focal_mm, fov_deg=config.fov_deg,
                  sensor_width_mm=config.sensor_width_mm)
        tc.update(config.tracker)
        try:
            tracker_config = TrackerConfig(**tc)
        except (TypeError, ValueError) as exc:
            raise PlateError(f"tracker settings: {exc}") from None
        self.timer: dict[str, float] = {}
        self.tracker = Tracker(tracker_config)
        space = config.network_space
        self.space = ("display" if model.config.name == "paper" else "linear") if space == "auto" else space
        self.network = NetworkStep(model, device, config.window_policy, self.space, self.timer)
        self.segmenter = comp.PersonSegmenter() if config.person_segmentation else None
        self.smoother = LightSmoother(config.input_light_smoothing)
        self.camera = parse_camera(config.camera)
        self.fixed_input = fixed_input_light(config)
        self.estimate = None
        self.plate_first = plate.frame_numbers[0]
        self.plate_count = len(plate.frame_numbers)

    def close(self) -> None:
        self.tracker.close()
        if self.segmenter is not None:
            self.segmenter.close()

    def reset(self) -> None:
        """A new clip (a gap in the frames fed): forget tracking, temporal window, light."""
        self.tracker.reset()
        self._reset_shot()

    def _reset_shot(self) -> None:
        self.network.reset()
        self.smoother.reset()

    def _tick(self, stage: str, t0: float) -> float:
        t = time.perf_counter()
        self.timer[stage] = self.timer.get(stage, 0.0) + (t - t0)
        return t

    # -- views ------------------------------------------------------------------------------

    def novel(self, n: int) -> bool:
        """Whether frame ``n`` is rendered for a camera other than the plate's."""
        return self.camera[0] != "plate" or self.light.scene_camera_is_target(n)

    def _view(self, frame, track):
        """None for the plate's own view, else a :class:`composite.View` or a reason string."""
        n = frame.number
        if not self.novel(n):
            return None
        if self.camera[0] == "orbit":
            from ..track.pose import plate_intrinsics

            c = self.config
            K = plate_intrinsics(*frame.size, focal_mm=c.focal_mm, fov_deg=c.fov_deg, sensor_width_mm=c.sensor_width_mm)
            _, yaw, pitch, dist = self.camera
            return comp.check_view(comp.orbit_view(track.rotation, track.translation, K, frame.size, yaw, pitch, dist))
        return comp.check_view(comp.world_camera_view(self.light.scene_frame(n).camera, self.light.plate_c2w(n),
                                                      track.rotation, track.translation, track.metres_per_unit))

    # -- the input light ----------------------------------------------------------------------

    def _input_light(self, frame, track) -> tuple[np.ndarray | None, dict]:
        """Smoothed input light ``[9, 3]`` (plate camera DPR frame) or None, and its record."""
        if self.fixed_input is not None:
            sh = self.fixed_input.numpy().astype(np.float64)
            return (sh if sh.ndim == 2 else np.repeat(sh[:, None], 3, 1)), {"ok": True, "source": "given"}
        if self.estimate is None:
            try:
                from ..track.lighting import estimate_lighting
            except ImportError:
                raise PlateError("input light estimation (relight_core.track.lighting) is not available in this "
                                 "installation; give the plate's light with --input-light PRESET|FILE") from None
            self.estimate = estimate_lighting
        from ..track.pose import plate_intrinsics

        c = self.config  # the plate's intrinsics make off-centre faces' normals exact
        K = plate_intrinsics(*frame.size, focal_mm=c.focal_mm, fov_deg=c.fov_deg, sensor_width_mm=c.sensor_width_mm)
        est = self.estimate(frame.rgb, track.landmarks, track.rotation, K=K)
        info = {"ok": bool(est.ok), "reason": str(est.reason), "source": "estimated",
                "residual": _as_number(est.residual), "inliers": _as_number(est.inliers),
                "albedo": est.albedo, "samples": _as_number(est.samples)}
        sh = None
        if est.ok:
            sh = np.asarray(est.sh, dtype=np.float64)
            if sh.shape == (9,):
                sh = np.repeat(sh[:, None], 3, 1)
            if sh.shape != (9, 3) or not np.isfinite(sh).all():
                info.update(ok=False, reason=f"the estimate has shape {list(sh.shape)} or non-finite values")
                sh = None
        smoothed = self.smoother(sh)
        if sh is None and smoothed is not None:
            info["used"] = "the shot's previous estimate"
        return smoothed, info

    # -- one frame ----------------------------------------------------------------------------

    def process(self, frame, write: bool = True) -> Outcome | None:
        """Track, light, relight and (when ``write``) composite one frame."""
        t = time.perf_counter()
        n = frame.number
        display = _display_uint8(frame)
        t = self._tick("decode", t)
        track = self.tracker.track(display, n)
        t = self._tick("track", t)
        record = _track_record(n, track)
        if track.cut:
            self._reset_shot()
        if not track.found:
            return self._passthrough(frame, record, track.reason) if write else None
        view = self._view(frame, track)
        if isinstance(view, str):
            return self._passthrough(frame, record, view) if write else None

        sh_in_plate, light_info = self._input_light(frame, track) if view is None else (None, {})
        if view is None:
            record["input_light"] = light_info
            if sh_in_plate is None:
                self._tick("light", t)
                reason = f"input light not estimated ({light_info.get('reason') or 'no estimate'})"
                return self._passthrough(frame, record, reason) if write else None
        target = self.light.in_plate_frame(n, track, self.plate_first, self.plate_count)
        sh_t = plate_light_to_head(target, track.rotation)
        sh_in = None if sh_in_plate is None else plate_light_to_head(sh_in_plate, track.rotation)
        record.update(light_frames=LIGHT_FRAMES, target_sh=target, input_sh=sh_in_plate,
                      target_sh_network=sh_t, input_sh_network=sh_in)
        t = self._tick("light", t)

        from ..track.align import align_crop, crop_affine

        size = self.model.config.image_size
        crop = align_crop(display, track.five_points, output_size=size)
        label = np.asarray(track.camera_label, dtype=np.float64)
        render_label, render_c2w, distance = label.astype(np.float32), label[:16].reshape(4, 4), None
        if view is not None:
            render_label, render_c2w, distance = comp.crop_camera_for(view)
        net = self.network(crop, render_label, sh_t, sh_in)
        t = self._tick("network", t)
        if not write:
            return None
        h, w = display.shape[:2]
        src_to_crop = crop_affine(track.five_points, w, h, output_size=size)[1]
        outcome = self._composite(frame, display, track, crop, src_to_crop, net, view, render_c2w, distance, record)
        self._tick("composite", t)
        record["relit"], record["reason"] = True, ""
        return outcome

    def _composite(self, frame, display, track, crop, src_to_crop, net, view, render_c2w, distance, record) -> Outcome:
        """Network results (crop space) -> the frame's passes (plate view or the novel view)."""
        import torch.nn.functional as F

        cfg = self.config
        size = self.model.config.image_size
        if view is None:
            w, h = frame.size
            mapping = comp.crop_mapping_from_affine(src_to_crop, size)
            rot, trans = track.rotation, track.translation
        else:
            w, h = view.size
            mapping = comp.view_to_crop_mapping(view, render_c2w, distance)
            rot, trans = view.rotation, view.translation
        roi = comp.footprint_roi(mapping, w, h)
        grid = comp.homography_grid(mapping, roi)
        n_res = net["depth"].shape[0]

        normals_cv = comp.normals_from_depth(net["depth"], net["K"])  # render camera, OpenCV axes
        to_out = comp.OPENCV_TO_BLENDER_CAMERA @ rot @ render_c2w[:3, :3]
        normals = (normals_cv.reshape(-1, 3) @ to_out.T).reshape(n_res, n_res, 3).astype(np.float32)
        depth = comp.camera_depth(net["depth"], render_c2w, net["K"], rot, trans, float(track.metres_per_unit))
        lowres = [net["albedo"], _expand3(net["shading_target"]), torch.from_numpy(normals).permute(2, 0, 1),
                  torch.from_numpy(depth)[None], net["opacity"][None]]
        if view is None:
            ratio = comp.shading_ratio(net["shading_target"], net["shading_input"], eps=cfg.ratio_eps,
                                       ratio_range=cfg.ratio_range)
            lowres.append(torch.log(ratio))  # upsampled in log space: smooth and positive
        up = F.interpolate(torch.cat(lowres, 0)[None].float(), size=(size, size), mode="bicubic", align_corners=False)[0]
        # warped channels: image 0:3, albedo 3:6, shading 6:9, normal 9:12, depth 12, opacity 13, log ratio 14:17
        warped = comp.warp(torch.cat([net["image"], up], 0), grid).numpy().transpose(1, 2, 0)
        inside = comp.inside_crop(grid).numpy()
        opacity = np.clip(warped[..., 13], 0, 1)
        solid = opacity >= 0.5
        normal = warped[..., 9:12]
        normal = np.where(solid[..., None], normal / np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-6), 0)
        layers = {"relit": np.concatenate([np.clip(warped[..., 0:3], 0, None), opacity[..., None]], -1),
                  "albedo": np.clip(warped[..., 3:6], 0, None), "shading": np.clip(warped[..., 6:9], 0, None),
                  "normal": normal, "depth": np.where(solid, warped[..., 12], 0.0)}
        if view is None:
            ratio = np.exp(warped[..., 14:17]).clip(*cfg.ratio_range)
            person = None if self.segmenter is None else self.segmenter(display)[roi.slices]
            box = track.box
            sigma = cfg.matte_feather * max(box[2] - box[0], box[3] - box[1])
            matte = comp.build_matte(comp.face_hull_mask(track.landmarks, roi), person, opacity,
                                     inside.astype(np.float32), sigma)
            beauty = comp.apply_ratio(frame, ratio, matte, roi, space=self.space)
            layers["ratio"] = 1.0 + matte[..., None] * (ratio - 1.0)
            layers["alpha"] = matte
            record["matte_pixels"] = int((matte > 0).sum())
        else:
            layers["alpha"] = opacity * inside
            beauty = comp.render_over_transparent(layers["relit"], layers["alpha"], roi, view.size,
                                                  frame.colourspace, np.asarray(frame.source_pixels).dtype)
        record["roi"] = [roi.x0, roi.y0, roi.x1, roi.y1]
        passes = _passes.FramePasses(frame.number, (w, h), beauty, frame.colourspace, roi,
                                     {k: np.asarray(v, dtype=np.float32) for k, v in layers.items()},
                                     frame.premultiplied)
        head = (net["opacity"].numpy() >= 0.5)[..., None]
        thumb = {"input": crop, "relit": _to_display(net["image"]), "albedo": _to_display(net["albedo"]),
                 "shading": _to_display(_expand3(net["shading_target"])),
                 "normal": np.clip((normals + 1) * 127.5 * head, 0, 255).astype(np.uint8)}
        return Outcome(passes, record, thumb)

    def _passthrough(self, frame, record, reason: str) -> Outcome:
        """A frame without a usable face: the plate unchanged (or a transparent novel view)."""
        record["relit"], record["reason"] = False, reason
        n = frame.number
        if not self.novel(n):
            beauty, size = comp.source_rgb_layout(frame), frame.size
        else:
            camera = self.light.scene_frame(n).camera if self.camera[0] == "plate" else None
            size = tuple(camera.resolution) if camera is not None else frame.size
            beauty = comp.render_over_transparent(None, None, None, size, frame.colourspace,
                                                  np.asarray(frame.source_pixels).dtype)
        return Outcome(_passes.FramePasses(n, size, beauty, frame.colourspace, None, {}, frame.premultiplied), record)


def _track_record(n: int, track) -> dict:
    """The tracking part of a frame's record."""
    record = {"frame": n, "face_found": bool(track.found), "relit": False, "reason": track.reason,
              "faces": int(track.faces), "subject": int(track.subject), "cut": bool(track.cut),
              "cut_reason": track.cut_reason, "box": track.box}
    if track.found:
        record["pose"] = {"rotation": track.rotation, "translation_head_units": track.translation,
                          "metres_per_unit": track.metres_per_unit, "yaw_deg": track.yaw,
                          "pitch_deg": track.pitch, "roll_deg": track.roll, "error_px": track.error_px}
        record["camera_label"] = track.camera_label
    elif math.isfinite(track.yaw):
        record["pose"] = {"yaw_deg": track.yaw, "pitch_deg": track.pitch, "roll_deg": track.roll}
    return record


def _display_uint8(frame) -> np.ndarray:
    """``[H, W, 3]`` uint8 display sRGB of a frame (the tracker's and network's input)."""
    src = np.asarray(frame.source_pixels)
    if src.dtype == np.uint8 and frame.colourspace == _colour.SRGB:
        colour, _ = _colour.split_channels(src)
        return np.ascontiguousarray(colour)
    return _colour.encode(frame.rgb, None, _colour.SRGB, np.uint8)


def _expand3(x: torch.Tensor) -> torch.Tensor:
    return x.expand(3, *x.shape[1:]) if x.shape[0] == 1 else x


def _to_display(x: torch.Tensor) -> np.ndarray:
    """[3, h, w] linear -> [h, w, 3] uint8 sRGB."""
    return _colour.encode(x.permute(1, 2, 0).numpy().astype(np.float32), None, _colour.SRGB, np.uint8)


def _as_number(x):
    """A JSON-friendly number from a scalar, array (summed) or boolean mask (counted); None stays."""
    if x is None:
        return None
    a = np.asarray(x)
    if a.dtype == bool:
        return int(a.sum())
    try:
        return float(a.sum()) if a.size > 1 else float(a)
    except (TypeError, ValueError):
        return None
