"""The lights of a plate job and the frames they are expressed in.

Two frames matter (both DPR frames, :mod:`relight_core.sh`):

* the **plate camera's DPR frame** (x image right, y into the screen, z image up): presets, SH
  files, the estimated input light and the record's ``target_sh``/``input_sh`` are given there,
  so ``key_left`` is a light on the image-left of the plate whatever the head does;
* the **head DPR frame** (:data:`relight_core.sh.HEAD_TO_DPR`): the frame the network takes its
  SH in (training converts its lights with :func:`relight_core.sh.camera_to_head`). The record's
  ``target_sh_network``/``input_sh_network`` are in this frame.

:func:`plate_light_to_head` converts between them with the tracked head rotation; a scene's
lights are evaluated at the head position in the scene's world and expressed in the plate
camera's frame first (:meth:`TargetLight.in_plate_frame`), so every light takes the same path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import composite as comp
from .. import sh as _sh
from ..io import PlateError
from .config import (DEFAULT_LIGHT, PlateJobConfig, check_preset, file_hash, front_camera_world, load_scene,
                     load_sh_file, plate_camera_world)

__all__ = ["LIGHT_FRAMES", "plate_light_to_head", "TargetLight", "LightSmoother"]

LIGHT_FRAMES = {"given": "plate camera DPR frame (x image right, y into the screen, z image up)",
                "network": "head DPR frame (relight_core.sh.HEAD_TO_DPR)"}
"""The frames of a frame record's SH fields (``target_sh``, ``input_sh``: given; ``*_network``)."""


def plate_light_to_head(coeffs, rotation) -> torch.Tensor:
    """SH in the plate camera's DPR frame -> the same light in the head DPR frame.

    The rotation is ``HEAD_TO_DPR @ (OPENCV_TO_DPR @ R)^T``: the plate camera seen from the head
    has cam2world ``R^T``, so this is :func:`relight_core.sh.camera_to_head` of that camera,
    the conversion training applies to its lights.

    Args:
        coeffs: grey ``[9]`` or coloured ``[9, 3]`` coefficients, plate camera DPR frame.
        rotation: ``[3, 3]`` head -> plate camera rotation (OpenCV axes), the tracked pose.

    Returns:
        float32 coefficients of the same shape, head DPR frame.
    """
    r = torch.as_tensor(np.asarray(rotation, dtype=np.float64))
    return _sh.camera_to_head(torch.as_tensor(coeffs).double(), r.transpose(0, 1)).float()


class TargetLight:
    """The target light of a job: a preset, ``rotating``, an SH file or a scene.

    Attributes:
        kind: ``"preset"``, ``"rotating"``, ``"sh"`` or ``"scene"``. name: preset name or path.
        fixed: the coefficients of a preset or SH file (plate camera DPR frame).
        scene: the :class:`relight_core.scene.Scene` of a scene light.
        plate_world: OpenCV cam2world of the plate camera in the scene's world (``plate_camera``).
    """

    def __init__(self, config: PlateJobConfig):
        self.scene = self.fixed = self.plate_world = None
        if config.scene is not None:
            self.kind, self.name = "scene", str(config.scene)
            self.scene = load_scene(config.scene)
            self.plate_world = plate_camera_world(config)
        elif config.sh_file is not None:
            self.kind, self.name = "sh", str(config.sh_file)
            self.fixed = load_sh_file(config.sh_file)
        else:
            name = config.light or DEFAULT_LIGHT
            check_preset(name)
            self.kind, self.name = ("rotating" if name == "rotating" else "preset"), name
            if name != "rotating":
                self.fixed = _sh.preset(name)

    def describe(self) -> dict:
        """What the job's results depend on (for the job's settings)."""
        d = {"kind": self.kind, "name": self.name}
        if self.kind == "sh":
            d["sh"] = self.fixed.tolist()
        if self.kind == "scene":
            d["sha256"] = file_hash(Path(self.name))
        return d

    def check_frames(self, numbers: list[int]) -> None:
        """A scene must cover every frame of the range (or hold one frame for all)."""
        if self.kind != "scene" or len(self.scene.frames) == 1:
            return
        from ..io.sequence import format_ranges

        missing = [n for n in numbers if n not in self.scene.frames]
        if missing:
            raise PlateError(f"scene {self.name} has no entry for plate frames {format_ranges(missing)}; export "
                             "the scene over the plate's frame range, or give a scene with a single frame for all frames")

    # -- scenes -----------------------------------------------------------------------------

    def scene_frame(self, n: int):
        """The scene at plate frame ``n`` (its only frame when it has one)."""
        frames = self.scene.frames
        return next(iter(frames.values())) if len(frames) == 1 else self.scene.frame(n)

    def plate_c2w(self, n: int) -> np.ndarray:
        """The plate camera in the scene's world at frame ``n`` (OpenCV cam2world, metres)."""
        if self.plate_world is not None:
            return self.plate_world
        camera = self.scene_frame(n).camera
        return camera.cam2world() if camera is not None else front_camera_world()

    def scene_camera_is_target(self, n: int) -> bool:
        """Whether a scene camera, distinct from the plate camera, is the target view at ``n``."""
        return self.kind == "scene" and self.plate_world is not None and self.scene_frame(n).camera is not None

    # -- per frame --------------------------------------------------------------------------

    def in_plate_frame(self, n: int, track, first: int, count: int) -> torch.Tensor:
        """Target SH at frame ``n`` in the plate camera's DPR frame: ``[9]`` or ``[9, 3]``.

        Args:
            n: frame number. track: the frame's :class:`relight_core.track.tracker.FrameTrack`
                (scenes: the head position and rotation in the scene's world).
            first, count: the plate's first frame number and frame count (``rotating``: one orbit).
        """
        if self.kind == "rotating":
            return _sh.rotating((n - first) / max(count, 1)).float()
        if self.kind != "scene":
            return self.fixed.clone()
        from ..scene import lighting_at

        plate_c2w = self.plate_c2w(n)
        head_to_world = plate_c2w @ comp.head_to_camera_metric(track.rotation, track.translation,
                                                               track.metres_per_unit)
        try:
            world = lighting_at(self.scene_frame(n), head_to_world[:3, 3])  # SH in world axes
        except ValueError as exc:
            raise PlateError(f"scene {self.name}, frame {n}: {exc}") from None
        return _sh.rotate(world, _sh.world_to_dpr(torch.as_tensor(plate_c2w))).float()


class LightSmoother:
    """Exponential smoothing of per-frame input-light estimates within a shot.

    ``smoother(sh)`` returns the smoothed ``[9, 3]`` value (the previous one when ``sh`` is None,
    None before any estimate); :meth:`reset` at a cut.
    """

    def __init__(self, weight: float):
        self.weight = weight
        self.value: np.ndarray | None = None

    def reset(self) -> None:
        self.value = None

    def __call__(self, sh: np.ndarray | None) -> np.ndarray | None:
        if sh is None:
            return self.value
        sh = np.asarray(sh, dtype=np.float64)
        self.value = sh if self.value is None else self.weight * self.value + (1 - self.weight) * sh
        return self.value
