"""Head pose, the EG3D crop camera label and the canonical face (relight_core.track.pose, .canonical)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("cv2")
from relight_core import camera  # noqa: E402
from relight_core.track import align  # noqa: E402
from relight_core.track.canonical import load_canonical_face  # noqa: E402
from relight_core.track.five_points import apply_offsets, raw_five_points_3d  # noqa: E402
from relight_core.track.pose import (  # noqa: E402
    HeadPose,
    crop_camera_label,
    head_angles,
    orbit_parameters,
    plate_intrinsics,
    project_head_points,
    solve_pose,
)
from relight_core.track.smoothing import rotation_exp  # noqa: E402

FACE = load_canonical_face()
FRONTAL = np.diag([1.0, -1.0, -1.0])  # head -> camera rotation of a face looking into the camera


def rot_x(a):
    return rotation_exp([a, 0.0, 0.0])


def rot_y(a):
    return rotation_exp([0.0, a, 0.0])


def synth_landmarks(R_head, distance=2.5, offset=(0.0, 0.0), K=None, noise=0.0, seed=0):
    """Pixel landmarks of the canonical face turned by ``R_head`` (in head space) in front of a
    plate camera; ``offset`` moves the head sideways/up (head units, camera frame)."""
    K = plate_intrinsics(1920, 1080, focal_px=1600.0) if K is None else K
    pose = HeadPose(FRONTAL @ R_head, np.array([offset[0], offset[1], distance]))
    lm = project_head_points(FACE.vertices, pose, K)
    lm = lm + np.random.default_rng(seed).normal(0.0, noise, lm.shape)
    return np.column_stack((lm, np.zeros(len(lm)))), K, pose


def test_canonical_face_frame():
    v = FACE.vertices
    assert v.shape == (478, 3)
    # exactly mirror-symmetric about x = 0
    np.testing.assert_allclose(v[FACE.mirror] * [-1, 1, 1], v, atol=1e-6)
    p5 = FACE.five_points_3d
    # EG3D world: +y up, face toward +z, subject's right eye at -x (image left for the frontal camera)
    assert p5[0, 0] < 0 < p5[1, 0]
    assert p5[0, 1] > p5[2, 1] > p5[3, 1]
    assert p5[2, 2] > p5[0, 2] and p5[2, 2] == pytest.approx(v[:468, 2].max(), abs=0.01)
    # inside the tri-plane box, face in front of the pivot
    assert np.abs(v).max() < 0.5 and v[:, 2].min() > 0
    assert 0.14 < FACE.interpupillary < 0.17
    assert len(FACE.rigid_indices) > 100
    assert (v[FACE.rigid_indices, 1] > v[61, 1]).all()  # no mouth or jaw points


def test_canonical_face_is_a_fixed_point_of_the_crop():
    """Seen by the frontal EG3D camera, its MTCNN-equivalent 5 points give back the same crop."""
    c2w, K = camera.split_label(camera.orbit_camera(0.0, 0.0, dtype=torch.float64))
    Kpx = camera.normalized_to_pixel(K, 512, 512)
    px = camera.project_points(torch.as_tensor(raw_five_points_3d(FACE.vertices)), c2w, Kpx).numpy()
    p5 = apply_offsets(px, FACE.five_point_offsets)
    t, s = align.solve_similarity(p5, 512)
    assert s == pytest.approx(align.RESCALE_CROP * 512 / align.CENTER_CROP, rel=1e-3)
    assert t[1] == pytest.approx(255.5, abs=0.5)
    assert abs(t[0] - 255.5) < 5  # the MTCNN offsets' common x shift (3.7 px), see canonical.py


def test_metric_scale():
    m = FACE.metres_per_unit()
    assert m == pytest.approx(0.063 / FACE.interpupillary)
    assert 0.35 < m < 0.45
    assert FACE.metres_per_unit(0.070) == pytest.approx(m * 70 / 63)
    with pytest.raises(ValueError):
        FACE.metres_per_unit(63)  # millimetres by mistake
    # a head 1.2 m from the camera is fitted at 1.2 m
    lm, K, _ = synth_landmarks(np.eye(3), distance=1.2 / m)
    pose = solve_pose(lm, K)
    assert pose.translation[2] * m == pytest.approx(1.2, rel=1e-3)


def test_frontal_face_gives_the_frontal_label():
    lm, K, _ = synth_landmarks(np.eye(3))
    pose = solve_pose(lm, K)
    assert pose.error_px < 1e-3
    yaw, pitch, roll = head_angles(pose)
    assert max(abs(yaw), abs(pitch), abs(roll)) < 1e-3
    label = crop_camera_label(pose)
    assert label.dtype == np.float32 and label.shape == (25,)
    np.testing.assert_allclose(label, camera.orbit_camera(0.0, 0.0).numpy(), atol=1e-5)


@pytest.mark.parametrize("yaw", [-30.0, -15.0, 0.0, 15.0, 30.0])
@pytest.mark.parametrize("pitch", [-20.0, 0.0, 20.0])
def test_pose_recovery(yaw, pitch):
    """Known head rotations in a 1920x1080 plate, 0.5 px landmark noise."""
    # The camera seen from the head at (yaw, pitch): direction (cos p sin y, -sin p, cos p cos y)
    # = R_y(y) R_x(p) e_z, so the head rotation is R_head = (R_y(y) R_x(p))^T. For example a head
    # turning to its own left (nose toward +x, the subject's left) by a is R_y(+a): yaw = -a.
    R_head = rot_x(math.radians(-pitch)) @ rot_y(math.radians(-yaw))
    seed = int(1000 + yaw * 7 + pitch)
    # centred head: the angles are the nominal ones
    lm, K, _ = synth_landmarks(R_head, distance=2.5, noise=0.5, seed=seed)
    got = np.array(head_angles(solve_pose(lm, K)))
    np.testing.assert_allclose(got, [yaw, pitch, 0.0], atol=1.0)
    # off-centre head: the angles also include the viewing direction toward the head
    lm, K, truth = synth_landmarks(R_head, distance=2.5, offset=(0.4, -0.25), noise=0.5, seed=seed)
    got = np.array(head_angles(solve_pose(lm, K)))
    want = np.array(head_angles(truth))
    np.testing.assert_allclose(got, want, atol=1.0)
    assert want[0] - yaw == pytest.approx(-math.degrees(math.atan(0.4 / 2.5)), abs=2.5)  # seen from the right


@pytest.mark.parametrize("turn", [-30.0, 30.0])
def test_signs_of_a_turning_head_centred(turn):
    """Centred head (camera looks at the pivot): the angles equal the nominal rotation."""
    # turn > 0: the head turns to its own left -> camera seen on the head's right -> yaw = -turn
    lm, K, _ = synth_landmarks(rot_y(math.radians(turn)))
    yaw, pitch, roll = head_angles(solve_pose(lm, K))
    assert yaw == pytest.approx(-turn, abs=0.01) and abs(pitch) < 0.01 and abs(roll) < 0.01
    # chin up by 20 deg -> pitch +20
    lm, K, _ = synth_landmarks(rot_x(math.radians(-20.0)))
    yaw, pitch, roll = head_angles(solve_pose(lm, K))
    assert pitch == pytest.approx(20.0, abs=0.01) and abs(yaw) < 0.01


@pytest.mark.parametrize("pitch_o,yaw_o,roll_o", [(0.3, -0.5, 0.0), (-0.25, 0.6, 0.0), (0.0, 0.0, 0.2), (0.1, 0.3, 0.0)])
def test_label_roundtrip_through_orbit_camera(pitch_o, yaw_o, roll_o):
    """Render the canonical face from camera.orbit_camera(pitch, yaw): the tracker's label is that camera."""
    label = camera.orbit_camera(pitch_o, yaw_o, roll=roll_o, dtype=torch.float64)
    c2w, Kn = camera.split_label(label)
    Kpx = camera.normalized_to_pixel(Kn, 512, 512).numpy()
    w2c = torch.linalg.inv(c2w).numpy()
    truth = HeadPose(w2c[:3, :3], w2c[:3, 3])
    lm = project_head_points(FACE.vertices, truth, Kpx)
    pose = solve_pose(np.column_stack((lm, np.zeros(len(lm)))), Kpx)
    ours = crop_camera_label(pose)
    np.testing.assert_allclose(ours, label.numpy(), atol=2e-4)
    if roll_o == 0.0:
        p, y = orbit_parameters(ours)
        assert p == pytest.approx(pitch_o, abs=2e-4) and y == pytest.approx(yaw_o, abs=2e-4)
    yaw, pitch, roll = head_angles(ours)
    assert yaw == pytest.approx(math.degrees(yaw_o), abs=0.02)
    if roll_o:
        assert roll == pytest.approx(math.degrees(roll_o), abs=0.02)  # orbit_camera's roll sign


def test_plate_intrinsics():
    K = plate_intrinsics(1920, 1080)
    assert K[0, 0] == pytest.approx(50 / 36 * 1920)
    assert K[0, 2] == 959.5 and K[1, 2] == 539.5
    K = plate_intrinsics(640, 360, fov_deg=90)
    assert K[0, 0] == pytest.approx(320)
    with pytest.raises(ValueError):
        plate_intrinsics(640, 360, fov_deg=60, focal_px=500)
    with pytest.raises(ValueError):
        solve_pose(np.zeros((10, 2)), K)


def _portrait_pose(landmarker, path: Path, mirror: bool):
    from PIL import Image

    img = np.asarray(Image.open(path).convert("RGB"))
    if mirror:
        img = np.ascontiguousarray(img[:, ::-1])
    faces = [f for f in landmarker(img) if f.landmarks is not None]
    if not faces:
        return None
    K = plate_intrinsics(img.shape[1], img.shape[0])
    return head_angles(solve_pose(faces[0].landmarks, K))


def test_real_portraits_are_frontal_and_mirror_flips_yaw(shared_data):
    pytest.importorskip("mediapipe")
    from relight_core.track.landmarks import FaceLandmarker

    files = sorted((shared_data / "portraits").glob("*.jpg"))[::17][:40]
    angles, mirrored = [], []
    with FaceLandmarker(1, static=True) as lmk:
        for f in files:
            a = _portrait_pose(lmk, f, False)
            b = _portrait_pose(lmk, f, True)
            if a is not None and b is not None:
                angles.append(a)
                mirrored.append(b)
    a, b = np.array(angles), np.array(mirrored)
    print(f"{len(a)} portraits: yaw {a[:, 0].mean():.1f} +- {a[:, 0].std():.1f}, pitch {a[:, 1].mean():.1f} "
          f"+- {a[:, 1].std():.1f}, roll {a[:, 2].mean():.1f} +- {a[:, 2].std():.1f} deg; mirrored: "
          f"|yaw + yaw'| max {np.abs(a[:, 0] + b[:, 0]).max():.2f}, |pitch - pitch'| max {np.abs(a[:, 1] - b[:, 1]).max():.2f}")
    assert len(a) >= 38
    frontal = (np.abs(a[:, 0]) < 15) & (np.abs(a[:, 1]) < 15)
    assert frontal.mean() >= 0.95
    assert abs(a[:, 0].mean()) < 3 and abs(a[:, 1].mean()) < 3
    # a mirrored photograph turns the other way by the same amount, at the same pitch
    assert np.median(np.abs(a[:, 0] + b[:, 0])) < 1.5
    assert np.median(np.abs(a[:, 1] - b[:, 1])) < 1.5
    assert np.median(np.abs(a[:, 2] + b[:, 2])) < 1.5
