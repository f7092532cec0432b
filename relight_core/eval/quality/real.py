"""Real held-out portraits: reconstruction, identity and lighting accuracy (no ground truth needed).

For each portrait the face is tracked (MediaPipe, static mode), cropped as the network expects
(:func:`.common.crop_from_track`) and its light estimated from the crop
(:func:`relight_core.track.lighting.estimate_lighting`). Then, per method:

* **Reconstruction**: the network relights under the *estimated input light* and renders from
  the *input camera*; PSNR and SSIM against the input crop within the face region (the hull of
  the tracked face mesh), in display sRGB.
* **Identity**: dlib descriptor distance between the input crop and the network's own render
  (never a composite) at the input view and with the camera orbited by -20 and +20 degrees of
  yaw about the head (all under the estimated input light), and of the relit renders under each
  target light at the input view. dlib finds the face in each image; when it finds none in a
  render, the input's face box is used (the crop is aligned, so the face is in the same place)
  and the fallback is counted.
* **Lighting accuracy**: relight to each target light (given in the crop camera's DPR frame:
  "left" is the crop's left), estimate the light back from the render with the same estimator on
  the *input's* tracked geometry (the render is seen from the input camera, so the face sits
  where it sat in the input), and score it against the target with
  :func:`.metrics.lighting_error`. The same is done for the classical baseline's output, and for
  the input itself (the error of not relighting at all).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import metrics as M
from .classical import mesh_relight
from .common import crop_from_track, crop_tensor, display, head_light, label_cam2world, render, to_uint8, yawed_label
from .identity import distance

YAWS = (-20.0, 20.0)
FAILED_ESTIMATE = 1.0
"""The lighting error given to a relit image whose light cannot be estimated back."""


def read_rgb(path: Path) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB of an image file; ValueError naming the file when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc}); remove it from the folder or convert it to PNG/JPEG") from None


def track_portrait(photo: np.ndarray, tracker_factory, size: int):
    """Track a portrait in static mode, crop it as the plate job crops (``size`` px) and estimate
    its input light -> (:class:`.common.FaceCrop`, the light estimate), or the reason it cannot."""
    from ...track.lighting import estimate_lighting
    from ...track.pose import plate_intrinsics

    with tracker_factory(None) as tracker:
        track = tracker.track(photo, 0)
    if not track.found:
        return f"no usable face ({track.reason})"
    face = crop_from_track(photo, track, plate_intrinsics(photo.shape[1], photo.shape[0]), size)
    estimate = estimate_lighting(face.linear, face.landmarks, K=face.K)
    if not estimate.ok:
        return f"input light not estimated ({estimate.reason})"
    return face, estimate


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size:
        return image
    import cv2

    return cv2.resize(np.asarray(image, dtype=np.float32), (size, size), interpolation=cv2.INTER_AREA)


class RealSuite:
    """Runs the portraits through every method (:meth:`run_portrait`).

    Args:
        models: name -> network. lights: name -> target SH (crop frame, ``[9]`` or ``[9, 3]``).
        identity: a :class:`.identity.FaceIdentity`, or None to skip the identity metric.
        tracker_factory: ``focal_px or None -> Tracker`` in static mode.
    """

    def __init__(self, models: dict, device, lights: dict, identity, tracker_factory):
        self.models = models
        self.device = device
        self.lights = {k: np.asarray(v, dtype=np.float64) for k, v in lights.items()}
        self.identity = identity
        self.tracker_factory = tracker_factory
        self.size = next(iter(models.values())).config.image_size

    def _describe(self, image01: np.ndarray, fallback) -> dict | None:
        if self.identity is None:
            return None
        return self.identity.describe(to_uint8(_resize(image01, self.size)), fallback)

    def _identity(self, image01: np.ndarray, reference: dict | None) -> dict | None:
        if reference is None or reference["descriptor"] is None:
            return None
        d = self._describe(image01, reference["box"])
        return {"distance": distance(d, reference), "detected": d["detected"]}

    def _light_back(self, linear: np.ndarray, face, target: np.ndarray) -> float:
        """Lighting error of the light estimated back from an image of the input's geometry; a
        failed estimate scores 1 (no information, :func:`.metrics.lighting_error`) and is counted."""
        from ...track.lighting import estimate_lighting

        est = estimate_lighting(_resize(linear, self.size), face.landmarks, K=face.K)
        return M.lighting_error(face.to_crop_frame(est.sh), target) if est.ok else FAILED_ESTIMATE

    def run_portrait(self, path: Path) -> tuple[dict, dict | None]:
        """(metrics, images for the contact sheet or None) of one portrait."""
        row: dict = {"file": path.name, "ok": False}
        try:
            photo = read_rgb(path)
        except ValueError as exc:  # one bad file is reported, the rest of the folder still counts
            return {**row, "reason": str(exc)}, None
        tracked = track_portrait(photo, self.tracker_factory, self.size)
        if isinstance(tracked, str):
            return {**row, "reason": tracked}, None
        face, est = tracked
        sh_input = face.to_crop_frame(est.sh)
        c2w = label_cam2world(face.label)
        crop01 = face.crop.astype(np.float32) / 255.0
        reference = self._describe(crop01, None)
        row.update(ok=True, identity_reference_found=bool(reference and reference["descriptor"] is not None),
                   input_unchanged={"lighting_error": {k: M.lighting_error(sh_input, t) for k, t in self.lights.items()}})
        images = {"input": face.crop}
        first_light = next(iter(self.lights))
        for name, model in self.models.items():
            planes = model.encode(crop_tensor(face.crop, self.device))
            recon = render(model, planes, face.label, head_light(sh_input, c2w))
            shown = _resize(recon["display"], self.size)
            result = {"psnr_face": M.psnr(shown, crop01, face.face), "ssim_face": M.ssim(shown, crop01, face.face),
                      "identity": {"input_view": self._identity(shown, reference)}, "lighting_error": {},
                      "identity_relit": {}}
            images[f"{name}_reconstruction"] = to_uint8(shown)
            for yaw in YAWS:
                turned = render(model, planes, yawed_label(face.label, yaw), head_light(sh_input, c2w))
                result["identity"][f"yaw_{yaw:+.0f}"] = self._identity(turned["display"], reference)
                images[f"{name}_yaw_{yaw:+.0f}"] = to_uint8(_resize(turned["display"], self.size))
            for light, target in self.lights.items():
                out = render(model, planes, face.label, head_light(target, c2w))
                result["lighting_error"][light] = self._light_back(out["linear"], face, target)
                result["identity_relit"][light] = self._identity(out["display"], reference)
                if light == first_light:
                    images[f"{name}_relit"] = to_uint8(_resize(out["display"], self.size))
            row[name] = result
        row["classical"] = self._classical(face, est.sh, reference, images, first_light)
        return row, images

    def _classical(self, face, sh_input_plate: np.ndarray, reference, images: dict, first_light: str) -> dict:
        result: dict = {"lighting_error": {}, "identity_relit": {}}
        for light, target in self.lights.items():
            relit, _ = mesh_relight(face.linear, face.landmarks, face.K, sh_input_plate, face.to_plate_frame(target))
            result["lighting_error"][light] = self._light_back(relit, face, target)
            shown = display(relit)
            result["identity_relit"][light] = self._identity(shown, reference)
            if light == first_light:
                images["classical_relit"] = to_uint8(shown)
        return result
