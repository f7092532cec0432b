"""The frames of a plate job's lights (relight_core.plate.lights): plate camera -> head DPR frame.

The network takes SH in the head DPR frame (training: ``sh.camera_to_head``), so a head-space
normal ``n`` is shaded ``sh.shading(HEAD_TO_DPR @ n, sh_network)``. These tests check that this
equals the light as the user gave it, seen from the plate camera (presets, estimated light), or
as it stands in the scene's world (scenes), for heads turned every way.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from relight_core import sh
from relight_core.plate import PlateJobConfig
from relight_core.plate.lights import TargetLight, plate_light_to_head
from relight_core.track.tracker import FrameTrack

FRONTAL = np.diag([1.0, -1.0, -1.0])
"""Head -> OpenCV plate camera rotation of a face looking straight into the camera."""


def _turn(yaw_deg: float, pitch_deg: float = 0.0) -> np.ndarray:
    """Head -> plate camera rotation of a head turned by yaw (about head +y), then pitched (head +x)."""
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    return FRONTAL @ ry @ rx


def _network_shading(head_normals: np.ndarray, sh_network) -> torch.Tensor:
    """How the network's light frame shades head-space normals ``[N, 3]``."""
    n = torch.as_tensor(head_normals @ np.asarray(sh.HEAD_TO_DPR).T)
    return sh.shading(n, torch.as_tensor(sh_network).double())


def _unit_normals(count: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(count, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("yaw, pitch", [(-45, 0), (-20, 10), (0, 0), (30, -15), (45, 20)])
def test_key_left_lights_the_image_left_side_whatever_the_yaw(yaw, pitch):
    R = _turn(yaw, pitch)
    given = sh.preset("key_left")
    net = plate_light_to_head(given, R)
    # surfaces facing the camera's left / right (OpenCV: x right, z away from the camera)
    left = np.array([-1.0, 0.0, -1.0]) / math.sqrt(2)
    right = np.array([1.0, 0.0, -1.0]) / math.sqrt(2)
    shade_left, shade_right = _network_shading(np.stack([R.T @ left, R.T @ right]), net)
    assert shade_left > 2 * shade_right
    # every head normal gets the light the plate camera sees on it
    normals_cam = _unit_normals(200)
    seen_from_plate = sh.shading(torch.as_tensor(normals_cam @ np.asarray(sh.OPENCV_TO_DPR).T), given.double())
    assert torch.allclose(_network_shading(normals_cam @ R, net), seen_from_plate, atol=1e-5)


def test_the_light_must_be_rotated_for_a_turned_head():
    """The check above has teeth: the plate-frame SH fed unrotated lights the wrong side at 45 deg."""
    R = _turn(45)
    given = sh.preset("key_left")
    normals_cam = _unit_normals(200)
    truth = sh.shading(torch.as_tensor(normals_cam @ np.asarray(sh.OPENCV_TO_DPR).T), given.double())
    unrotated = _network_shading(normals_cam @ R, given)
    assert (unrotated - truth).abs().max() > 0.3


def test_coloured_light_keeps_its_shape_and_channels():
    R = _turn(25, 5)
    gel = torch.stack([sh.preset("key_left"), sh.preset("key_right"), sh.preset("top")], dim=-1)  # [9, 3]
    net = plate_light_to_head(gel, R)
    assert net.shape == (9, 3) and net.dtype == torch.float32
    for c in range(3):
        assert torch.allclose(net[:, c], plate_light_to_head(gel[:, c], R), atol=1e-6)


def test_agrees_with_the_tracked_crop_camera(shared_data):
    """A tracked portrait: plate -> crop camera DPR (the light estimator's own conversion), then
    crop camera -> head (training's conversion) is the same light as the direct rotation."""
    from PIL import Image

    from relight_core.track.lighting import light_to_crop_frame
    from relight_core.track.tracker import Tracker, TrackerConfig

    image = np.asarray(Image.open(shared_data / "portraits" / "A000014.jpg").convert("RGB"))
    with Tracker(TrackerConfig(smoothing=False)) as tracker:
        track = tracker.track(image, 1)
    assert track.found, track.reason
    given = sh.preset("key_left")
    in_crop = light_to_crop_frame(given.numpy(), track.rotation, track.translation)
    crop_c2w = np.asarray(track.camera_label, dtype=np.float64)[:16].reshape(4, 4)
    via_crop = sh.camera_to_head(torch.as_tensor(in_crop).double(), torch.as_tensor(crop_c2w))
    assert torch.allclose(plate_light_to_head(given, track.rotation).double(), via_crop, atol=2e-4)


def _scene_file(tmp_path) -> PlateJobConfig:
    scene = {"format": "relight.scene", "version": 1, "fps": 24.0, "frames": [{
        "frame": 1,
        "lights": [{"type": "sun", "power": 3.0, "color": [1.0, 0.9, 0.8],
                    "matrix": [[1, 0, 0, 0], [0, 0, -1, -5], [0, 1, 0, 2], [0, 0, 0, 1]]},
                   {"type": "point", "power": 400.0, "color": [0.2, 0.4, 1.0],
                    "matrix": [[1, 0, 0, 2.0], [0, 1, 0, -1.0], [0, 0, 1, 1.5], [0, 0, 0, 1]]}],
        "world": {"kind": "constant", "color": [0.2, 0.2, 0.2], "strength": 1.0}, "camera": None}]}
    path = tmp_path / "scene.json"
    path.write_text(json.dumps(scene))
    return PlateJobConfig(input="unused", out=tmp_path / "out", scene=path)


@pytest.mark.parametrize("yaw", [-35, 0, 35])
def test_scene_light_stays_fixed_in_the_world_while_the_head_turns(tmp_path, yaw):
    from relight_core import composite as comp
    from relight_core.camera import centred_camera, split_label
    from relight_core.scene import lighting_at, scene_to_sh

    light = TargetLight(_scene_file(tmp_path))
    R = _turn(yaw, 10)
    track = FrameTrack(1, found=True, rotation=R, translation=np.array([0.3, -0.2, 7.0]), metres_per_unit=0.1)
    given = light.in_plate_frame(1, track, first=1, count=1)
    net = plate_light_to_head(given, R)

    plate_c2w = light.plate_c2w(1)  # Blender's front view: no scene camera, no --plate-camera
    head_to_world = plate_c2w @ comp.head_to_camera_metric(R, track.translation, track.metres_per_unit)
    head_rotation = plate_c2w[:3, :3] @ R  # head -> world
    world = lighting_at(light.scene_frame(1), head_to_world[:3, 3])  # SH in world axes
    normals_head = _unit_normals(200, seed=yaw + 100)
    in_world = sh.shading(torch.as_tensor(normals_head @ head_rotation.T), world)
    assert torch.allclose(_network_shading(normals_head, net), in_world, atol=1e-5)

    # the same light by way of scene_to_sh (crop camera frame) and training's camera_to_head
    crop = scene_to_sh(light.scene_frame(1), head_to_world, plate_c2w, dtype=torch.float64)
    crop_world = split_label(centred_camera(torch.as_tensor(plate_c2w), torch.as_tensor(head_to_world[:3, 3])))[0]
    crop_in_head = head_rotation.T @ crop_world[:3, :3].numpy()
    assert torch.allclose(sh.camera_to_head(crop, torch.as_tensor(crop_in_head)), net.double(), atol=1e-5)
