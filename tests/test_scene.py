"""The JSON-able scene description and its conversion to SH (relight_core.scene).

Cycles is the oracle for the light units in tests/addon/test_addon_sh_cycles.py; here the
conversion is checked against closed forms, and the data classes for round trips and errors.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from relight_core import scene as S
from relight_core import sh

F64 = torch.float64
HEAD = np.array([0.3, 0.2, 1.5])
Y0 = sh.SH_CONSTANTS[0]


def _frame(*lights, world=None, camera=None):
    return S.SceneFrame(frame=1, lights=tuple(lights), world=world, camera=camera)


def _dc(frame, head=HEAD):
    """Red-channel DC of the world-axes SH, times pi / Y0 = the cap's radiance x solid angle."""
    return S.lighting_at(frame, head)[0, 0].item() * math.pi / Y0


def _translation(p):
    m = np.eye(4)
    m[:3, 3] = p
    return m


def _front_camera(head, distance=3.0):
    """OpenCV cam2world in front of the head (-Y), looking +Y, Z up: its DPR frame is the world's."""
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2] = (1, 0, 0), (0, 0, -1), (0, 1, 0)
    m[:3, 3] = np.asarray(head) + (0.0, -distance, 0.0)
    return m


def _point(offset, **kw):
    return S.Light.from_dict({"type": kw.pop("type", "point"), "power": kw.pop("power", 100.0),
                              "position": list(HEAD + np.asarray(offset, float)), **kw})


# ------------------------------------------------------------------------------------------
# data classes
# ------------------------------------------------------------------------------------------


def _full_scene(tmp_path):
    np.save(tmp_path / "env.npy", np.full((8, 16, 3), 0.5))
    cam = S.CameraDesc(matrix_world=np.eye(4).tolist(), resolution=(1920, 1080), lens=35.0, shift_x=0.1,
                       name="cam", intrinsics=[[1.0, 0, 0.5], [0, 1.7, 0.5], [0, 0, 1]])
    lights = (
        S.Light(type="sun", power=3.0, angle=0.1, color=(1.0, 0.9, 0.8), name="sun"),
        S.Light(type="spot", power=800.0, radius=0.1, spot_size=0.8, spot_blend=0.3, soft_falloff=False),
        S.Light(type="area", power=50.0, shape="ellipse", size=0.5, size_y=0.2, spread=1.0, normalize=False, exposure=1.0),
        _point((1, -1, 1)),
    )
    frames = {1: S.SceneFrame(1, lights, S.World(kind="image", path="env.npy", strength=2.0), cam),
              2: S.SceneFrame(2, lights[:1], S.World(kind="constant", color=(0.1, 0.2, 0.3)), None),
              3: S.SceneFrame(3, (), S.World(kind="sh", sh=np.ones((9, 3)).tolist()), None)}
    return S.Scene(frames=frames, fps=25.0)


def test_round_trip_through_json_file(tmp_path):
    scene = _full_scene(tmp_path)
    path = tmp_path / "scene.json"
    scene.save(path)
    loaded = S.Scene.load(path)
    assert loaded.frames[2] == scene.frames[2] and loaded.frames[3] == scene.frames[3]
    assert loaded.frames[1].lights == scene.frames[1].lights and loaded.frames[1].camera == scene.frames[1].camera
    assert loaded.frames[1].world.path == str(tmp_path / "env.npy")  # resolved against the file's folder
    assert json.loads(path.read_text())["format"] == "relight.scene"
    assert S.Scene.from_dict(json.loads(json.dumps(loaded.to_dict()))) == loaded


def test_position_and_direction_make_a_matrix():
    light = S.Light.from_dict({"type": "spot", "power": 1, "position": [1, 2, 3], "direction": [0, 3, 0]})
    np.testing.assert_allclose(light.position, [1, 2, 3])
    np.testing.assert_allclose(light.axis, [0, 1, 0], atol=1e-12)
    m = np.asarray(light.matrix)[:3, :3]
    np.testing.assert_allclose(m.T @ m, np.eye(3), atol=1e-12)
    assert np.linalg.det(m) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "frame, message",
    [
        ({"frame": 1, "lights": [{"type": "spot", "power": -1}]}, r"frame\.lights\[0\]\.power: .*got -1"),
        ({"frame": 1, "lights": [{"type": "lamp", "power": 1}]}, r"frame\.lights\[0\]\.type: expected one of"),
        ({"frame": 1, "lights": [{"type": "sun", "power": 1, "name": "Key", "angle": 4}]},
         r"frame\.lights\[0\] \('Key'\)\.angle"),
        ({"frame": 1, "lights": [{"type": "sun", "power": 1, "colour": [1, 1, 1]}]}, r"unknown keys \['colour'\]"),
        ({"frame": 1, "lights": [{"type": "point"}]}, r"missing required keys \['power'\]"),
        ({"frame": 1, "lights": [{"type": "point", "power": 1, "matrix": np.zeros((4, 4)).tolist()}]},
         r"matrix: expected the last row"),
        ({"frame": 1, "lights": [{"type": "area", "power": 1, "size": 0}]}, r"\.size: expected .* \(0, inf\]"),
        ({"frame": 1, "lights": [{"type": "point", "power": float("nan")}]}, r"power: expected a finite number"),
        ({"frame": 1, "world": {"kind": "image"}}, r"frame\.world\.path: expected the path"),
        ({"frame": 1, "world": {"kind": "sh", "sh": [[0, 0, 0]] * 4}}, r"world\.sh: expected a 9x3 matrix"),
        ({"frame": 1, "world": {"kind": "constant", "rotation": np.diag([1, 1, -1]).tolist()}}, r"rotation matrix"),
        ({"frame": 1, "camera": {"matrix_world": np.eye(4).tolist(), "resolution": [0, 5]}}, r"resolution\[0\]"),
        ({"frame": 1, "camera": {"matrix_world": np.eye(4).tolist(), "resolution": [4, 4], "sensor_fit": "x"}},
         r"camera\.sensor_fit: expected one of auto, horizontal, vertical"),
        ({"frame": "1"}, r"frame\.frame: expected an integer"),
    ],
)
def test_invalid_input_names_the_field(frame, message):
    with pytest.raises(ValueError, match=message):
        S.SceneFrame.from_dict(frame)


def test_scene_level_errors(tmp_path):
    with pytest.raises(ValueError, match="scene.format"):
        S.Scene.from_dict({"format": "x", "version": 1, "frames": []})
    with pytest.raises(ValueError, match="reads version 1, got 2"):
        S.Scene.from_dict({"format": S.FORMAT, "version": 2, "frames": []})
    with pytest.raises(ValueError, match="unique"):
        S.Scene.from_dict({"format": S.FORMAT, "version": 1, "frames": [{"frame": 1}, {"frame": 1}]})
    with pytest.raises(ValueError, match=r"frame: 7 is not in this scene; it has frames 1\.\.3"):
        _full_scene(tmp_path).frame(7)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="cannot read a relight scene file"):
        S.Scene.load(tmp_path / "bad.json")


def test_float32_pi_from_blender_is_accepted():
    light = S.Light(type="area", power=1.0, spread=3.1415927410125732)
    assert light.spread == math.pi


# ------------------------------------------------------------------------------------------
# lights
# ------------------------------------------------------------------------------------------


def test_sun_keeps_normal_incidence_irradiance_for_any_angle():
    for angle in (0.0, math.radians(90), math.radians(150)):
        sun = S.Light.from_dict({"type": "sun", "power": 2.0, "angle": angle, "direction": [0, 0, -1]})
        c = S.lighting_at(_frame(sun), HEAD)
        # exact normal-incidence irradiance of the cap = its l=1 part: shading band 1 at n = +Z is E / (2 pi)
        band1 = (c[2, 0] * sh.LAMBERT[2] * sh.SH_CONSTANTS[2]).item()
        assert band1 == pytest.approx(2.0 / (2 * math.pi), rel=1e-9)
        np.testing.assert_allclose(c[:, 1], c[:, 0])  # white


def test_sun_matches_directional_and_exposure():
    sun = S.Light.from_dict({"type": "sun", "power": 1.5, "exposure": 2.0, "direction": [1, -2, -3], "color": [1, 0.5, 0]})
    c = S.lighting_at(_frame(sun), HEAD)
    expected = sh.directional(torch.tensor([-1.0, 2.0, 3.0], dtype=F64), 6.0, color=[1, 0.5, 0], dtype=F64)
    torch.testing.assert_close(c, expected)


def test_point_light_inverse_square():
    near = _dc(_frame(_point((0, -1, 0))))
    far = _dc(_frame(_point((0, -2, 0))))
    assert near == pytest.approx(100.0 / (4 * math.pi), rel=1e-12)
    assert far == pytest.approx(near / 4, rel=1e-12)


def test_point_radius_soft_falloff_and_sphere():
    d, r, p = 2.0, 1.0, 300.0
    soft = _dc(_frame(_point((0, -d, 0), radius=r, power=p)))
    sphere = _dc(_frame(_point((0, -d, 0), radius=r, power=p, soft_falloff=False)))
    for flux, cos_a in ((soft, d / math.hypot(d, r)), (sphere, math.sqrt(1 - (r / d) ** 2))):
        # uniform cap of radiance P / (4 pi^2 r^2) over the solid angle 2 pi (1 - cos a)
        assert flux == pytest.approx(p / (4 * math.pi**2 * r * r) * 2 * math.pi * (1 - cos_a), rel=1e-12)
    # normal-incidence irradiance (Cycles, BLENDER.md 4.3): disk P / (4 pi (d^2 + r^2)), sphere P / (4 pi d^2)
    for light, e in ((_point((0, -d, 0), radius=r, power=p), p / (4 * math.pi * (d * d + r * r))),
                     (_point((0, -d, 0), radius=r, power=p, soft_falloff=False), p / (4 * math.pi * d * d))):
        c = S.lighting_at(_frame(light), HEAD)
        band1 = -(c[1, 0] * sh.LAMBERT[1] * sh.SH_CONSTANTS[1]).item() * math.pi
        assert band1 == pytest.approx(e / 2, rel=1e-9)


def test_point_normalize_off():
    on = _dc(_frame(_point((0, -2, 0), radius=0.5, soft_falloff=False)))
    off = _dc(_frame(_point((0, -2, 0), radius=0.5, soft_falloff=False, normalize=False)))
    assert off == pytest.approx(on * 4 * math.pi * 0.25)
    assert _dc(_frame(_point((0, -2, 0), normalize=False))) == pytest.approx(4 * _dc(_frame(_point((0, -2, 0)))))


def _spot_at(off_axis_deg, **kw):
    """A spot 2 m from the head whose axis misses the head by ``off_axis_deg``."""
    a = math.radians(off_axis_deg)
    return _point((0, -2, 0), type="spot", direction=[math.sin(a), math.cos(a), 0], **kw)


def test_spot_cone_and_blend():
    point = _dc(_frame(_point((0, -2, 0))))
    kw = {"spot_size": math.radians(60), "spot_blend": 0.5}
    assert _dc(_frame(_spot_at(5, **kw))) == pytest.approx(point)  # inside: no extra cosine
    assert _dc(_frame(_spot_at(35, **kw))) == 0.0
    cos_half = math.cos(math.radians(30))
    x = (math.cos(math.radians(25)) - cos_half) / ((1 - cos_half) * 0.5)
    assert _dc(_frame(_spot_at(25, **kw))) == pytest.approx(point * x * x * (3 - 2 * x))
    hard = {"spot_size": math.radians(60), "spot_blend": 0.0}
    assert _dc(_frame(_spot_at(29, **hard))) == pytest.approx(point) and _dc(_frame(_spot_at(31, **hard))) == 0.0


def test_spot_cone_is_squashed_by_object_scale():
    light = _spot_at(25, spot_size=math.radians(60), spot_blend=0.0)
    m = np.asarray(light.matrix)
    m[:3, 2] *= 3.0  # stretch along the axis: the cone narrows (Cycles uses the inverse transform)
    squashed = S.Light(**{**light.__dict__, "matrix": m.tolist()})
    assert _dc(_frame(light)) > 0 and _dc(_frame(squashed)) == 0.0


def _area_facing(offset, **kw):
    d = -np.asarray(offset, float)
    return S.Light.from_dict({"type": "area", "power": kw.pop("power", 100.0), "position": list(HEAD + offset),
                              "direction": list(d), **kw})


def test_small_area_light_far_field():
    d = 3.0
    small = {"size": 0.01}
    flux = _dc(_frame(_area_facing((0, -d, 0), **small)))
    assert flux == pytest.approx(100.0 / (math.pi * d * d), rel=1e-4)  # on-axis E = P / (pi d^2)
    light = _area_facing((0, -d, 0), **small)
    tilted = np.asarray(light.matrix)
    rot = np.array([[1, 0, 0], [0, 0.5, -math.sqrt(0.75)], [0, math.sqrt(0.75), 0.5]])  # 60 deg about X
    tilted[:3, :3] = rot @ tilted[:3, :3]
    assert _dc(_frame(S.Light(**{**light.__dict__, "matrix": tilted.tolist()}))) == pytest.approx(flux / 2, rel=1e-4)
    behind = S.Light(**{**light.__dict__, "matrix": (np.asarray(light.matrix) @ np.diag([1, -1, -1, 1])).tolist()})
    assert _dc(_frame(behind)) == 0.0  # one-sided
    off = _dc(_frame(_area_facing((0, -d, 0), normalize=False, size=0.2, shape="rectangle", size_y=0.1)))
    on = _dc(_frame(_area_facing((0, -d, 0), size=0.2, shape="rectangle", size_y=0.1)))
    assert off == pytest.approx(on * 0.02)


def test_area_shapes_near_field_disk_exact():
    """A facing disk of radius R at distance d: E = pi L R^2 / (d^2 + R^2) (flux = 2 pi L (1 - cos a))."""
    d, size, p = 0.5, 1.0, 100.0
    light = _area_facing((0, -d, 0), shape="disk", size=size, power=p)
    radiance = p / (math.pi * math.pi * 0.25 * size * size)
    c = S.lighting_at(_frame(light), HEAD)
    e_normal = -(c[1, 0] * sh.LAMBERT[1] * sh.SH_CONSTANTS[1]).item() * 2 * math.pi
    assert e_normal == pytest.approx(math.pi * radiance * 0.25 / (d * d + 0.25), rel=2e-3)
    ellipse = _area_facing((0, -3, 0), shape="ellipse", size=0.02, size_y=0.01, power=p)
    assert _dc(_frame(ellipse)) == pytest.approx(p / (math.pi * 9), rel=1e-3)


def test_area_spread_boosts_the_axis():
    h = math.radians(30)
    narrow = _dc(_frame(_area_facing((0, -3, 0), size=0.001, spread=2 * h)))  # tiny: tan(a) ~ 0 on it
    wide = _dc(_frame(_area_facing((0, -3, 0), size=0.001)))
    assert narrow == pytest.approx(wide * math.tan(h) / (math.tan(h) - h), rel=1e-3)


# ------------------------------------------------------------------------------------------
# world
# ------------------------------------------------------------------------------------------


def test_worlds(tmp_path):
    const = S.lighting_at(_frame(world=S.World(kind="constant", color=(0.2, 0.5, 1.0), strength=2.0)), HEAD)
    torch.testing.assert_close(const, sh.ambient(2.0, [0.2, 0.5, 1.0], dtype=F64))
    np.save(tmp_path / "flat.npy", np.full((16, 32, 3), 0.7))
    flat = S.lighting_at(_frame(world=S.World(kind="image", path=str(tmp_path / "flat.npy"), strength=2.0)), HEAD)
    torch.testing.assert_close(flat, sh.ambient(1.4, [1.0, 1.0, 1.0], dtype=F64))
    # a map lit from +X, rotated 90 deg about Z, is lit from +Y
    env = np.zeros((16, 32, 3))
    env[6:10, 14:18] = 5.0
    np.save(tmp_path / "x.npy", env)
    rz = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    c = S.lighting_at(_frame(world=S.World(kind="image", path=str(tmp_path / "x.npy"), rotation=rz)), HEAD)
    assert c[1, 0] > 0 and abs(c[3, 0]) < 1e-9 * c[1, 0]
    shw = S.World(kind="sh", sh=sh.directional([1.0, 0, 0], 1.0, [1, 1, 1], dtype=F64).tolist(), strength=3.0)
    torch.testing.assert_close(S.lighting_at(_frame(world=shw), HEAD),
                               3.0 * sh.directional([1.0, 0, 0], 1.0, [1, 1, 1], dtype=F64))


def test_envmap_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        S.load_envmap(tmp_path / "missing.npy")
    np.save(tmp_path / "bad.npy", np.zeros((4, 4, 2)))
    with pytest.raises(ValueError, match=r"expected an \[H, W, 3\] map"):
        S.load_envmap(tmp_path / "bad.npy")
    np.save(tmp_path / "neg.npy", -np.ones((4, 8, 3)))
    with pytest.raises(ValueError, match="negative"):
        S.load_envmap(tmp_path / "neg.npy")


# ------------------------------------------------------------------------------------------
# frames: the crop camera's DPR frame
# ------------------------------------------------------------------------------------------


def test_front_camera_frame_is_the_world_frame():
    sun = S.Light.from_dict({"type": "sun", "power": 1.0, "direction": [-1, 2, -3]})
    c_world = S.lighting_at(_frame(sun), HEAD)
    c = S.scene_to_sh(_frame(sun), _translation(HEAD), _front_camera(HEAD), dtype=F64)
    torch.testing.assert_close(c, c_world)


def test_side_camera_sees_light_from_image_right():
    # camera on +X looking at the head (-X), Z up: image right is world +Y, the viewer is +X
    cam = np.eye(4)
    cam[:3, 0], cam[:3, 1], cam[:3, 2] = (0, 1, 0), (0, 0, -1), (-1, 0, 0)
    cam[:3, 3] = HEAD + (3, 0.5, 0.2)  # off-centre: the crop camera re-aims at the head
    from_y = S.Light.from_dict({"type": "sun", "power": 1.0, "direction": [0, -1, 0]})
    c = S.scene_to_sh(_frame(from_y), _translation(HEAD), cam, dtype=F64)[:, 0]
    assert c[3] > 0.9 * c[:4].abs().max()  # DPR x (image right)
    from_cam = S.Light.from_dict({"type": "sun", "power": 1.0, "direction": [-1, 0, 0]})
    c = S.scene_to_sh(_frame(from_cam), _translation(HEAD), cam, dtype=F64)[:, 0]
    assert c[1] < -0.9 * c[:4].abs().max()  # DPR -y: toward the viewer


def test_rotation_between_cameras_is_an_sh_rotation():
    frame = _frame(_point((1, -1, 0.5), radius=0.2), _area_facing((-1, -1, 0.3), size=0.5),
                   world=S.World(kind="constant", color=(0.1, 0.1, 0.1)))
    cam_a = _front_camera(HEAD)
    cam_b = np.eye(4)
    ang = math.radians(40)
    cam_b[:3, :3] = cam_a[:3, :3] @ np.array([[math.cos(ang), 0, math.sin(ang)], [0, 1, 0],
                                              [-math.sin(ang), 0, math.cos(ang)]])
    cam_b[:3, 3] = HEAD - 3 * cam_b[:3, 2]
    head = _translation(HEAD)
    ca = S.scene_to_sh(frame, head, cam_a, dtype=F64)
    cb = S.scene_to_sh(frame, head, cam_b, dtype=F64)
    r = S.dpr_rotation(HEAD, cam_b) @ S.dpr_rotation(HEAD, cam_a).T
    torch.testing.assert_close(sh.rotate(ca, torch.from_numpy(r)), cb)
    assert ca.dtype == F64 and S.scene_to_sh(frame, head, cam_a).dtype == torch.float32


def test_scene_to_sh_uses_the_frame_camera_and_pivot():
    cam2world = _front_camera(HEAD)
    blender = cam2world.copy()
    blender[:3, 1:3] *= -1  # OpenCV -> Blender camera axes
    camera = S.CameraDesc(matrix_world=blender.tolist(), resolution=(64, 64))
    np.testing.assert_allclose(camera.cam2world(), cam2world, atol=1e-12)
    frame = _frame(_point((0, -1, 0)), camera=camera)
    scene = S.Scene(frames={1: frame})
    head_to_world = _translation(HEAD - (0, 0, 0.2))
    c = S.scene_to_sh(scene, head_to_world, pivot=(0, 0, 0.2))
    torch.testing.assert_close(c, S.scene_to_sh(frame, _translation(HEAD), cam2world))
    with pytest.raises(ValueError, match="has no camera"):
        S.scene_to_sh(_frame(), _translation(HEAD))
    with pytest.raises(ValueError, match="the head is at the light's position"):
        S.scene_to_sh(_frame(_point((0, 0, 0))), _translation(HEAD), cam2world)
    with pytest.raises(ValueError, match=r"head_to_world: expected a finite \[4, 4\]"):
        S.scene_to_sh(frame, np.eye(3))


# ------------------------------------------------------------------------------------------
# camera
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, fit, fx, fy",
    [
        ((1920, 1080), "auto", 50 / 36, 50 / 36 * 1920 / 1080),
        ((1080, 1920), "auto", 50 / 36 * 1920 / 1080, 50 / 36),  # sensor width on the long side
        ((1080, 1920), "horizontal", 50 / 36, 50 / 36 * 1080 / 1920),
        ((1920, 1080), "vertical", 50 / 24 * 1080 / 1920, 50 / 24),
    ],
)
def test_lens_intrinsics(size, fit, fx, fy):
    cam = S.CameraDesc(matrix_world=np.eye(4).tolist(), resolution=size, lens=50.0, sensor_width=36.0,
                       sensor_height=24.0, sensor_fit=fit, shift_x=0.1, shift_y=-0.05)
    k = cam.K()
    assert (k[0, 0], k[1, 1]) == pytest.approx((fx, fy))
    viewfac = size[0] if (fit == "horizontal" or (fit == "auto" and size[0] >= size[1])) else size[1]
    assert k[0, 2] == pytest.approx(0.5 - 0.1 * viewfac / size[0])
    assert k[1, 2] == pytest.approx(0.5 - 0.05 * viewfac / size[1])
