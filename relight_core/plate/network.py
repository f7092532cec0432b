"""The network step of a plate job: weights, device, and one frame's relighting in the crop.

:class:`NetworkStep` runs a :class:`relight_core.models.relighter.Relighter` on the face crop the
way :meth:`VideoRelighter.step <relight_core.models.relighter.VideoRelighter.step>` does (encode,
shade, temporal window, render), with one difference the compositing needs: the planes are
shaded under the **target and the input light together** and rendered in one volume pass (the
geometry is shared), but only the target lights go through the super-resolution, since the
input light's render serves only for the shading ratio.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..io import PlateError
from ..io import colour as _colour
from .config import file_hash

__all__ = ["RANDOM_WEIGHTS", "resolve_device", "model_identity", "load_model", "NetworkStep"]

RANDOM_WEIGHTS = ("small", "tiny", "paper")
"""``weights`` values that mean seeded random weights of that config (tests, benchmarks)."""


def resolve_device(name: str) -> torch.device:
    """``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda[:N]"`` -> a device; PlateError otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise PlateError(f"device {name!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PlateError(f"device {name!r}: this torch has no CUDA GPU; use --device cpu")
    return dev


def model_identity(weights) -> dict:
    """What the job's results depend on: the weights' content (not their path)."""
    from ..checkpoints import DEFAULT_WEIGHTS

    if weights is None:
        if DEFAULT_WEIGHTS.is_file():
            return {"sha256": file_hash(DEFAULT_WEIGHTS)}
        return {"untrained": "small, seed 0"}
    if str(weights) in RANDOM_WEIGHTS:
        return {"untrained": f"{weights}, seed 0"}
    path = Path(weights)
    if not path.is_file():
        raise PlateError(f"weights file not found: {path}; pass a Relight checkpoint (.safetensors) or leave "
                         "--weights out for the shipped weights")
    return {"sha256": file_hash(path)}


def load_model(weights, device: torch.device):
    """(model in eval mode on ``device``, whether its weights are trained)."""
    from ..checkpoints import CheckpointError, load_default_model
    from ..checkpoints import load_model as load_checkpoint

    if weights is None:
        return load_default_model(device)
    if str(weights) in RANDOM_WEIGHTS:
        from ..models.config import get_config
        from ..models.relighter import Relighter

        with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's RNG
            torch.manual_seed(0)
            model = Relighter(get_config(str(weights)))
        return model.to(device).eval(), False
    try:
        return load_checkpoint(weights, device), True
    except CheckpointError as exc:
        raise PlateError(str(exc)) from None


class NetworkStep:
    """Relights one face crop per call, keeping the temporal window between calls.

    Args:
        model: the network (eval mode). device: where it runs.
        window_policy: ``"sliding"``, ``"frozen"`` or ``"off"`` (no temporal network).
        space: ``"linear"`` or ``"display"``: the encoding of the network's outputs.
        timer: dict the sub-stage seconds are added to (``network.encode``, ``.shade``,
            ``.temporal``, ``.render``, ``.superres``; synchronised on CUDA, so they add up).
    """

    def __init__(self, model, device: torch.device, window_policy: str, space: str, timer: dict[str, float]):
        from ..models.relighter import VideoRelighter

        self.model, self.device, self.space, self.timer = model, device, space, timer
        self.video = None if window_policy == "off" else VideoRelighter(model, window_policy)

    def reset(self) -> None:
        """Forget the temporal window (a cut, a new clip)."""
        if self.video is not None:
            self.video.reset()

    def _lap(self, stage: str, t0: float) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t = time.perf_counter()
        key = f"network.{stage}"
        self.timer[key] = self.timer.get(key, 0.0) + (t - t0)
        return t

    @torch.inference_mode()
    def __call__(self, crop: np.ndarray, label: np.ndarray, sh_target: torch.Tensor,
                 sh_input: torch.Tensor | None) -> dict:
        """Relight a crop; returns crop-space results on the CPU.

        Args:
            crop: ``[S, S, 3]`` uint8 display-sRGB aligned crop (S = the config's image size).
            label: ``[25]`` EG3D camera label of the render camera.
            sh_target: ``[9]`` or ``[9, 3]`` target light, head DPR frame.
            sh_input: ``[9, 3]`` input light, head DPR frame (None: no ratio, novel views).

        Returns:
            ``image`` ``[3, S', S']`` linear relit image; ``albedo`` ``[3, N, N]`` linear;
            ``shading_target`` ``[Lt, N, N]`` and ``shading_input`` ``[Li, N, N]`` (or None),
            white-Lambertian units; ``depth`` ``[N, N]`` along the rays (head units, float64);
            ``opacity`` ``[N, N]``; ``K`` ``[3, 3]`` normalized render intrinsics (float64).
        """
        from ..models.relighter import split_camera

        model, dev = self.model, self.device
        t = time.perf_counter()
        image = torch.from_numpy(np.ascontiguousarray(crop)).to(dev).permute(2, 0, 1)[None].float() / 127.5 - 1
        albedo = model.encode(image)
        t = self._lap("encode", t)
        shading_t = model.shade(albedo, sh_target[None].to(dev))
        lights = [shading_t] if sh_input is None else [shading_t, model.shade(albedo, sh_input[None].to(dev))]
        shading = torch.cat(lights, 0)  # [Lt + Li, 1, 3C, R, R]: one multi-light window
        style = model.planes_to_style(albedo)
        t = self._lap("shade", t)
        if self.video is not None:
            smoothed = self.video.smooth(albedo, shading)
            albedo, shading = smoothed["albedo_planes"], smoothed["shading_planes"]
        t = self._lap("temporal", t)
        c2w, K = split_camera(torch.from_numpy(np.asarray(label, dtype=np.float32))[None].to(dev))
        out = model.renderer(albedo, shading, c2w, K)  # geometry once, every light
        t = self._lap("render", t)
        lt = shading_t.shape[0]
        rgb = model.superresolve(out["features"][:lt], style)[0]  # target lights only
        shade = out["shading"][:, 0, 0]
        self._lap("superres", t)
        return {
            "image": self._linear((rgb + 1) / 2),
            "albedo": self._linear((out["albedo"][0, :3] + 1) / 2),
            "shading_target": shade[:lt].cpu().float(),
            "shading_input": None if sh_input is None else shade[lt:].cpu().float(),
            "depth": out["depth"][0, 0].cpu().double().numpy(),
            "opacity": out["opacity"][0, 0].cpu().float(),
            "K": K[0].cpu().double().numpy(),
        }

    def _linear(self, x: torch.Tensor) -> torch.Tensor:
        """Network output in [0, 1] -> float32 linear on the CPU (decoded for display networks)."""
        if self.space == "display":
            return torch.as_tensor(_colour.srgb_to_linear(x.clamp(0, 1).cpu().numpy())).float()
        return x.cpu().float()
