"""Synthetic held-out heads: relit colour, albedo and geometry against ground truth.

Held-out rule. Training draws step ``k`` on rank ``r`` from a generator seeded with
``hash((seed, k, r)) % 2**63`` (:class:`relight_core.train.data.SyntheticSource`): Python's hash of
a tuple of ints, a 63-bit pseudo-random number. Evaluation head ``i`` is drawn from a generator
seeded with ``HELD_OUT_SEED + i``, a range of 2**20 seeds starting at 2**62 + 12345. A training seed falls
into it with probability 2**-43; :func:`training_seed_collides` checks any span of config seeds,
steps and ranks (tests/eval/test_quality.py checks seeds 0-2, steps below 20 000, ranks below 8). Heads are sampled by
:meth:`SyntheticHeads.sample` with batch size 1: an input view (the EG3D input-camera
distribution) under an input light, and the same person under a *new* target light seen from the
input camera and from a novel camera.

Per head and method the suite measures, in display sRGB against the ground-truth render masked
to the subject (the network's own target: the volume learns the head alone):
PSNR and SSIM within the subject mask and over the whole crop, at the input and the novel view;
the albedo L1 (linear, within the mask, at the neural resolution); the normal error (degrees)
between the network's normals and the truth. The network's normals are derived from its rendered
depth (back-projected, finite differences: :func:`relight_core.composite.normals_from_depth`),
not from the density gradient, and compared inside the subject mask eroded by one pixel at the
neural resolution.

The classical baseline (:mod:`.classical`) tracks the input image with MediaPipe, estimates the
input light and relights by shading ratios; it cannot render a novel view, and when tracking or
the estimate fails it returns the input unchanged (a pipeline would pass the frame through).
The input-light estimator's error on the same renders is the lighting error of its estimate
against the true input light (:func:`.metrics.lighting_error`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ...camera import FOCAL_EG3D
from . import metrics as M
from .classical import mesh_relight
from .common import crop_tensor, display, head_light, label_cam2world, pixel_intrinsics, render, to_uint8

HELD_OUT_SEED = 2**62 + 12345
HELD_OUT_RANGE = 2**20


def training_seed_collides(config_seeds=range(10), steps: int = 10**6, ranks: int = 64, check_every: int = 1) -> bool:
    """Whether any training generator seed (``hash((seed, step, rank)) % 2**63``) falls into the
    held-out range (``check_every`` > 1 samples the steps)."""
    lo, hi = HELD_OUT_SEED, HELD_OUT_SEED + HELD_OUT_RANGE
    for seed in config_seeds:
        for step in range(0, steps, check_every):
            for rank in range(ranks):
                if lo <= hash((seed, step, rank)) % 2**63 < hi:
                    return True
    return False


def _area(x: torch.Tensor, size: int) -> torch.Tensor:
    return x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="area")


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).cpu().double().numpy()


def _erode(mask: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


class SyntheticSuite:
    """Runs the held-out heads through every method (:meth:`run_head`) and keeps examples."""

    def __init__(self, models: dict, device, tracker_factory):
        from ...train.config import TrainConfig
        from ...train.synthetic import SyntheticHeads

        first = next(iter(models.values()))
        self.models = models
        self.device = torch.device(device)
        self.size = first.config.image_size
        self.out = first.config.output_resolution
        self.neural = first.config.neural_resolution
        self.heads = SyntheticHeads(self.size, self.device, coloured=TrainConfig().coloured_lights)
        self.tracker_factory = tracker_factory

    def sample(self, index: int) -> dict:
        g = torch.Generator(device=self.device).manual_seed(HELD_OUT_SEED + index)
        with torch.no_grad():
            return self.heads.sample(1, g)

    def _truth(self, s: dict, prefix: str) -> dict:
        mask_out = _area(s[prefix + "mask"], self.out)
        mask_n = _area(s[prefix + "mask"], self.neural)
        rgb = _area(s[prefix + "target_rgb"], self.out) * mask_out
        normal = _area(s[prefix + "normal"], self.neural)
        return {"display": display(_hwc(rgb)), "mask": _hwc(mask_out)[..., 0] > 0.5, "mask_soft": _hwc(mask_out)[..., 0],
                "albedo": _hwc(_area(s[prefix + "albedo"], self.neural)), "mask_n": _hwc(mask_n)[..., 0] > 0.99,
                "normal": _hwc(normal)}

    def _scores(self, prediction: np.ndarray, truth: dict, matte: bool = True) -> dict:
        """Scores in the subject mask and over the crop. Methods without a matte of their own
        (``matte=False``: the classical baseline, the unchanged input) are given the true mask for
        the whole-crop score, as a compositor would give them a matte."""
        whole = prediction if matte else prediction * truth["mask_soft"][..., None]
        return {"psnr_mask": M.psnr(prediction, truth["display"], truth["mask"]),
                "ssim_mask": M.ssim(prediction, truth["display"], truth["mask"]),
                "psnr_crop": M.psnr(whole, truth["display"]),
                "ssim_crop": M.ssim(whole, truth["display"])}

    def _geometry(self, out: dict, truth: dict, label) -> dict:
        from ...composite import normals_from_depth

        inside = _erode(truth["mask_n"])
        if not inside.any():
            return {"albedo_l1": math.nan, "normal_deg": math.nan}
        albedo_l1 = float(np.abs(out["albedo"] - truth["albedo"])[inside].mean())
        normals_cv = normals_from_depth(out["depth"], out["K"])  # render camera, OpenCV axes
        world_to_camera = label_cam2world(label)[:3, :3].T
        truth_cv = truth["normal"] @ world_to_camera.T
        return {"albedo_l1": albedo_l1, "normal_deg": float(M.angular_error_deg(normals_cv, truth_cv)[inside].mean())}

    def run_head(self, index: int) -> tuple[dict, dict]:
        """(metrics per method and view, images for the contact sheet) of held-out head ``index``."""
        s = self.sample(index)
        label = s["camera"][0].cpu().numpy()
        views = {"input_view": (label, self._truth(s, "")),
                 "novel_view": (s["mv_camera"][0].cpu().numpy(), self._truth(s, "mv_"))}
        sh_target = s["target_sh"][0].cpu().double().numpy()  # input camera's DPR frame
        sh_head = head_light(sh_target, label_cam2world(label))
        crop = to_uint8(((s["image"][0] + 1) / 2).permute(1, 2, 0).cpu().numpy())
        row: dict = {"seed": HELD_OUT_SEED + index}
        images = {"input": crop, "truth": to_uint8(views["input_view"][1]["display"]),
                  "truth_novel": to_uint8(views["novel_view"][1]["display"])}
        for name, model in self.models.items():
            planes = model.encode(crop_tensor(crop, self.device))
            row[name] = {}
            for view, (cam, truth) in views.items():
                out = render(model, planes, cam, sh_head)
                row[name][view] = {**self._scores(out["display"], truth), **self._geometry(out, truth, cam)}
                images[f"{name}_{view}"] = to_uint8(out["display"])
        classical, estimator, relit, oracle = self._classical(crop, label, s)
        row["classical"] = {"input_view": {**self._scores(relit, views["input_view"][1], matte=False), **classical}}
        row["classical_true_light"] = {"input_view": self._scores(oracle, views["input_view"][1], matte=False)}
        unchanged = display(_resize(_linear(crop), self.out))
        row["input_unchanged"] = {"input_view": self._scores(unchanged, views["input_view"][1], matte=False)}
        row["estimator"] = estimator
        images["classical"] = to_uint8(relit)
        return row, images

    def _classical(self, crop: np.ndarray, label, s: dict) -> tuple[dict, dict, np.ndarray, np.ndarray]:
        """Classical relighting of the input crop with the estimated input light (or the input
        unchanged when tracking or the estimate fails), the estimator's lighting error, and the
        classical relighting given the *true* input light (its brightness included: what the mesh
        normals alone allow)."""
        from ...track.lighting import estimate_lighting

        K = pixel_intrinsics(label, self.size)
        linear = _linear(crop)
        # one tracker for every head: its pose is not used here (the estimator gets the true K)
        with self.tracker_factory(round(FOCAL_EG3D * self.size, 1)) as tracker:
            track = tracker.track(crop, 0)
        info = {"ok": False, "reason": track.reason}
        estimator = {"ok": False, "lighting_error": math.nan, "reason": track.reason}
        relit = oracle = linear
        true_input, target = s["sh"][0].cpu().double().numpy(), s["target_sh"][0].cpu().double().numpy()
        if track.found:
            oracle, _ = mesh_relight(linear, track.landmarks, K, true_input, target)
            est = estimate_lighting(linear, track.landmarks, track.rotation, K=K)
            info = {"ok": bool(est.ok), "reason": est.reason}
            estimator = {"ok": bool(est.ok), "reason": est.reason,
                         "lighting_error": M.lighting_error(est.sh, true_input) if est.ok else math.nan,
                         "ambient_only_error": M.lighting_error(_dc_only(s["sh"][0]), true_input)}
            if est.ok:
                relit, _ = mesh_relight(linear, track.landmarks, K, est.sh, target)
        return info, estimator, display(_resize(relit, self.out)), display(_resize(oracle, self.out))


def _dc_only(sh) -> np.ndarray:
    c = sh.cpu().double().numpy().copy()
    c[1:] = 0
    return c


def _linear(crop: np.ndarray) -> np.ndarray:
    from ...io.colour import srgb_to_linear

    return srgb_to_linear(crop.astype(np.float32) / 255.0)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size:
        return image
    import cv2

    return cv2.resize(np.asarray(image, dtype=np.float32), (size, size), interpolation=cv2.INTER_AREA)

