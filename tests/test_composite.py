"""relight_core.composite: warps, shading ratio, matte, bit-identical application, geometry passes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from relight_core import composite as comp
from relight_core.io import Frame
from relight_core.io import colour as colour_io

ASTRONAUT_5 = np.array([[205.44, 102.70], [248.21, 104.81], [226.44, 129.41], [202.12, 140.73], [246.60, 143.08]])


def _frame(pixels: np.ndarray, space: str = "sRGB") -> Frame:
    rgb, alpha = colour_io.decode(pixels, space)
    return Frame(1, rgb, alpha, pixels, Path("x.png"), space)


# -- warps ---------------------------------------------------------------------------------


def test_crop_warp_round_trip_matches_the_plate():
    """A crop warped back through the exact affine lands on the plate's own pixels."""
    import cv2
    from skimage import data

    from relight_core.track.align import align_crop, crop_affine

    img = cv2.GaussianBlur(data.astronaut().astype(np.float32) / 255, (0, 0), 3)  # smooth: resampling error small
    size = 128
    crop = align_crop(img, ASTRONAUT_5, output_size=size)
    _, s2c = crop_affine(ASTRONAUT_5, img.shape[1], img.shape[0], output_size=size)
    mapping = comp.crop_mapping_from_affine(s2c, size)
    roi = comp.footprint_roi(mapping, img.shape[1], img.shape[0])
    assert not roi.empty and roi.shape[0] < img.shape[0]
    grid = comp.crop_grid(s2c, size, roi)
    back = comp.warp(torch.from_numpy(crop).permute(2, 0, 1), grid).numpy().transpose(1, 2, 0)
    inside = comp.inside_crop(grid, margin=0.05).numpy()
    err = np.abs(back - img[roi.slices])[inside]
    assert inside.sum() > 1000
    assert err.mean() < 0.01, err.mean()
    # beyond half a crop pixel outside the crop the warp is 0
    assert np.all(back[~comp.inside_crop(grid, margin=-1.0 / size).numpy()] == 0)


# -- shading ratio -------------------------------------------------------------------------


def test_shading_ratio_values_clamp_and_empty_render():
    target = torch.tensor([[[1.0, 0.0, 8.0, 0.5]]])  # [1, 1, 4] grey
    source = torch.tensor([[[0.5, 0.0, 0.01, 0.5]]]).expand(3, 1, 4)
    r = comp.shading_ratio(target, source, eps=0.0 + 1e-9, ratio_range=(0.1, 4.0))
    assert r.shape == (3, 1, 4)
    assert r[0, 0, 0] == pytest.approx(2.0, rel=1e-5)
    assert r[0, 0, 1] == pytest.approx(1.0)  # empty render: both 0 -> 1
    assert r[0, 0, 2] == pytest.approx(4.0)  # clamped
    assert r[0, 0, 3] == pytest.approx(1.0)
    coloured = comp.shading_ratio(torch.stack([torch.ones(2, 2), 2 * torch.ones(2, 2), torch.ones(2, 2)]),
                                  torch.ones(1, 2, 2), eps=0.02)
    assert coloured[1].mean() > coloured[0].mean()
    with pytest.raises(ValueError, match="ratio_range"):
        comp.shading_ratio(target, source, ratio_range=(2.0, 4.0))


# -- matte ---------------------------------------------------------------------------------


def test_matte_is_zero_outside_footprint_and_exactly_zero_below_floor():
    h, w = 80, 100
    roi = comp.Roi(10, 10, 10 + w, 10 + h)
    pts = np.array([[40, 30], [80, 30], [80, 70], [40, 70], [60, 50]], dtype=np.float64)
    hull = comp.face_hull_mask(pts, roi)
    assert hull[40 - 10 + 5, 60 - 10] == 1 and hull[0, 0] == 0
    assert abs(hull.sum() - 40 * 40) < 200
    footprint = np.zeros((h, w), np.float32)
    footprint[5:75, 5:95] = 1
    person = np.zeros((h, w), np.float32)
    person[20:80, 30:70] = 1
    matte = comp.build_matte(hull, person, np.ones((h, w), np.float32), footprint, sigma=3.0)
    assert matte.dtype == np.float32 and matte.max() <= 1 and matte.min() >= 0
    assert np.all(matte[footprint == 0] == 0)
    assert np.all((matte == 0) | (matte >= comp.MATTE_FLOOR))
    assert matte[30, 50] > 0.9  # inside the hull
    # person without opacity adds nothing
    m2 = comp.build_matte(hull, person, np.zeros((h, w), np.float32), footprint, sigma=3.0)
    assert m2[75 - 10, 50] < matte[75 - 10, 50] or matte[75 - 10, 50] == 0


def test_person_segmenter_finds_the_astronaut():
    from skimage import data

    img = data.astronaut()
    with comp.PersonSegmenter() as seg:
        mask = seg(img)
    assert mask.shape == img.shape[:2] and mask.dtype == np.float32
    assert 0 <= mask.min() and mask.max() <= 1
    assert mask[150:250, 180:280].mean() > 0.5  # the face


# -- applying the ratio: bit-identical outside the matte -----------------------------------


@pytest.mark.parametrize("dtype,space,channels", [
    (np.uint8, "sRGB", 3), (np.uint16, "sRGB", 4), (np.float16, "linear", 3), (np.float32, "linear", 4),
    (np.uint8, "sRGB", 1), (np.uint8, "Rec.709", 3),
])
def test_apply_ratio_bit_identical_outside_matte(dtype, space, channels):
    rng = np.random.default_rng(0)
    h, w = 40, 50
    if np.dtype(dtype).kind == "f":
        pixels = rng.uniform(0, 2, (h, w, channels)).astype(dtype)
    else:
        pixels = rng.integers(0, np.iinfo(dtype).max, (h, w, channels)).astype(dtype)
    if channels == 1:
        pixels = pixels[:, :, 0]
    frame = _frame(pixels, space)
    roi = comp.Roi(10, 5, 40, 35)
    matte = np.zeros(roi.shape, np.float32)
    matte[5:25, 5:25] = 1.0
    matte[25:27, 5:25] = 0.3
    ratio = np.full(roi.shape + (3,), 1.7, np.float32)
    out = comp.apply_ratio(frame, ratio, matte, roi)
    src = comp.source_rgb_layout(frame)
    assert out.dtype == src.dtype and out.shape == src.shape
    changed = np.zeros((h, w), bool)
    changed[roi.slices] = matte > 0
    assert np.array_equal(out[~changed], src[~changed])  # bit-identical outside the matte
    if src.shape[2] == 4:
        assert np.array_equal(out[..., 3], src[..., 3])  # alpha carried through
    inner = np.zeros((h, w), bool)
    inner[roi.y0 + 5:roi.y0 + 25, roi.x0 + 5:roi.x0 + 25] = True
    got, _ = colour_io.decode(out, space)
    expect = frame.rgb[inner] * 1.7
    if np.dtype(dtype).kind != "f":
        expect = np.minimum(expect, 1.0)  # integer formats clip at white
    assert np.allclose(got[inner], expect, rtol=0.02, atol=2e-3 if np.dtype(dtype).kind == "f" else 0.02)


def test_apply_ratio_display_space_multiplies_encoded_values():
    pixels = np.full((4, 4, 3), 100, np.uint8)
    frame = _frame(pixels)
    roi = comp.Roi(0, 0, 4, 4)
    out = comp.apply_ratio(frame, np.full((4, 4, 3), 1.5, np.float32), np.ones((4, 4), np.float32), roi,
                           space="display")
    assert np.all(out == 150)
    with pytest.raises(ValueError, match="space"):
        comp.apply_ratio(frame, np.ones((4, 4, 3), np.float32), np.ones((4, 4), np.float32), roi, space="log")


def test_render_over_transparent():
    roi = comp.Roi(2, 2, 6, 6)
    relit = np.full((4, 4, 3), 0.5, np.float32)
    alpha = np.full((4, 4), 0.5, np.float32)
    png = comp.render_over_transparent(relit, alpha, roi, (8, 8), "sRGB", np.uint8)
    assert png.shape == (8, 8, 4) and png[0, 0, 3] == 0 and png[3, 3, 3] == 128
    exr = comp.render_over_transparent(relit, alpha, roi, (8, 8), "linear", np.float16)
    assert exr[3, 3, 0] == np.float16(0.25)  # premultiplied
    empty = comp.render_over_transparent(None, None, None, (5, 3), "sRGB", np.uint8)
    assert empty.shape == (3, 5, 4) and not empty.any()


# -- geometry ------------------------------------------------------------------------------


def _sphere_depth(n: int, K: np.ndarray, centre_z: float, radius: float):
    c = (np.arange(n) + 0.5) / n
    u, v = np.meshgrid(c, c, indexing="xy")
    d = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    # ray-sphere intersection, sphere at (0, 0, centre_z)
    b = d[..., 2] * centre_z
    disc = b * b - (centre_z**2 - radius**2)
    hit = disc > 0
    t = np.where(hit, b - np.sqrt(np.maximum(disc, 0)), 3.3)
    return t, d, hit


def test_normals_from_depth_of_a_sphere():
    from relight_core.camera import FOCAL_EG3D

    K = np.array([[FOCAL_EG3D, 0, 0.5], [0, FOCAL_EG3D, 0.5], [0, 0, 1.0]])
    n = 64
    depth, dirs, hit = _sphere_depth(n, K, 2.7, 0.25)
    normals = comp.normals_from_depth(depth, K)
    pts = dirs * depth[..., None]
    truth = (pts - [0, 0, 2.7]) / 0.25
    import cv2

    interior = cv2.erode(hit.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    cos = (normals[interior] * truth[interior]).sum(-1)
    assert interior.sum() > 100
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).mean() < 3.0
    assert (normals[interior][:, 2] < 0).all()  # facing the camera (OpenCV: -z)


def test_camera_depth_of_a_plane():
    from relight_core.camera import FOCAL_EG3D

    K = np.array([[FOCAL_EG3D, 0, 0.5], [0, FOCAL_EG3D, 0.5], [0, 0, 1.0]])
    n = 16
    c = (np.arange(n) + 0.5) / n
    u, v = np.meshgrid(c, c, indexing="xy")
    d = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    depth = 2.7 / d[..., 2]  # the plane z = 2.7 in the render camera
    c2w = np.eye(4)
    z = comp.camera_depth(depth, c2w, K, np.eye(3), np.array([0, 0, 1.0]), 0.5)
    assert np.allclose(z, (2.7 + 1.0) * 0.5, atol=1e-5)


# -- other views ---------------------------------------------------------------------------


def _frontal_pose(distance: float = 8.0):
    R = np.diag([1.0, -1.0, -1.0])  # the face looks into the camera
    t = np.array([0.3, -0.2, distance])
    K = np.array([[500.0, 0, 319.5], [0, 500.0, 179.5], [0, 0, 1]])
    return R, t, K


def test_orbit_view_keeps_the_pivot_in_place():
    R, t, K = _frontal_pose()
    same = comp.orbit_view(R, t, K, (640, 360), 0.0, 0.0, 1.0)
    assert np.allclose(same.rotation, R) and np.allclose(same.translation, t)
    view = comp.orbit_view(R, t, K, (640, 360), 30.0, 10.0, 1.0)
    assert np.allclose(view.translation, t)  # pivot at the same place in the image
    assert np.allclose(np.linalg.norm(view.centre), np.linalg.norm(t))
    # the camera moved to its right: in head space the subject's left is +x, and image-right of a
    # frontal camera is head -x ... check with the head angles instead
    from relight_core.track.pose import head_angles, HeadPose

    yaw0 = head_angles(HeadPose(R, t))[0]
    yaw1 = head_angles(HeadPose(view.rotation, view.translation))[0]
    assert abs(abs(yaw1 - yaw0) - 30.0) < 3.0
    far = comp.orbit_view(R, t, K, (640, 360), 0.0, 0.0, 2.0)
    assert np.allclose(far.translation, 2 * t)


def test_view_mapping_puts_the_pivot_at_the_crop_centre():
    R, t, K = _frontal_pose()
    view = comp.orbit_view(R, t, K, (640, 360), 25.0, -5.0)
    label, c2w, dist = comp.crop_camera_for(view)
    assert label.shape == (25,) and dist == pytest.approx(np.linalg.norm(t))
    assert np.linalg.norm(c2w[:3, 3]) == pytest.approx(2.7)
    m = comp.view_to_crop_mapping(view, c2w, dist)
    pivot_px = view.K @ view.translation
    uvw = m @ (pivot_px / pivot_px[2])
    assert np.allclose(uvw[:2] / uvw[2], [0.5, 0.5], atol=1e-9)


def test_check_view_reasons():
    R, t, K = _frontal_pose()
    assert isinstance(comp.check_view(comp.View(R, t, K, (640, 360))), comp.View)
    inside = comp.View(R, np.array([0, 0, 0.2]), K, (640, 360))
    assert "inside the head" in comp.check_view(inside)
    behind = comp.View(R, np.array([0, 0, -5.0]), K, (640, 360))
    assert "cannot see the head" in comp.check_view(behind)
