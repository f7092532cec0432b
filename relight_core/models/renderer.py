"""Tri-plane volume rendering of albedo x shading (EG3D's importance renderer; PAPER_MODEL.md 2.7-2.9).

Geometry and albedo features come from the albedo tri-plane, a scalar shading from the shading
tri-plane; each sample's colour feature is albedo x shading. Coloured light renders several
shading tri-planes against one geometry pass.

Frames: head space, box [-box_warp/2, box_warp/2]^3; OpenCV cameras (+x right, +y down, +z fwd).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import kernels, sampling
from .config import RelighterConfig
from .stylegan import EqualizedLinear


def softexp(x: Tensor, alpha: float = 0.1) -> Tensor:
    """Positive, continuous "softexp" of the shading decoder: e*u, exp(u) or -1/(e*u) for u = alpha*x."""
    u = alpha * x
    return torch.where(u >= 1, math.e * u, torch.where(u <= -1, -1.0 / (math.e * u), torch.exp(u)))


class TriplaneDecoders(nn.Module):
    """The two small MLPs: albedo tri-plane -> (density, albedo features); shading tri-plane -> shading."""

    def __init__(self, config: RelighterConfig):
        super().__init__()
        c, hidden = config.plane_channels, config.decoder_hidden
        self.albedo_hidden = EqualizedLinear(c, hidden)
        self.albedo_out = EqualizedLinear(hidden, 1 + c)
        self.shading_hidden = EqualizedLinear(c, hidden)
        self.shading_out = EqualizedLinear(hidden, 1)

    def albedo(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """features [..., C] (plane mean) -> (sigma [..., 1] raw, albedo features [..., C] in (-0.001, 1.001))."""
        x = self.albedo_out(F.softplus(self.albedo_hidden(features)))
        return x[..., :1], torch.sigmoid(x[..., 1:]) * 1.002 - 0.001

    def shading(self, features: Tensor) -> Tensor:
        """features [..., C] -> shading [..., 1] in (0, inf)."""
        return softexp(self.shading_out(F.softplus(self.shading_hidden(features))))


def sample_triplane(planes: Tensor, points: Tensor, box_warp: float) -> Tensor:
    """Bilinear tri-plane lookup, mean over the three planes.

    Args:
        planes: [B, 3*C, R, R], plane k = channels C*k..C*k+C-1.
        points: [B, M, 3] head-space coordinates.
    Returns:
        [B, M, C] features.

    The third plane is sampled at (z, x): EG3D's legacy projection, on which all weights depend.
    """
    batch, channels, res, _ = planes.shape
    coords = points * (2.0 / box_warp)
    x, y, z = coords.unbind(-1)
    uv = torch.stack([torch.stack(p, dim=-1) for p in ((x, y), (x, z), (z, x))], dim=1)  # [B, 3, M, 2]
    grid = uv.reshape(batch * 3, 1, -1, 2)
    per_plane = planes.reshape(batch * 3, channels // 3, res, res)
    sampled = sampling.grid_sample(per_plane, grid, padding_mode="zeros")
    return sampled.reshape(batch, 3, channels // 3, -1).mean(dim=1).transpose(1, 2)


def camera_rays(cam2world: Tensor, intrinsics: Tensor, resolution: int) -> tuple[Tensor, Tensor]:
    """One ray per pixel centre, row-major.

    Args:
        cam2world: [B, 4, 4] OpenCV camera-to-head transform.
        intrinsics: [B, 3, 3] normalized intrinsics (image side = 1).
    Returns:
        origins [B, N*N, 3] and unit directions [B, N*N, 3].
    """
    device = cam2world.device
    centres = torch.arange(resolution, device=device, dtype=torch.float32) * (1.0 / resolution) + 0.5 / resolution
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    u, v = u.reshape(1, -1), v.reshape(1, -1)
    fx, fy = intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None]
    cx, cy, skew = intrinsics[:, 0, 2, None], intrinsics[:, 1, 2, None], intrinsics[:, 0, 1, None]
    x = (u - cx + cy * skew / fy - skew * v / fy) / fx
    y = (v - cy) / fy
    directions = torch.stack([x, y, torch.ones_like(x)], dim=-1) @ cam2world[:, :3, :3].transpose(1, 2)
    origins = cam2world[:, None, :3, 3].expand_as(directions)
    return origins, F.normalize(directions, dim=-1)


def composite_weights(sigma: Tensor, depths: Tensor) -> tuple[Tensor, Tensor]:
    """Mid-point compositing weights (EG3D's MipRayMarcher2).

    sigma, depths: [..., S, 1] sorted along S. Returns (weights [..., S-1, 1], interval mid-depths).
    """
    deltas = depths[..., 1:, :] - depths[..., :-1, :]
    density = F.softplus((sigma[..., :-1, :] + sigma[..., 1:, :]) / 2 - 1)
    alpha = 1 - torch.exp(-density * deltas)
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1, :]), 1 - alpha + 1e-10], -2), -2)
    return alpha * transmittance[..., :-1, :], (depths[..., :-1, :] + depths[..., 1:, :]) / 2


def midpoint_sum(weights: Tensor, values: Tensor) -> Tensor:
    """Sum over intervals of weight x mean of the interval's two end samples. values [..., S, C]."""
    return (weights * (values[..., :-1, :] + values[..., 1:, :]) / 2).sum(dim=-2)


def importance_depths(depths: Tensor, weights: Tensor, count: int, deterministic: bool) -> Tensor:
    """Inverse-CDF samples from the coarse weights (EG3D's sample_importance + sample_pdf).

    depths: [R, S] coarse depths; weights: [R, S-1] coarse interval weights. Returns [R, count].
    Deterministic mode uses u = linspace(0, 1, count) for every ray.
    """
    smoothed = F.avg_pool1d(F.max_pool1d(weights[:, None], 2, 1, padding=1), 2, 1)[:, 0] + 0.01
    bins = (depths[:, :-1] + depths[:, 1:]) / 2
    pdf = smoothed[:, 1:-1] + 1e-5
    pdf = pdf / pdf.sum(dim=-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)
    if deterministic:
        u = torch.linspace(0, 1, count, device=depths.device).expand(depths.shape[0], count).contiguous()
    else:
        u = torch.rand(depths.shape[0], count, device=depths.device)
    index = torch.searchsorted(cdf, u, right=True)
    pair = torch.stack([(index - 1).clamp_min(0), index.clamp_max(pdf.shape[1])], -1).reshape(len(u), -1)
    cdf_pair = cdf.gather(1, pair).reshape(len(u), count, 2)
    bin_pair = bins.gather(1, pair).reshape(len(u), count, 2)
    denom = cdf_pair[..., 1] - cdf_pair[..., 0]
    denom = torch.where(denom < 1e-5, torch.ones_like(denom), denom)
    return bin_pair[..., 0] + (u - cdf_pair[..., 0]) / denom * (bin_pair[..., 1] - bin_pair[..., 0])


class VolumeRenderer(nn.Module):
    """Renders albedo + shading tri-planes from a camera at the neural resolution."""

    def __init__(self, config: RelighterConfig):
        super().__init__()
        self.config = config
        self.decoders = TriplaneDecoders(config)

    def _decode(self, albedo: Tensor, shadings: Tensor, points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Points [B, M, 3] -> sigma [B, M, 1], albedo features [B, M, C], shading [L, B, M, 1]."""
        box = self.config.box_warp
        sigma, features = self.decoders.albedo(sample_triplane(albedo, points, box))
        light_count = shadings.shape[0]
        shading = self.decoders.shading(sample_triplane(shadings.flatten(0, 1), points.repeat(light_count, 1, 1), box))
        return sigma, features, shading.reshape(light_count, *sigma.shape)

    def forward(self, albedo_planes: Tensor, shading_planes: Tensor, cam2world: Tensor, intrinsics: Tensor) -> dict:
        """Render.

        Args:
            albedo_planes: [B, 3C, R, R].
            shading_planes: [L, B, 3C, R, R], one per light channel (L = 1 grey, 3 coloured).
            cam2world, intrinsics: [B, 4, 4], [B, 3, 3].
        Returns a dict of [*, N, N] images: "features" [L, B, C] (albedo x shading, x2-1), "albedo"
        [B, C] (x2-1), "shading" [L, B, 1], "depth" [B, 1], "opacity" [B, 1].

        On CUDA in eval mode without autograd this runs the fused kernel (models/kernels.py decides);
        the code below is its reference.
        """
        if kernels.use_fused_renderer(self, albedo_planes, shading_planes, cam2world, intrinsics):
            return kernels.fused_render(self, albedo_planes, shading_planes, cam2world, intrinsics)
        cfg, n = self.config, self.config.neural_resolution
        dtype = self.decoders.albedo_hidden.weight.dtype  # bf16 planes of a converted model: read as fp32
        albedo_planes, shading_planes = albedo_planes.to(dtype), shading_planes.to(dtype)
        deterministic = not self.training
        batch = albedo_planes.shape[0]
        origins, directions = camera_rays(cam2world, intrinsics, n)
        rays = origins.shape[1]
        coarse = torch.linspace(cfg.ray_start, cfg.ray_end, cfg.coarse_samples, device=origins.device)
        coarse = coarse.expand(batch, rays, -1)
        if not deterministic:
            step = (cfg.ray_end - cfg.ray_start) / (cfg.coarse_samples - 1)
            coarse = coarse + torch.rand_like(coarse) * step
        points = origins[:, :, None] + coarse[..., None] * directions[:, :, None]
        sigma_c, feat_c, shade_c = self._decode(albedo_planes, shading_planes, points.reshape(batch, -1, 3))

        weights_c, _ = composite_weights(sigma_c.reshape(batch, rays, -1, 1), coarse[..., None])
        fine = importance_depths(coarse.reshape(batch * rays, -1), weights_c.reshape(batch * rays, -1),
                                 cfg.fine_samples, deterministic).reshape(batch, rays, -1)
        points = origins[:, :, None] + fine[..., None] * directions[:, :, None]
        sigma_f, feat_f, shade_f = self._decode(albedo_planes, shading_planes, points.reshape(batch, -1, 3))

        depths, order = torch.sort(torch.cat([coarse, fine], -1), dim=-1)

        def merge(coarse_values: Tensor, fine_values: Tensor) -> Tensor:
            """[..., B, rays*S, C] coarse and fine samples -> [..., B, rays, S_all, C] sorted by depth."""
            per_ray = [v.reshape(*v.shape[:-2], rays, -1, v.shape[-1]) for v in (coarse_values, fine_values)]
            merged = torch.cat(per_ray, dim=-2)
            return merged.gather(-2, order[..., None].expand(merged.shape))

        sigma, albedo, shading = merge(sigma_c, sigma_f), merge(feat_c, feat_f), merge(shade_c, shade_f)
        weights, mid_depths = composite_weights(sigma, depths[..., None])
        total = weights.sum(dim=-2)
        # Rays with no density have no depth: EG3D's 0/0 -> NaN -> inf, clamped to the far end
        # below. Dividing only where the total is positive keeps the gradient finite there too.
        filled = total > 0
        depth = (weights * mid_depths).sum(dim=-2) / torch.where(filled, total, torch.ones_like(total))
        depth = torch.where(filled, depth, torch.full_like(depth, float("inf")))
        # Clamp to the sampled range of each image (EG3D clamps to the whole tensor's range; with
        # deterministic sampling both are [ray_start, ray_end], and per image keeps batches independent).
        low, high = depths.amin(dim=(1, 2)), depths.amax(dim=(1, 2))
        depth = torch.minimum(torch.maximum(depth, low[:, None, None]), high[:, None, None])

        def image(x: Tensor) -> Tensor:  # [..., B, N*N, C] -> [..., B, C, N, N]
            return x.transpose(-1, -2).reshape(*x.shape[:-2], x.shape[-1], n, n)

        return {
            "features": image(midpoint_sum(weights, albedo * shading) * 2 - 1),
            "albedo": image(midpoint_sum(weights, albedo) * 2 - 1),
            "shading": image(midpoint_sum(weights, shading)),
            "depth": image(depth),
            "opacity": image(total),
        }
