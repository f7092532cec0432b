"""The whole network: `Relighter` for images and `VideoRelighter` for the temporal (video) path.

Image path (PAPER_MODEL.md 1.3): crop -> albedo tri-plane; SH -> lighting styles -> shading
tri-plane; albedo tri-plane -> super-resolution style; volume render + super-resolution.

Coloured light: SH of shape [B, 9, 3] gives one shading tri-plane per colour channel against a
shared albedo and geometry; channel c of the output comes from the render under light c. Grey SH
[B, 9] is one pass.

Inference (eval mode, the default after loading) is deterministic exactly as
`../shared/conformance/README.md` section 3 defines: no ray jitter, deterministic importance
sampling, constant shading-encoder noise. Training mode samples randomly.
"""

from __future__ import annotations

from collections import deque

import torch
from torch import Tensor, nn

from .albedo_encoder import AlbedoEncoder
from .config import RelighterConfig
from .renderer import VolumeRenderer
from .shading import LightingMapping, ShadingEncoder
from .superres import PlanesToStyle, SuperResolution
from .temporal import TemporalNet


def split_camera(camera: Tensor) -> tuple[Tensor, Tensor]:
    """EG3D label [B, 25] -> (cam2world [B, 4, 4], normalized intrinsics [B, 3, 3])."""
    if camera.ndim != 2 or camera.shape[1] != 25:
        raise ValueError(f"camera must be an EG3D label of shape [B, 25], got {list(camera.shape)}")
    return camera[:, :16].reshape(-1, 4, 4), camera[:, 16:].reshape(-1, 3, 3)


def light_channels(sh: Tensor, sh_dim: int) -> Tensor:
    """SH [B, 9] (grey) or [B, 9, 3] (coloured) -> [L, B, 9] with L = 1 or 3."""
    if sh.ndim == 2 and sh.shape[1] == sh_dim:
        return sh[None]
    if sh.ndim == 3 and sh.shape[1] == sh_dim and sh.shape[2] == 3:
        return sh.permute(2, 0, 1)
    raise ValueError(f"sh must be [B, {sh_dim}] (grey) or [B, {sh_dim}, 3] (coloured), got {list(sh.shape)}")


def to_display(image: Tensor, output_colour: str) -> Tensor:
    """A rendered image in [-1, 1] -> display sRGB in [0, 1], whatever the weights' output encoding."""
    values = ((image + 1) / 2).clamp(0, 1)
    if output_colour == "display":
        return values
    return torch.where(values <= 0.0031308, 12.92 * values, 1.055 * values.clamp_min(1e-8) ** (1 / 2.4) - 0.055)


class Relighter(nn.Module):
    """The relighting network of "Real-time 3D-aware Portrait Video Relighting" (CVPR 2024)."""

    def __init__(self, config: RelighterConfig):
        super().__init__()
        self.config = config
        self.albedo_encoder = AlbedoEncoder(config)
        self.lighting = LightingMapping(config)
        self.shading_encoder = ShadingEncoder(config)
        self.planes_to_style = PlanesToStyle(config)
        self.renderer = VolumeRenderer(config)
        self.superres = SuperResolution(config)
        self.temporal = TemporalNet(config)

    @property
    def noise_mode(self) -> str:
        return "random" if self.training else "const"

    def encode(self, image: Tensor) -> Tensor:
        """Aligned crop [B, 3, S, S] in [-1, 1] (display-referred RGB) -> albedo tri-plane [B, 3C, S/2, S/2]."""
        size = self.config.image_size
        if image.ndim != 4 or image.shape[1] != 3 or image.shape[2:] != (size, size):
            raise ValueError(f"image must be [B, 3, {size}, {size}] for config {self.config.name!r}, got {list(image.shape)}")
        return self.albedo_encoder(image)

    def shade(self, albedo_planes: Tensor, sh: Tensor) -> Tensor:
        """Albedo tri-plane [B, 3C, R, R] + SH [B, 9] or [B, 9, 3] -> shading tri-planes [L, B, 3C, R, R]."""
        lights = light_channels(sh, self.config.sh_dim)
        count, batch = lights.shape[:2]
        ws = self.lighting(lights.reshape(count * batch, -1))
        planes = self.shading_encoder(albedo_planes.repeat(count, 1, 1, 1), ws, self.noise_mode)
        return planes.reshape(count, batch, *planes.shape[1:])

    def superresolve(self, features: Tensor, style: Tensor) -> Tensor:
        """Rendered features [L, B, C, N, N] under L lights -> the picture [B, 3, S, S] (combine_lights)."""
        count, batch = features.shape[:2]
        images = self.superres(features.flatten(0, 1), style.repeat(count, 1)).unflatten(0, (count, batch))
        return combine_lights(images)

    def render(self, albedo_planes: Tensor, shading_planes: Tensor, camera: Tensor, style: Tensor) -> dict[str, Tensor]:
        """Volume render + super-resolution.

        Args:
            albedo_planes: [B, 3C, R, R]; shading_planes: [L, B, 3C, R, R];
            camera: EG3D labels [B, 25]; style: super-resolution w [B, w_dim].
        Returns images (N = neural resolution, S = 8N):
            "image" [B, 3, S, S] and "image_raw" [B, 3, N, N], both about [-1, 1];
            "albedo" [B, 3, N, N] in [-1, 1]; "shading" [B, L, N, N] >= 0;
            "depth" [B, 1, N, N] (head units along the ray); "opacity" [B, 1, N, N];
            "features" [L, B, C, N, N] (the super-resolution input).
        """
        cam2world, intrinsics = split_camera(camera)
        out = self.renderer(albedo_planes, shading_planes, cam2world, intrinsics)
        features = out["features"]
        return {
            "image": self.superresolve(features, style),
            "image_raw": combine_lights(features[:, :, :3]),
            "albedo": out["albedo"][:, :3],
            "shading": out["shading"].transpose(0, 1)[:, :, 0],
            "depth": out["depth"],
            "opacity": out["opacity"],
            "features": features,
        }

    def forward(self, image: Tensor | None, camera: Tensor, sh: Tensor, albedo_planes: Tensor | None = None) -> dict[str, Tensor]:
        """Image path: relight `image` (or previously encoded `albedo_planes`) under `sh`, seen from `camera`.

        Returns the render dict plus "albedo_planes", "shading_planes" and "style".
        """
        if albedo_planes is None:
            if image is None:
                raise ValueError("give an image or the albedo_planes of an earlier call")
            albedo_planes = self.encode(image)
        shading_planes = self.shade(albedo_planes, sh)
        style = self.planes_to_style(albedo_planes)
        out = self.render(albedo_planes, shading_planes, camera, style)
        return {**out, "albedo_planes": albedo_planes, "shading_planes": shading_planes, "style": style}


def _with_light_count(shading: Tensor, count: int) -> Tensor:
    """Shading planes [L, ...] as `count` lights: grey is repeated, coloured averaged (light changed mid-window)."""
    if shading.shape[0] == count:
        return shading
    return shading.mean(0, keepdim=True).expand(count, *shading.shape[1:])


def combine_lights(per_light: Tensor) -> Tensor:
    """Pictures [L, B, 3, H, W] under one grey light (L = 1) or three per-channel lights (L = 3)
    -> [B, 3, H, W]: channel c of a coloured picture comes from the render under light c."""
    if per_light.shape[0] == 1:
        return per_light[0]
    return torch.stack([per_light[c, :, c] for c in range(3)], dim=1)


class VideoRelighter:
    """Runs a `Relighter` frame by frame with its temporal network.

    The first `window` frames of a shot render as images and fill the buffer of encoder tri-planes.
    From then on the temporal network turns the buffer into residuals added to the current planes.

    Args:
        model: the network.
        window_policy: "sliding" (the paper: the previous `window` frames, the default) or
            "frozen" (the released code: the shot's first `window` frames, forever).
    """

    def __init__(self, model: Relighter, window_policy: str = "sliding"):
        if window_policy not in ("sliding", "frozen"):
            raise ValueError(f"window_policy must be 'sliding' or 'frozen', got {window_policy!r}")
        self.model = model
        self.window_policy = window_policy
        self.window = model.config.temporal_window
        self.silent = model.temporal.is_silent()  # zero residuals: skip the network (weights read once, here)
        self.reset()

    def reset(self) -> None:
        """Forget the previous frames (call at a shot cut or for a new clip)."""
        self._albedo: deque[Tensor] = deque(maxlen=self.window)
        self._shading: deque[Tensor] = deque(maxlen=self.window)

    def residuals(self, light_count: int) -> tuple[Tensor, Tensor] | None:
        """Temporal residuals from the buffer: albedo [B, 3C, R, R], shading [L, B, 3C, R, R]; None while filling."""
        if len(self._albedo) < self.window:
            return None
        if self.silent:
            shading = self._shading[-1]
            return torch.zeros_like(self._albedo[-1]), shading.new_zeros(light_count, *shading.shape[1:])
        albedo_window = torch.cat(list(self._albedo), dim=1)  # [B, window*3C, R, R], oldest first
        shading_window = torch.cat([_with_light_count(s, light_count) for s in self._shading], dim=2)
        count, batch = shading_window.shape[:2]
        albedo_res, shading_res = self.model.temporal(albedo_window.repeat(count, 1, 1, 1), shading_window.flatten(0, 1))
        return albedo_res.unflatten(0, (count, batch)).mean(0), shading_res.unflatten(0, (count, batch))

    def smooth(self, albedo: Tensor, shading: Tensor) -> dict[str, Tensor | None]:
        """Advance the window with this frame's encoder planes and return the planes to render.

        albedo [B, 3C, R, R] and shading [L, B, 3C, R, R] are the encoder outputs of the frame.
        Returns "albedo_planes" and "shading_planes" (with the temporal residuals added once the
        window is full) and "residual_albedo", "residual_shading" (None while filling).
        """
        residuals = self.residuals(shading.shape[0])
        if residuals is None or self.window_policy == "sliding":
            self._albedo.append(albedo)
            self._shading.append(shading)
        if residuals is None:
            return {"albedo_planes": albedo, "shading_planes": shading, "residual_albedo": None, "residual_shading": None}
        return {
            "albedo_planes": albedo + residuals[0],
            "shading_planes": shading + residuals[1],
            "residual_albedo": residuals[0],
            "residual_shading": residuals[1],
        }

    @torch.no_grad()
    def step(self, image: Tensor, camera: Tensor, sh: Tensor) -> dict[str, Tensor | None]:
        """Relight the next frame: image [B, 3, S, S], camera [B, 25], sh [B, 9] or [B, 9, 3].

        Returns the render dict of `Relighter.render` plus the entries of `smooth`.
        """
        model = self.model
        albedo = model.encode(image)
        smoothed = self.smooth(albedo, model.shade(albedo, sh))
        out = model.render(smoothed["albedo_planes"], smoothed["shading_planes"], camera, model.planes_to_style(albedo))
        return {**out, **smoothed}
