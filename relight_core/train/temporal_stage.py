"""The temporal stage (paper section 3.4): train the TemporalNet on synthetic clips, everything else frozen.

For a clip of T frames the frozen network encodes every frame (albedo and shading tri-planes under
the clip's target light). Frame t >= w (w = the temporal window) is then rendered exactly as
:class:`relight_core.models.relighter.VideoRelighter` renders it with its sliding window: the
temporal network turns the encoder planes of frames t-w .. t-1 into residuals added to frame t's
planes. All K = T - w output frames of all clips go through the network at once (the window holds
encoder planes, not smoothed ones, so the frames do not depend on each other's outputs).

Losses (weights in the TOML ``[loss]`` table):

* the supervised relit colour: L1 at the neural resolution (linear and sRGB) and after
  super-resolution, plus the structure term, against the synthetic ground truth;
* ``temporal_short``: consecutive output frames, t-1 warped onto t;
* ``temporal_long``: every output frame against the first one (frame w) warped onto it.

The flow is exact, not estimated: the rasterizer knows which surface point every pixel shows, so
:meth:`relight_core.train.synthetic.SyntheticHeads.flow` projects the same mesh point into the other
frame and checks it is visible there. An estimated flow (OpenCV) would add its own errors at the
silhouette and in textureless skin, exactly where flicker shows.

The warping terms compare *changes*: ``|(out_t - warp(out_s)) - (truth_t - warp(truth_s))|`` on
sRGB-encoded colour, inside the pixels visible in both frames. The plain warping error
``|out_t - warp(out_s)|`` would also penalise the real change of shading when the head turns
under a light fixed in the room, pulling the output towards a light stuck to the face; matching
the truth's own change penalises flicker and drift only, and is zero for a perfect output.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models.relighter import Relighter
from . import losses


class TemporalRender(nn.Module):
    """Frozen encoders + the temporal network + frozen renderer for clips, as one module for DDP."""

    def __init__(self, model: Relighter):
        super().__init__()
        self.model = model
        self.window = model.config.temporal_window

    def forward(self, image: Tensor, camera: Tensor, target_sh: Tensor) -> dict[str, Tensor]:
        """image [B, T, 3, S, S], camera [B, T, 25], target_sh [B, T, 9(, 3)] -> renders of frames
        w .. T-1 of every clip, flattened clip-major to B*K (K = T - w)."""
        model, w = self.model, self.window
        clips, frames = image.shape[:2]
        count = frames - w
        if count < 1:
            raise ValueError(f"clips of {frames} frames are too short for a temporal window of {w}")
        with torch.no_grad():  # the encoders are frozen
            albedo = model.encode(image.flatten(0, 1))
            shading = model.shade(albedo, target_sh.flatten(0, 1))
            style = model.planes_to_style(albedo)
        albedo = albedo.unflatten(0, (clips, frames))  # [B, T, 3C, R, R]
        shading = shading.unflatten(1, (clips, frames))  # [L, B, T, 3C, R, R]
        lights = shading.shape[0]
        # window slot i of output k (frame t = w + k) holds frame k + i = t - w + i: oldest first
        albedo_window = torch.cat([albedo[:, i:i + count] for i in range(w)], dim=2).flatten(0, 1)
        shading_window = torch.cat([shading[:, :, i:i + count] for i in range(w)], dim=3).flatten(0, 2)
        albedo_res, shading_res = model.temporal(albedo_window.repeat(lights, 1, 1, 1), shading_window)
        albedo_res = albedo_res.unflatten(0, (lights, clips * count)).mean(0)  # as VideoRelighter.residuals
        shading_res = shading_res.unflatten(0, (lights, clips * count))
        return model.render(
            albedo[:, w:].flatten(0, 1) + albedo_res,
            shading[:, :, w:].flatten(1, 2) + shading_res,
            camera[:, w:].flatten(0, 1),
            style.unflatten(0, (clips, frames))[:, w:].flatten(0, 1),
        )


def change_l1(output: Tensor, truth: Tensor, flow: Tensor, valid: Tensor, earlier: tuple[Tensor, Tensor]) -> Tensor:
    """L1 between the output's and the truth's change from an earlier frame warped onto this one.

    output, truth [N, 3, H, W]; flow [N, 2, H, W] (pixels, to the earlier frame); valid [N, 1, H, W];
    earlier = (output, truth) of the earlier frames [N, 3, H, W].
    """
    out_change = output - losses.warp(earlier[0], flow)
    truth_change = truth - losses.warp(earlier[1], flow)
    return losses.temporal_l1(out_change, truth_change, valid)


def temporal_terms(out: dict[str, Tensor], batch: dict[str, Tensor], window: int, neural: int) -> dict[str, Tensor]:
    """The temporal stage's named losses for a :class:`TemporalRender` output and its batch."""
    import torch.nn.functional as F

    clips, frames = batch["image"].shape[:2]
    count = frames - window
    target = batch["rgb"][:, window:].flatten(0, 1)
    small = F.interpolate(target, size=(neural, neural), mode="area") if target.shape[-1] != neural else target
    raw, sr = (out["image_raw"] + 1) / 2, (out["image"] + 1) / 2
    terms = {
        "rgb": losses.masked_l1(raw, small) + losses.masked_l1(losses.srgb_encode(raw), losses.srgb_encode(small)),
        "rgb_sr": losses.masked_l1(sr, target),
        "structure": losses.structure_loss(sr, target),
    }
    output = losses.srgb_encode(sr).unflatten(0, (clips, count))
    truth = losses.srgb_encode(target).unflatten(0, (clips, count))

    def later(x: Tensor) -> Tensor:  # output frames 1 .. K-1, flattened
        return x[:, 1:].flatten(0, 1)

    def at(name: str) -> Tensor:  # a per-frame batch entry at output frames 1 .. K-1
        return batch[name][:, window + 1:].flatten(0, 1)

    previous = (output[:, :-1].flatten(0, 1), truth[:, :-1].flatten(0, 1))
    first = (output[:, :1].expand(-1, count - 1, -1, -1, -1).flatten(0, 1), truth[:, :1].expand(-1, count - 1, -1, -1, -1).flatten(0, 1))
    terms["temporal_short"] = change_l1(later(output), later(truth), at("flow_previous"), at("valid_previous"), previous)
    terms["temporal_long"] = change_l1(later(output), later(truth), at("flow_first"), at("valid_first"), first)
    return terms
