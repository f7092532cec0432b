"""Training data sources. A source's batch is a pure function of (seed, step, rank), so a resumed
run sees exactly the data it would have seen (trainer.DataSource documents the batch layout)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import sh
from ..camera import split_label
from ..models.config import get_config
from .config import TrainConfig


class SyntheticSource:
    """Synthetic heads (relight_core.train.synthetic) as training batches.

    Each sample supervises two views, the input view and a novel view, under a new target light.
    Lights are converted from the input camera's DPR frame to the head DPR frame, the frame the
    network takes (sh.camera_to_head). Colour targets are masked to the subject: the volume learns
    the head only, and its opacity is the matte.
    """

    def __init__(self, config: TrainConfig, device: torch.device | None = None):
        self.seed = config.seed
        self.network = get_config(config.model)
        self._generators: dict[str, object] = {}
        self.coloured = config.coloured_lights

    def prepare(self, device: torch.device) -> None:
        """Build the generator on `device` now (its set-up draws from the global RNG, so it must
        happen before a resumed run restores the RNG state)."""
        from .synthetic import SyntheticHeads

        key = str(device)
        if key not in self._generators:
            self._generators[key] = SyntheticHeads(self.network.image_size, device, coloured=self.coloured)

    def _heads(self, device: torch.device):
        self.prepare(device)
        return self._generators[str(device)]

    def batch(self, step: int, rank: int, batch_size: int, device: torch.device) -> dict[str, Tensor]:
        generator = torch.Generator(device=device).manual_seed(hash((self.seed, step, rank)) % 2**63)
        s = self._heads(device).sample(batch_size, generator)
        size = self.network.output_resolution

        def views(*names: str) -> Tensor:
            stacked = torch.stack([s[n] for n in names], dim=1)  # [B, V, C, H, W]
            if stacked.shape[-1] != size:
                stacked = F.interpolate(stacked.flatten(0, 1), size=(size, size), mode="area").unflatten(0, stacked.shape[:2])
            return stacked

        mask = views("mask", "mv_mask")
        return {
            "image": s["image"],
            "camera": s["camera"],
            "target_cameras": torch.stack([s["camera"], s["mv_camera"]], dim=1),
            "target_sh": sh.camera_to_head(s["target_sh"], split_label(s["camera"])[0]).float(),
            "rgb": views("target_rgb", "mv_target_rgb") * mask,
            "albedo": views("albedo", "mv_albedo") * mask,
            "shading": views("target_shading", "mv_target_shading"),
            "depth": views("depth", "mv_depth"),
            "mask": mask,
        }


def make_data(config: TrainConfig):
    """The data source a configuration names."""
    if config.data == "synthetic":
        return SyntheticSource(config)
    raise ValueError(f"unknown training data {config.data!r}; available: 'synthetic'")
