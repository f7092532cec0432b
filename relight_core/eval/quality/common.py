"""What the suites share: the networks under test, renders, and a face crop with its geometry.

Frames of light: ``sh_crop`` lights are in the DPR frame of the crop camera (x = crop right,
z = crop up, y into the screen), the frame in which a target light "from the left" is given;
the network takes the head DPR frame (:func:`relight_core.sh.camera_to_head`); the input-light
estimator answers in the DPR frame of the camera that shot the image (the *plate* frame), which
:attr:`FaceCrop.plate_to_crop` rotates into the crop frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ... import sh as SH
from ...camera import normalized_to_pixel, split_label
from ...io.colour import linear_to_srgb, srgb_to_linear
from ...models.relighter import Relighter, to_display


def untrained_like(model: Relighter, seed: int = 0) -> Relighter:
    """The same configuration with seeded random weights (the global RNG is left as it was)."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        untrained = Relighter(model.config)
    finally:
        torch.random.set_rng_state(state)
    device = next(model.parameters()).device
    return untrained.to(device).eval()


def crop_tensor(crop: np.ndarray, device) -> torch.Tensor:
    """``[S, S, 3]`` uint8 display crop -> the network input ``[1, 3, S, S]`` in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(crop)).to(device).permute(2, 0, 1)[None].float() / 127.5 - 1


def head_light(sh_crop, crop_cam2world) -> torch.Tensor:
    """A crop-frame light ``[9]`` or ``[9, 3]`` -> the network's head-frame SH as a batch of one."""
    c2w = torch.as_tensor(np.asarray(crop_cam2world, dtype=np.float64))
    return SH.camera_to_head(torch.as_tensor(np.asarray(sh_crop, dtype=np.float64)), c2w).float()[None]


def label_cam2world(label) -> np.ndarray:
    """``[4, 4]`` cam2world of a ``[25]`` EG3D label."""
    return np.asarray(label, dtype=np.float64)[:16].reshape(4, 4)


def yawed_label(label, yaw_deg: float) -> np.ndarray:
    """The camera of ``label`` orbited by ``yaw_deg`` about the head's vertical axis through the
    pivot (positive: toward the subject's left), same intrinsics."""
    a = np.radians(yaw_deg)
    rot = np.array([[np.cos(a), 0, np.sin(a), 0], [0, 1, 0, 0], [-np.sin(a), 0, np.cos(a), 0], [0, 0, 0, 1]])
    out = np.asarray(label, dtype=np.float64).copy()
    out[:16] = (rot @ label_cam2world(label)).ravel()
    return out.astype(np.float32)


def pixel_intrinsics(label, size: int) -> np.ndarray:
    """``[3, 3]`` pixel intrinsics of a ``size`` x ``size`` image of a label's camera."""
    K = split_label(torch.as_tensor(np.asarray(label, dtype=np.float64))[None])[1][0]
    return normalized_to_pixel(K, size, size).numpy()


@torch.no_grad()
def render(model: Relighter, planes: torch.Tensor, label, sh_head: torch.Tensor) -> dict[str, np.ndarray]:
    """Render encoded ``planes`` under ``sh_head`` from ``label``.

    Returns numpy arrays: ``display`` ``[S, S, 3]`` sRGB in [0, 1]; ``linear`` the same in linear
    light; ``albedo`` ``[N, N, 3]`` linear; ``depth``, ``opacity`` ``[N, N]``; ``K`` ``[3, 3]``
    normalized intrinsics.
    """
    device = planes.device
    camera = torch.as_tensor(np.asarray(label, dtype=np.float32))[None].to(device)
    out = model(None, camera, sh_head.to(device), albedo_planes=planes)
    display = to_display(out["image"], model.config.output_colour)[0].permute(1, 2, 0).cpu().numpy()
    albedo = ((out["albedo"][0] + 1) / 2).clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    if model.config.output_colour == "display":
        albedo = srgb_to_linear(albedo)
    return {"display": display.astype(np.float32), "linear": srgb_to_linear(display).astype(np.float32),
            "albedo": albedo.astype(np.float32), "depth": out["depth"][0, 0].cpu().double().numpy(),
            "opacity": out["opacity"][0, 0].cpu().numpy(), "K": split_label(camera)[1][0].cpu().double().numpy()}


def to_uint8(display: np.ndarray) -> np.ndarray:
    """Display sRGB in [0, 1] -> uint8."""
    return (np.clip(display, 0, 1) * 255 + 0.5).astype(np.uint8)


def display(linear: np.ndarray) -> np.ndarray:
    """Scene-linear -> display sRGB in [0, 1] (clipped)."""
    return np.clip(linear_to_srgb(np.clip(np.asarray(linear, dtype=np.float32), 0, None)), 0, 1)


def face_hull(landmarks: np.ndarray, size: int) -> np.ndarray:
    """``[size, size]`` bool: the convex hull of the 468 face-mesh points (pixels)."""
    import cv2

    points = np.round(np.asarray(landmarks, dtype=np.float64)[:468, :2]).astype(np.int32)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(points), 1)
    return mask.astype(bool)


@dataclass
class FaceCrop:
    """A face as the network sees it.

    Attributes:
        crop: ``[S, S, 3]`` uint8 display-referred aligned crop (the network input).
        linear: ``[S, S, 3]`` float32 the crop decoded to linear light.
        landmarks: ``[478, 3]`` face mesh in crop pixels (tracker convention, depth scaled too).
        K: ``[3, 3]`` crop pixel intrinsics of the camera that shot the image (the plate's,
            carried through the crop's affine map), for the estimator's ray correction.
        label: ``[25]`` the crop's EG3D camera label.
        plate_to_crop: ``[3, 3]`` rotation from the plate camera's DPR frame to the crop camera's.
        face: ``[S, S]`` bool face region (hull of the mesh).
    """

    crop: np.ndarray
    linear: np.ndarray
    landmarks: np.ndarray
    K: np.ndarray
    label: np.ndarray
    plate_to_crop: np.ndarray
    face: np.ndarray

    def to_crop_frame(self, sh_plate) -> np.ndarray:
        """A plate-frame light -> the crop frame."""
        return SH.rotate(torch.as_tensor(np.asarray(sh_plate, dtype=np.float64)), torch.as_tensor(self.plate_to_crop)).numpy()

    def to_plate_frame(self, sh_crop) -> np.ndarray:
        """A crop-frame light -> the plate frame (the frame of the estimator and the mesh normals)."""
        return SH.rotate(torch.as_tensor(np.asarray(sh_crop, dtype=np.float64)), torch.as_tensor(self.plate_to_crop.T)).numpy()


def crop_from_track(image: np.ndarray, track, K_plate: np.ndarray, size: int) -> FaceCrop:
    """The network crop of a tracked image (:class:`relight_core.track.tracker.FrameTrack`) with
    the face geometry carried into it by the crop's exact affine map."""
    from ...track.align import align_crop, crop_affine

    h, w = image.shape[:2]
    crop = align_crop(image, track.five_points, output_size=size)
    to_crop = np.vstack((crop_affine(track.five_points, w, h, output_size=size)[1], [0.0, 0.0, 1.0]))
    lm = np.asarray(track.landmarks, dtype=np.float64)
    xy = lm[:, :2] @ to_crop[:2, :2].T + to_crop[:2, 2]
    scale = float(np.sqrt(abs(np.linalg.det(to_crop[:2, :2]))))
    landmarks = np.concatenate((xy, lm[:, 2:3] * scale), 1)
    label = np.asarray(track.camera_label, dtype=np.float32)
    return FaceCrop(crop, srgb_to_linear(crop.astype(np.float32) / 255.0), landmarks, to_crop @ np.asarray(K_plate),
                    label, plate_to_crop_rotation(track.rotation, label_cam2world(label)), face_hull(landmarks, size))


def plate_to_crop_rotation(rotation: np.ndarray, crop_cam2world: np.ndarray) -> np.ndarray:
    """``[3, 3]`` rotation from the plate camera's DPR frame to the crop camera's DPR frame
    (head -> plate camera ``rotation``; the crop camera's ``[4, 4]`` cam2world in head space), as
    :func:`relight_core.track.lighting.light_to_crop_frame` applies it."""
    crop_from_head = SH.world_to_dpr(torch.as_tensor(np.asarray(crop_cam2world, dtype=np.float64))).numpy()
    plate_from_head = np.asarray(SH.OPENCV_TO_DPR, dtype=np.float64) @ np.asarray(rotation, dtype=np.float64)
    return crop_from_head @ plate_from_head.T
