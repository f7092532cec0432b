"""Training data sources. A source's batch is a pure function of (seed, step, rank), so a resumed
run sees exactly the data it would have seen (trainer.DataSource documents the batch layout).

* :class:`SyntheticSource` - synthetic heads with full ground truth (every loss).
* :class:`PortraitSource` - real portraits from a pack (relight_core.train.portraits): the input
  view under its estimated light is the only supervised view; a second, novel view is rendered
  for the adversarial term.
* :class:`MixedSource` - one of the two per step, portraits on a fixed share of the steps.
* :class:`SequenceSource` - synthetic clips with exact optical flow, for the temporal stage.
"""

from __future__ import annotations

from fractions import Fraction

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
        s = self._heads(device).sample(batch_size, _generator(self.seed, step, rank, device))
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


def _generator(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(hash((seed, step, rank)) % 2**63)


def _linear(display: Tensor) -> Tensor:
    """Display sRGB in [0, 1] -> linear (the inverse of losses.srgb_encode)."""
    return torch.where(display <= 0.04045, display / 12.92, ((display + 0.055) / 1.055) ** 2.4)


class PortraitSource:
    """Real portraits (a pack from scripts/prepare_portraits.py) as training batches.

    The supervised view is the input view under the estimated input light (self-reconstruction):
    ``rgb`` is the photo in linear light times the person matte, ``mask`` the matte, and ``valid``
    is 0 where the crop ran past the photo's border (those pixels carry no loss). A second, novel
    camera (``get_mv_cam``) is rendered unsupervised for the adversarial term. There is no
    albedo, shading or depth: the trainer skips those terms.
    """

    def __init__(self, config: TrainConfig, path: str | None = None):
        from .portraits import read_pack

        self.seed = config.seed
        self.network = get_config(config.model)
        self.path = path or config.portraits
        self.pack = read_pack(self.path)
        size = self.pack.image.shape[-1]
        if size != self.network.image_size:
            raise ValueError(f"{self.path}: crops are {size} px but the {self.network.name!r} network takes "
                             f"{self.network.image_size} px; rebuild the pack with --model {self.network.name}")
        self._on: dict[str, dict[str, Tensor]] = {}

    def __len__(self) -> int:
        return len(self.pack)

    def prepare(self, device: torch.device) -> None:
        """Move the decoded pack to `device` once (no decoding or copies per step)."""
        key = str(device)
        if key not in self._on:
            p = self.pack
            self._on[key] = {"image": p.image.to(device), "matte": p.matte.to(device),
                             "camera": p.camera.to(device), "sh": p.sh.to(device)}

    def indices(self, step: int, rank: int, batch_size: int, device: torch.device) -> tuple[Tensor, torch.Generator]:
        generator = _generator(self.seed, step, rank, device)
        return torch.randint(len(self), (batch_size,), generator=generator, device=device), generator

    def batch(self, step: int, rank: int, batch_size: int, device: torch.device) -> dict[str, Tensor]:
        from .synthetic import MV_CAMERAS, sample_cameras

        self.prepare(device)
        data = self._on[str(device)]
        index, generator = self.indices(step, rank, batch_size, device)
        size = self.network.output_resolution
        display = data["image"][index].float() / 255
        matte = F.interpolate(data["matte"][index].float() / 255, size=(size, size), mode="bilinear", align_corners=False)
        target = display if display.shape[-1] == size else F.interpolate(display, size=(size, size), mode="area")
        camera = data["camera"][index]
        novel = sample_cameras(batch_size, MV_CAMERAS, generator, device)
        mask, valid = matte[:, :1], matte[:, 1:]
        return {
            "image": display * 2 - 1,
            "camera": camera,
            "target_cameras": torch.stack([camera, novel], dim=1),
            "target_sh": data["sh"][index],
            "rgb": (_linear(target) * mask)[:, None],
            "mask": mask[:, None],
            "valid": valid[:, None],
        }


def portrait_step(step: int, fraction: float) -> bool:
    """Whether `step` takes its batch from the portraits: exactly `fraction` of every run of
    steps, evenly spread (step k is a portrait step when floor((k+1) f) > floor(k f)), the same on
    every rank so DistributedDataParallel sees one kind of batch per step."""
    f = Fraction(fraction).limit_denominator(1000)
    return (step + 1) * f.numerator // f.denominator > step * f.numerator // f.denominator


class MixedSource:
    """Synthetic heads and real portraits, chosen per step by :func:`portrait_step`."""

    def __init__(self, synthetic: SyntheticSource, portraits: PortraitSource, fraction: float):
        self.synthetic, self.portraits, self.fraction = synthetic, portraits, fraction

    def prepare(self, device: torch.device) -> None:
        self.synthetic.prepare(device)
        self.portraits.prepare(device)

    def batch(self, step: int, rank: int, batch_size: int, device: torch.device) -> dict[str, Tensor]:
        source = self.portraits if portrait_step(step, self.fraction) else self.synthetic
        return source.batch(step, rank, batch_size, device)


class SequenceSource:
    """Synthetic clips for the temporal stage: `batch_size` people, `length` frames each.

    A batch holds (B clips, T frames; H output size):
        image [B, T, 3, S, S]; camera [B, T, 25]; target_sh [B, T, 9(, 3)] head DPR frame;
        rgb [B, T, 3, H, W] linear relit truth, zero outside the subject; mask [B, T, 1, H, W];
        flow_previous, flow_first [B, T, 2, H, W] exact backward flow (pixels) to the previous
        frame and to frame `first` (the first frame the temporal network renders), with
        valid_previous, valid_first [B, T, 1, H, W] (visible in both frames).
    """

    def __init__(self, config: TrainConfig):
        self.seed = config.seed
        self.network = get_config(config.model)
        self.window = self.network.temporal_window
        self.length = config.sequence_length or self.window + 4
        if self.length < self.window + 2:
            raise ValueError(f"sequence_length {self.length} is too short: the temporal window is {self.window} "
                             f"frames, so clips need at least {self.window + 2}")
        self.coloured = config.coloured_lights
        self._generators: dict[str, object] = {}

    def prepare(self, device: torch.device) -> None:
        from .synthetic import SyntheticHeads

        if str(device) not in self._generators:
            self._generators[str(device)] = SyntheticHeads(self.network.image_size, device, coloured=self.coloured)

    def batch(self, step: int, rank: int, batch_size: int, device: torch.device) -> dict[str, Tensor]:
        self.prepare(device)
        heads = self._generators[str(device)]
        generator = _generator(self.seed, step, rank, device)
        clips = [heads.sequence(self.length, generator, flow_reference=self.window) for _ in range(batch_size)]
        size = self.network.output_resolution
        scale = size / self.network.image_size

        def stack(name: str) -> Tensor:
            frames = torch.stack([c[name] for c in clips])  # [B, T, C, S, S]
            if frames.shape[-1] != size:
                frames = F.interpolate(frames.flatten(0, 1), size=(size, size), mode="area").unflatten(0, frames.shape[:2])
            return frames * scale if name.startswith("flow") else frames

        mask = stack("mask")
        cameras = torch.stack([c["camera"] for c in clips])
        return {
            "image": torch.stack([c["image"] for c in clips]),
            "camera": cameras,
            "target_sh": sh.camera_to_head(torch.stack([c["target_sh"] for c in clips]), split_label(cameras.flatten(0, 1))[0]
                                           .unflatten(0, cameras.shape[:2])).float(),
            "rgb": stack("target_rgb") * mask,
            "mask": mask,
            "flow_previous": stack("flow_previous"),
            "valid_previous": (stack("valid_previous") > 0.99).float(),
            "flow_first": stack("flow_reference"),
            "valid_first": (stack("valid_reference") > 0.99).float(),
        }


def make_data(config: TrainConfig):
    """The data source a configuration names (its stage, data and portrait settings)."""
    if config.data != "synthetic":
        raise ValueError(f"unknown training data {config.data!r}; available: 'synthetic'")
    if config.stage == "temporal":
        return SequenceSource(config)
    synthetic = SyntheticSource(config)
    if config.portraits and config.portrait_fraction > 0:
        return MixedSource(synthetic, PortraitSource(config), config.portrait_fraction)
    return synthetic
