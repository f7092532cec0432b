"""The exported head model: contents, torch-only loading, EG3D alignment, expressions."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from relight_core import camera
from relight_core.track import align
from relight_core.train import raster
from relight_core.train.heads import DEFAULT_PATH, REGION, HeadModel, euler_to_matrix

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model() -> HeadModel:
    return HeadModel.load()


def test_file_is_small_and_complete():
    assert DEFAULT_PATH.is_file()
    assert DEFAULT_PATH.stat().st_size < 4_000_000
    with np.load(DEFAULT_PATH) as z:
        names = set(z.files)
        V = z["vertices"].shape[0]
        assert z["vertices"].shape == (V, 3)
        assert z["faces"].shape[1] == 3 and z["faces"].max() < V
        K = z["identity_basis"].shape[0]
        assert z["identity_basis"].shape == (K, V, 3) and z["identity_basis"].dtype == np.float16
        assert z["expression_deltas"].shape[0] == 52 and z["expression_deltas"].dtype == np.float16
        assert z["expression_deltas"].shape[1] == z["expression_index"].shape[0]
        assert z["landmark_index"].shape == (5, 8) and z["landmark_target"].shape == (5, 3)
        assert z["region"].shape == (V,) and z["masks"].shape[0] == V
        assert z["face_uv"].shape == z["faces"].shape and z["face_uv"].max() < z["uv"].shape[0]
    for key in ("attribute_weights", "attribute_residual", "joint_index", "head_weight", "meta", "expression_names"):
        assert key in names


def test_loads_without_anny_or_warp():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["anny"] = None  # any import of anny or warp now fails
        sys.modules["warp"] = None
        from relight_core.train.heads import HeadModel
        m = HeadModel.load()
        v = m.mesh(m.sample_identity(2))
        assert v.shape == (2, m.num_vertices, 3)
        print("ok")
        """
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout


def test_model_contents(model):
    assert model.num_expressions == 52
    assert "jawOpen" in model.expression_names and "eyeBlinkLeft" in model.expression_names
    regions = set(model.region.unique().tolist())
    for name in ("skin", "eyeball", "tongue", "mouth_cavity", "eye_cavity"):
        assert REGION[name] in regions
    assert model.head_weight.min() >= 0 and model.head_weight.max() <= 1
    # head space: the face looks toward +z, y up; the head fits the tri-plane box
    lm = model.landmark_target
    assert lm[2, 2] > lm[0, 2]  # nose tip in front of the eyes
    assert lm[0, 1] > lm[3, 1]  # eyes above the mouth
    assert lm[0, 0] < 0 < lm[1, 0]  # template order: image-left eye first
    head = model.vertices[model.head_weight > 0.99]
    assert head.abs().max() < 0.5


def _crop_affine(points: torch.Tensor, size: int = 512) -> np.ndarray:
    lab = camera.orbit_camera(0.0, 0.0, dtype=torch.float64)
    c2w, K = camera.split_label(lab)
    px = camera.project_points(points.double(), c2w, camera.normalized_to_pixel(K, size, size)).numpy()
    return align.crop_affine(px, size, size)[0]


def test_neutral_head_fills_the_eg3d_crop(model):
    """Rendered at the frontal camera, every neutral face gives the identity EG3D crop.

    The 5 points are projected into a 512 x 512 image and passed through the crop code of
    ``track.align`` (template fit, resize, window, centre crop): the crop-to-source map must be the
    identity (the template origin is placed a quarter pixel off centre so that the crop code's
    integer truncations land on it exactly).
    """
    ident = np.eye(3)[:2]
    A = _crop_affine(model.landmarks(model.mesh(torch.zeros(1, model.num_components)))[0])
    assert np.allclose(A, ident, atol=1e-6), A
    g = torch.Generator().manual_seed(1)
    v = model.mesh(model.sample_identity(8, g))
    for b in range(8):
        A = _crop_affine(model.landmarks(v[b : b + 1])[0])
        assert np.allclose(A, ident, atol=5e-3), A


def test_rendered_landmarks_lie_on_the_face(model):
    v = model.vertices[None]
    cam = camera.orbit_camera(0.0, 0.0)[None]
    size = 128
    fr = raster.rasterize(v, model.faces, cam, size, size)
    c2w, K = camera.split_label(cam)
    px = camera.project_points(model.landmarks(v)[0], c2w, camera.normalized_to_pixel(K, size, size)).round().long()
    assert fr.mask[0, px[:, 1], px[:, 0]].all()


def test_identities_vary_and_are_deterministic(model):
    a = model.sample_identity(4, torch.Generator().manual_seed(3))
    b = model.sample_identity(4, torch.Generator().manual_seed(3))
    assert torch.equal(a.coeffs, b.coeffs) and torch.equal(a.attributes, b.attributes)
    v = model.mesh(a)
    spread = (v - v.mean(0, keepdim=True)).norm(dim=-1).mean()
    assert spread > 2e-3  # different people
    e1 = model.sample_expression(4, torch.Generator().manual_seed(5))
    e2 = model.sample_expression(4, torch.Generator().manual_seed(5))
    assert torch.equal(e1, e2) and e1.min() >= 0 and e1.max() <= 1


def _expr(model, **weights) -> torch.Tensor:
    e = torch.zeros(1, model.num_expressions)
    for k, w in weights.items():
        e[0, model.expression_column(k)] = w
    return e


def test_expressions_move_mouth_and_eyelids(model):
    ident = model.sample_identity(1, torch.Generator().manual_seed(0), variation=0.0)
    neutral = model.mesh(ident)
    lm = model.landmark_target
    lips = model.masks[:, model.mask_names.index("lips")] > 0.5
    lower_lip = lips & (model.vertices[:, 1] < lm[3, 1] - 0.005)
    opened = model.mesh(ident, _expr(model, jawOpen=1.0))
    assert (opened - neutral)[0, lower_lip, 1].mean() < -0.02  # the lower lip drops
    lids = model.masks[:, model.mask_names.index("eyelids")] > 0.5
    eye_l = model.joints(neutral)[0, model.joint_names.index("l-eye")]
    left_lid = lids & (model.vertices[:, 0] > 0)
    upper_lid = left_lid & (model.vertices[:, 1] > model.vertices[left_lid, 1].median())
    assert upper_lid.sum() > 10
    blink = model.mesh(ident, _expr(model, eyeBlinkLeft=1.0))
    assert (blink - neutral)[0, upper_lid, 1].mean() < -0.003  # the left upper lid comes down
    right_lid = lids & (model.vertices[:, 0] < 0)
    assert (blink - neutral)[0, right_lid].abs().max() < 1e-4  # the right eye stays open
    # expressions never move the alignment (computed on the neutral face)
    assert torch.allclose(model.alignment(model.neutral(ident))[0], torch.ones(1), atol=0.05)


def test_body_rotation_turns_shoulders_not_head(model):
    ident = model.sample_identity(1, torch.Generator().manual_seed(2))
    v0 = model.mesh(ident)
    R = euler_to_matrix(torch.tensor([0.0]), torch.tensor([0.4]), torch.tensor([0.0]))
    v1 = model.mesh(ident, body_rotation=R)
    head = model.head_weight == 1
    body = model.head_weight == 0
    assert head.sum() > 1000 and body.sum() > 1000
    assert (v1 - v0)[0, head].abs().max() < 1e-5
    assert (v1 - v0)[0, body].norm(dim=-1).max() > 0.05


def test_expression_sequence_is_smooth(model):
    e = model.expression_sequence(100, torch.Generator().manual_seed(0), fps=25.0)
    assert e.shape == (100, model.num_expressions)
    assert e.min() >= 0 and e.max() <= 1
    step = (e[1:] - e[:-1]).abs()
    blinks = [model.expression_column("eyeBlinkLeft"), model.expression_column("eyeBlinkRight")]
    others = [k for k in range(model.num_expressions) if k not in blinks]
    assert step[:, others].max() < 0.25  # talking (~4 syllables/s), smiles, brows, gaze
    assert step[:, others].mean() < 0.01
    assert step[:, blinks].max() < 0.7  # a blink takes several frames
    jaw = e[:, model.expression_column("jawOpen")]
    assert jaw.max() > 0.05  # talking
    blink = e[:, model.expression_column("eyeBlinkLeft")]
    assert blink.max() > 0.9  # at least one blink in 4 s


def test_missing_file_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="export_head_model"):
        HeadModel.load(tmp_path / "nope.npz")
