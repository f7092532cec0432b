"""Training configuration: a TOML file, not code edits.

Example (`configs/train/small.toml`):

    model = "small"
    steps = 20000
    batch_size = 8
    [loss]
    rgb = 1.0

A network is trained from scratch in three stages (the paper's dual encoders), then its temporal
network (:data:`STAGES`); each stage after the first starts from the previous one's weights.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class LossWeights:
    """Weights of the training losses (0 switches a term off)."""

    rgb: float = 1.0
    """L1 on the relit colour at the neural resolution, linear and sRGB-encoded."""
    rgb_sr: float = 1.0
    """L1 on the super-resolved colour (the paper's super-resolved domain)."""
    albedo: float = 1.0
    """L1 on the composited albedo."""
    shading: float = 1.0
    """L1 on the composited shading (E/pi of a white Lambertian surface)."""
    depth: float = 1.0
    """L1 on depth inside the ground-truth mask (geometry from the synthetic ground truth)."""
    mask: float = 1.0
    """L1 between the rendered opacity and the ground-truth mask."""
    structure: float = 0.5
    """1 - SSIM plus image-gradient L1 on the super-resolved colour: the substitute for the
    perceptual term, as no pretrained feature network can be downloaded here."""
    adversarial: float = 0.05
    """Non-saturating patch-GAN term on the super-resolved colour."""
    feature_matching: float = 0.5
    """L1 between discriminator features of output and ground truth: the substitute for the
    identity term (a face-recognition network is not available offline)."""
    temporal_short: float = 1.0
    """Temporal stage: short-term warping loss between consecutive output frames."""
    temporal_long: float = 0.5
    """Temporal stage: long-term warping loss between each output frame and the clip's first one."""


@dataclass(frozen=True)
class Stage:
    """What one training stage trains, against which loss terms, on which data."""

    trains: tuple[str, ...]
    """Prefixes of the parameter names it trains; every other parameter is frozen."""
    losses: frozenset[str]
    """The loss terms it computes (LossWeights names); the others are not computed at all."""
    portraits: bool = False
    """Whether a portrait pack may be mixed in (it has no albedo, shading or depth ground truth)."""
    eval_modules: tuple[str, ...] = ()
    """Frozen submodules that run as at inference (no dropout): the planes they feed the trained
    modules are then the ones those modules will see after training."""


STAGES: dict[str, Stage] = {
    # 1. The albedo tri-plane: albedo colour and geometry (density) from the input crop. Only the
    # albedo half of the decoders renders them; nothing here needs the shading path to be right.
    "albedo": Stage(trains=("albedo_encoder.", "renderer.decoders.albedo_"),
                    losses=frozenset({"albedo", "depth", "mask"})),
    # 2. The shading tri-plane under the target light, against the stage-1 albedo and geometry,
    # which stay frozen, the albedo decoder included: with rgb = albedo x shading, a trainable
    # albedo decoder would let the rgb term move albedo and density to absorb shading errors,
    # undoing stage 1 with no albedo, depth or mask term to hold them. The shading decoder is
    # trained (stage 1 never used it). No super-resolution yet: raw colour only.
    "shading": Stage(trains=("shading_encoder.", "lighting.", "renderer.decoders.shading_"),
                     losses=frozenset({"shading", "rgb"}), eval_modules=("albedo_encoder",)),
    # 3. Everything but the temporal network, every image term, portraits and the adversarial terms.
    "joint": Stage(trains=("albedo_encoder.", "lighting.", "shading_encoder.", "planes_to_style.", "renderer.",
                           "superres."),
                   losses=frozenset({"rgb", "rgb_sr", "albedo", "shading", "depth", "mask", "structure",
                                     "adversarial", "feature_matching"}),
                   portraits=True),
    # 4. The temporal network alone, on clips (relight_core.train.temporal_stage).
    "temporal": Stage(trains=("temporal.",),
                      losses=frozenset({"rgb", "rgb_sr", "structure", "temporal_short", "temporal_long"})),
}
RENAMED_STAGES = {"encoder": "joint"}
"""Old stage names, as checkpoints written before the albedo and shading stages record them."""


def recorded_stage(config: dict) -> str:
    """The stage of a recorded configuration (a checkpoint's state.json "config"), by today's name."""
    stage = config.get("stage", "joint")
    return RENAMED_STAGES.get(stage, stage)


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Every field can be set in the TOML file."""

    model: str = "small"
    """Network preset (relight_core.models.config)."""
    stage: str = "joint"
    """What is trained (STAGES): "albedo" (the albedo encoder and decoder), "shading" (the shading
    encoder and decoder and the lighting mapping), "joint" (everything but the temporal network)
    or "temporal" (only the temporal network, on synthetic sequences, the rest frozen)."""
    data: str = "synthetic"
    """Training data: "synthetic" (heads rendered with ground truth, relight_core.train.synthetic)."""
    portraits: str = ""
    """Joint stage: a portrait pack (scripts/prepare_portraits.py) mixed into the synthetic data."""
    portrait_fraction: float = 0.25
    """Share of steps whose batch comes from the portrait pack (when `portraits` is set)."""
    sequence_length: int = 0
    """Temporal stage: frames per synthetic clip; 0 = the network's temporal window + 4."""
    coloured_lights: float = 0.3
    """Share of synthetic samples lit by coloured (9x3) light."""
    steps: int = 20000
    batch_size: int = 4
    """Per-GPU batch size."""
    views: int = 2
    """Supervision views per sample (the input view and novel views)."""
    lr: float = 2e-4
    discriminator_lr: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.99)
    grad_clip: float = 10.0
    adversarial_start: int = 2000
    """Step from which the adversarial and feature-matching terms are on."""
    ema_half_life: int = 0
    """Half-life in steps of an exponential moving average of the trained weights (0: off). With
    it, a checkpoint's model.safetensors holds the average, what every command then uses (as
    StyleGAN's G_ema: steadier than the last step's weights), and its state holds the raw ones."""
    seed: int = 0
    deterministic: bool = False
    """Bit-identical runs on CUDA too (PyTorch's deterministic algorithms, with deterministic
    formulations of the ops that lack one: relight_core.models.sampling); costs some speed. The CPU
    is deterministic either way."""
    max_minutes: float = 0.0
    """Stop (with a checkpoint) after this many minutes of wall time; 0 = no limit. For chunked runs."""
    init: str = ""
    """Optional Relight checkpoint to start from (weights only): each stage after the first starts
    from the previous stage's weights."""
    log_every: int = 50
    sample_every: int = 1000
    checkpoint_every: int = 1000
    loss: LossWeights = field(default_factory=LossWeights)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        """Read a TOML file; unknown keys are an error naming the key."""
        raw = tomllib.loads(Path(path).read_text())
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: dict, source: str = "config") -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{source}: unknown training settings {unknown}; known: {sorted(known)}")
        loss_known = {f.name for f in dataclasses.fields(LossWeights)}
        loss_unknown = sorted(set(raw.get("loss", {})) - loss_known)
        if loss_unknown:
            raise ValueError(f"{source}: unknown loss weights {loss_unknown}; known: {sorted(loss_known)}")
        values = dict(raw)
        values["loss"] = LossWeights(**raw.get("loss", {}))
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        config = cls(**values)
        config.check(source)
        return config

    def check(self, source: str = "config") -> None:
        """Raise ValueError naming the setting for values that cannot work."""
        if self.stage not in STAGES:
            renamed = RENAMED_STAGES.get(self.stage)
            hint = f" ({self.stage!r} is now called {renamed!r})" if renamed else ""
            raise ValueError(f"{source}: stage must be one of {', '.join(map(repr, STAGES))}, got {self.stage!r}{hint}")
        if not 0.0 <= self.portrait_fraction <= 1.0:
            raise ValueError(f"{source}: portrait_fraction must be in [0, 1], got {self.portrait_fraction}")
        if self.portraits and not STAGES[self.stage].portraits:
            raise ValueError(f"{source}: portraits are used by the joint stage only; the {self.stage} stage trains on "
                             f"synthetic data (portraits have no albedo, shading or depth ground truth)")
        if self.sequence_length < 0:
            raise ValueError(f"{source}: sequence_length must be >= 0, got {self.sequence_length}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
