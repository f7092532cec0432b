"""Training loop: the three encoder stages (albedo, shading, joint) and the temporal stage.

One process per GPU (`torchrun`), DistributedDataParallel when there are several. The loop calls
`train_step(step)` and gets back named losses. `config.stage` picks what is trained and against
which losses (relight_core.train.config.STAGES): "albedo", "shading" and "joint" render
multi-view images of synthetic heads with ground truth (the joint stage optionally mixed with real
portraits); "temporal" trains only the temporal network, on synthetic clips
(relight_core.train.temporal_stage). Checkpoints are a folder per save:

    step_00001000/model.safetensors        a Relight checkpoint (usable by every command)
    step_00001000/state-0000K.safetensors  optimizers, discriminator and RNG states, in shards
                                           small enough to carry between machines
    step_00001000/state.json               step, config and the non-tensor optimizer settings

Resuming from one continues bit-exactly: the data of step k depends only on (seed, step, rank),
and every random generator's state is saved.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Protocol

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoints import load_model, save_checkpoint
from ..io import write_text_atomic
from ..models.config import get_config
from ..models.relighter import Relighter
from . import losses
from .config import STAGES, TrainConfig, recorded_stage
from .export import zero_untrained_temporal_outputs

SHARD_BYTES = 15 * 2**20
TRUTH_OF_TERM = {"rgb": "rgb", "rgb_sr": "rgb", "structure": "rgb", "mask": "mask", "albedo": "albedo",
                 "shading": "shading", "depth": "depth"}
"""The batch entry each image term compares with: a term whose truth a batch lacks is skipped
(portraits have no albedo, shading or depth)."""


class DataSource(Protocol):
    """Where batches come from. `batch` must be a pure function of (step, rank) for exact resume.

    A batch of the albedo, shading and joint stages holds (B samples, V rendered views, U <= V
    supervised views, the first U of them; S input size, H output size):
        image [B, 3, S, S] input crop, display sRGB in [-1, 1]; camera [B, 25] its EG3D label;
        target_cameras [B, V, 25]; target_sh [B, 9] or [B, 9, 3] (head DPR frame);
        rgb [B, U, 3, H, W] linear in [0, 1], zero outside the subject; mask [B, U, 1, H, W];
        optional (their loss terms are skipped without them): albedo [B, U, 3, H, W],
        shading [B, U, 1 or 3, H, W], depth [B, U, 1, H, W]; valid [B, U, 1, H, W] (pixels that
        carry a loss; default all).
    The temporal stage's batches are clips (relight_core.train.data.SequenceSource).
    """

    def prepare(self, device: torch.device) -> None:
        """Set up everything that draws from the global RNG (called before a resume restores it)."""

    def batch(self, step: int, rank: int, batch_size: int, device: torch.device) -> dict[str, Tensor]: ...


class MultiViewRender(nn.Module):
    """The differentiable part of a step, as one module so DistributedDataParallel can wrap it."""

    def __init__(self, model: Relighter):
        super().__init__()
        self.model = model

    def forward(self, image: Tensor, target_cameras: Tensor, target_sh: Tensor) -> dict[str, Tensor]:
        """image [B, 3, S, S], target_cameras [B, V, 25], target_sh [B, 9(, 3)] -> renders of B*V views."""
        views = target_cameras.shape[1]
        planes = self.model.encode(image)
        shading = self.model.shade(planes, target_sh)
        style = self.model.planes_to_style(planes)
        return self.model.render(
            planes.repeat_interleave(views, 0),
            shading.repeat_interleave(views, 1),
            target_cameras.flatten(0, 1),
            style.repeat_interleave(views, 0),
        )


def setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device) from torchrun's environment; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def _resize(images: Tensor, size: int) -> Tensor:
    """[N, C, H, W] -> [N, C, size, size] by area averaging (exact box filter for integer factors)."""
    return images if images.shape[-1] == size else F.interpolate(images, size=(size, size), mode="area")


class Trainer:
    """Owns the model, the discriminator, their optimizers and the checkpoint folder."""

    def __init__(self, config: TrainConfig, data: DataSource, out_dir: str | Path):
        from .temporal_stage import TemporalRender

        self.config = config
        self.data = data
        self.out_dir = Path(out_dir)
        if config.deterministic:  # cuBLAS reads it when it starts: before anything runs on the GPU
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        self.rank, self.world, self.device = setup_distributed()
        torch.manual_seed(config.seed)
        data.prepare(self.device)
        model = load_model(config.init) if config.init else Relighter(get_config(config.model))
        if model.config.name != config.model:
            raise ValueError(f"init {config.init} holds the {model.config.name!r} network, but the configuration "
                             f"trains {config.model!r}")
        self.stage = STAGES[config.stage]
        self.temporal_stage = config.stage == "temporal"
        recorded = _metadata(config.init) if config.init else {}
        self.temporal_steps_before = int(recorded.get("temporal_steps", "0"))
        # A run started from earlier weights draws its data after theirs: restarts see new data.
        self.data_offset = int(recorded.get("data_steps", "0"))
        if self.temporal_stage and self.temporal_steps_before == 0:
            # An untrained temporal network starts from zero residuals (video = per-frame images),
            # not from the random output layers the earlier stages carried along untouched.
            zero_untrained_temporal_outputs(model)
        self.model = model.to(self.device)
        for name, parameter in self.model.named_parameters():
            parameter.requires_grad_(name.startswith(self.stage.trains))
        self._set_mode()
        # unwrapped, for rank-0-only sampling
        self.plain_render = TemporalRender(self.model) if self.temporal_stage else MultiViewRender(self.model)
        self.render = self.plain_render
        self.discriminator = losses.PatchDiscriminator().to(self.device)
        self.trained_names = [name for name, p in self.model.named_parameters() if p.requires_grad]
        self.trained = [p for p in self.model.parameters() if p.requires_grad]
        # the moving average of the trained weights, starting from the initial ones
        self.average = [p.detach().clone() for p in self.trained] if config.ema_half_life else []
        self.optimizer = torch.optim.Adam(self.trained, lr=config.lr, betas=config.betas)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=config.discriminator_lr, betas=config.betas)
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.render = nn.parallel.DistributedDataParallel(self.plain_render, device_ids=ids,
                                                              find_unused_parameters=not self.temporal_stage)
            self.discriminator = nn.parallel.DistributedDataParallel(self.discriminator, device_ids=ids)
        self.step = 0

    def _set_mode(self) -> None:
        """Training mode, but the stage's frozen `eval_modules` in eval mode. In the temporal stage
        the whole network runs as at inference (no ray jitter, constant noise), the way the
        temporal network will see it."""
        self.model.train(not self.temporal_stage)
        for name in self.stage.eval_modules:
            self.model.get_submodule(name).eval()

    # ------------------------------------------------------------------ one step
    @torch.enable_grad()
    def train_step(self, step: int) -> dict[str, float]:
        """One optimisation step of generator and discriminator; returns the named losses."""
        if self.temporal_stage:
            return self._temporal_step(step)
        cfg, w = self.config, self.config.loss
        batch = self.data.batch(self.data_offset + step, self.rank, cfg.batch_size, self.device)
        out = self.render(batch["image"], batch["target_cameras"], batch["target_sh"])
        views, supervised = batch["target_cameras"].shape[1], batch["rgb"].shape[1]

        def seen(x: Tensor) -> Tensor:  # the supervised views of a render output [B*V, ...]
            return x if supervised == views else x.unflatten(0, (-1, views))[:, :supervised].flatten(0, 1)

        names = [k for k in ("rgb", "albedo", "shading", "depth", "mask", "valid") if k in batch]
        target = {k: batch[k].flatten(0, 1) for k in names}
        neural = self.model.config.neural_resolution
        small = {k: _resize(v, neural) for k, v in target.items()}
        valid, small_valid = target.get("valid"), small.get("valid")
        raw_rgb, sr_rgb = (seen(out["image_raw"]) + 1) / 2, (seen(out["image"]) + 1) / 2
        structure_pair = (sr_rgb, target["rgb"]) if valid is None else (sr_rgb * valid, target["rgb"] * valid)
        image_terms = {
            "rgb": lambda: losses.masked_l1(raw_rgb, small["rgb"], small_valid)
            + losses.masked_l1(losses.srgb_encode(raw_rgb), losses.srgb_encode(small["rgb"]), small_valid),
            "rgb_sr": lambda: losses.masked_l1(sr_rgb, target["rgb"], valid),
            "albedo": lambda: losses.masked_l1((seen(out["albedo"]) + 1) / 2, small["albedo"]),
            "shading": lambda: losses.masked_l1(seen(out["shading"]), small["shading"], small["mask"]),
            "depth": lambda: losses.masked_l1(seen(out["depth"]), small["depth"], (small["mask"] > 0.99).float()),
            "mask": lambda: losses.masked_l1(seen(out["opacity"]), small["mask"], small_valid),
            "structure": lambda: losses.structure_loss(*structure_pair),
        }
        terms = {name: loss() for name, loss in image_terms.items()
                 if name in self.stage.losses and TRUTH_OF_TERM[name] in batch}
        adversarial = step >= cfg.adversarial_start and any(
            getattr(w, name) > 0 for name in ("adversarial", "feature_matching") if name in self.stage.losses)
        real_image = losses.srgb_encode(target["rgb"]) * 2 - 1
        fake_image = losses.srgb_encode((out["image"] + 1) / 2) * 2 - 1  # every view, novel ones too
        if adversarial:
            fake_logits, fake_features = self.discriminator(fake_image)
            with torch.no_grad():
                _, real_features = self.discriminator(real_image)
            terms["adversarial"] = losses.generator_adversarial(fake_logits)
            terms["feature_matching"] = losses.feature_matching([seen(f) for f in fake_features], real_features)
        result = self._update(terms)
        if adversarial:
            result["discriminator"] = self._discriminator_step(real_image, fake_image.detach())
        return result

    def _update(self, terms: dict[str, Tensor]) -> dict[str, float]:
        """Weighted sum, backward, clipped optimizer step (skipped when not finite); the logged values."""
        total = sum(getattr(self.config.loss, name) * value for name, value in terms.items())
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        finite = bool(torch.isfinite(grad_norm))
        if finite:  # a non-finite gradient skips the update (the step is logged as skipped)
            self.optimizer.step()
            if self.average:
                with torch.no_grad():
                    torch._foreach_lerp_(self.average, self.trained, 1 - 0.5 ** (1 / self.config.ema_half_life))
        result = {name: float(value.detach()) for name, value in terms.items()}
        result["grad_norm"] = float(grad_norm)
        result["skipped"] = float(not finite)
        result["total"] = float(total.detach())
        return result

    def _temporal_step(self, step: int) -> dict[str, float]:
        """One step of the temporal stage (relight_core.train.temporal_stage)."""
        from .temporal_stage import temporal_terms

        batch = self.data.batch(self.data_offset + step, self.rank, self.config.batch_size, self.device)
        out = self.render(batch["image"], batch["camera"], batch["target_sh"])
        config = self.model.config
        return self._update(temporal_terms(out, batch, config.temporal_window, config.neural_resolution))

    def _discriminator_step(self, real: Tensor, fake: Tensor) -> float:
        real_logits, _ = self.discriminator(real)
        fake_logits, _ = self.discriminator(fake)
        loss = losses.discriminator_adversarial(real_logits, fake_logits)
        self.d_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.d_optimizer.step()
        return float(loss.detach())

    # ------------------------------------------------------------------ checkpoints
    def _state_tensors(self) -> tuple[dict[str, Tensor], dict]:
        """Everything but the model weights, as tensors plus JSON-able settings."""
        tensors: dict[str, Tensor] = {}
        settings: dict = {}
        for name, optimizer in (("optimizer", self.optimizer), ("d_optimizer", self.d_optimizer)):
            state = optimizer.state_dict()
            settings[name] = {"param_groups": state["param_groups"]}
            for index, values in state["state"].items():
                for key, value in values.items():
                    tensors[f"{name}.{index}.{key}"] = value
        discriminator = self.discriminator.module if hasattr(self.discriminator, "module") else self.discriminator
        tensors.update({f"discriminator.{k}": v for k, v in discriminator.state_dict().items()})
        if self.average:  # model.safetensors holds the average; the raw weights go on from here
            tensors.update({f"raw.{name}": p.detach() for name, p in zip(self.trained_names, self.trained)})
        tensors["rng.cpu"] = torch.random.get_rng_state()
        if torch.cuda.is_available():
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        return tensors, settings

    def save(self) -> Path:
        """Write step_XXXXXXXX/ (rank 0 only) and point `latest` at it."""
        folder = self.out_dir / f"step_{self.step:08d}"
        if self.rank != 0:
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        temporal_steps = self.temporal_steps_before + (self.step if self.temporal_stage else 0)
        weights = self.model.state_dict()
        weights.update(zip(self.trained_names, self.average))  # the average, when there is one
        save_checkpoint(folder / "model.safetensors", weights, self.model.config,
                        source=f"relight training ({self.config.stage} stage), step {self.step}",
                        training_step=str(self.step), stage=self.config.stage, temporal_steps=str(temporal_steps),
                        data_steps=str(self.data_offset + self.step))
        tensors, settings = self._state_tensors()
        shards = _write_shards(folder, tensors)
        meta = {"step": self.step, "data_offset": self.data_offset, "config": self.config.to_dict(), "shards": shards,
                **settings}
        write_text_atomic(folder / "state.json", json.dumps(meta, indent=1))
        write_text_atomic(self.out_dir / "latest", folder.name)
        return folder

    def load(self, folder: Path) -> None:
        """Restore model, optimizers, discriminator and RNG states from a checkpoint folder."""
        from safetensors.torch import load_file

        meta = json.loads((folder / "state.json").read_text())
        stage = recorded_stage(meta["config"])
        if stage != self.config.stage:
            raise ValueError(f"{folder} is a checkpoint of the {stage} stage, but this configuration trains the "
                             f"{self.config.stage} stage: use another --out, or start from its weights with "
                             f"--init {folder / 'model.safetensors'} --fresh")
        self.model.load_state_dict(load_model(folder / "model.safetensors").state_dict())
        tensors: dict[str, Tensor] = {}
        for shard in meta["shards"]:
            tensors.update(load_file(str(folder / shard)))
        if self.average:
            with torch.no_grad():
                for name, parameter, average in zip(self.trained_names, self.trained, self.average):
                    average.copy_(parameter)
                    # a checkpoint written without an average has its raw weights in model.safetensors
                    if f"raw.{name}" in tensors:
                        parameter.copy_(tensors[f"raw.{name}"])
        for name, optimizer in (("optimizer", self.optimizer), ("d_optimizer", self.d_optimizer)):
            state: dict = {}
            for key, value in tensors.items():
                if key.startswith(name + "."):
                    _, index, field = key.split(".", 2)
                    state.setdefault(int(index), {})[field] = value
            optimizer.load_state_dict({"state": state, **meta[name]})
        discriminator = self.discriminator.module if hasattr(self.discriminator, "module") else self.discriminator
        discriminator.load_state_dict({k[len("discriminator."):]: v for k, v in tensors.items() if k.startswith("discriminator.")})
        torch.random.set_rng_state(tensors["rng.cpu"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.step = meta["step"]
        self.data_offset = meta.get("data_offset", 0)  # checkpoints from before the offset drew from 0

    def latest(self) -> Path | None:
        pointer = self.out_dir / "latest"
        return self.out_dir / pointer.read_text().strip() if pointer.is_file() else None

    # ------------------------------------------------------------------ the loop
    def run(self, resume: bool = True) -> Path:
        """Train to `config.steps` (or `max_minutes`), logging, sampling and checkpointing; returns the last checkpoint."""
        with deterministic_algorithms(self.config.deterministic):
            return self._run(resume)

    def _run(self, resume: bool) -> Path:
        from tqdm import tqdm

        if resume and (latest := self.latest()) is not None:
            self.load(latest)
        cfg, start = self.config, time.monotonic()
        log = self.out_dir / "log.jsonl"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=cfg.steps, initial=self.step, desc="training", disable=self.rank != 0)
        skipped = 0
        window: dict[str, list[float]] = {}  # every value since the last log line (mixed data logs both kinds)
        try:
            while self.step < cfg.steps:
                step_start = time.monotonic()
                result = self.train_step(self.step)
                self.step += 1
                bar.update()
                skipped = skipped + 1 if result["skipped"] else 0
                if skipped >= 10:
                    raise FloatingPointError(f"10 non-finite steps in a row up to step {self.step}: {result}")
                for key, value in {"seconds": time.monotonic() - step_start, **result}.items():
                    window.setdefault(key, []).append(value)
                if self.rank == 0 and self.step % cfg.log_every == 0:
                    means = {key: sum(values) / len(values) for key, values in window.items()}
                    record = {"step": self.step, **means, "seconds": round(means["seconds"], 4)}
                    with open(log, "a") as f:
                        f.write(json.dumps(record) + "\n")
                    bar.set_postfix(total=f"{means['total']:.3f}")
                    window.clear()
                if self.step % cfg.sample_every == 0:
                    self.write_samples()
                out_of_time = cfg.max_minutes and time.monotonic() - start > 60 * cfg.max_minutes
                if self.step % cfg.checkpoint_every == 0 or out_of_time:
                    self.save()
                if out_of_time:
                    break
        except KeyboardInterrupt:
            if self.rank == 0:
                print(f"interrupted: saving step {self.step}")
        finally:
            bar.close()
        return self.save()

    @torch.no_grad()
    def write_samples(self) -> Path | None:
        """A PNG of the first samples of a fixed batch: input, truth, render, albedo, shading, depth."""
        if self.rank != 0:
            return None
        from .preview import sample_sheet

        self.model.eval()
        try:
            batch = self.data.batch(10**9, 0, min(4, self.config.batch_size), self.device)
            if self.temporal_stage:  # the output frames of the first clip, one per row
                out = self.plain_render(batch["image"][:1], batch["camera"][:1], batch["target_sh"][:1])
                window = self.model.config.temporal_window
                batch = {"image": batch["image"][0, window:], "rgb": batch["rgb"][0, window:, None]}
            else:
                out = self.plain_render(batch["image"], batch["target_cameras"][:, :1], batch["target_sh"])
        finally:
            self._set_mode()
        path = self.out_dir / "samples" / f"step_{self.step:08d}.png"
        sample_sheet(batch, out, path)
        return path


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool):
    """PyTorch's deterministic algorithms while training when `enabled` (restored afterwards: the
    setting is process-wide)."""
    if not enabled:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]


def _metadata(path: str | Path) -> dict[str, str]:
    """A checkpoint's metadata (its header only; load_model has already checked the file). The
    trainer reads "temporal_steps" (temporal-stage steps behind the weights) and "data_steps"
    (steps of the data stream behind them) from it."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def _write_shards(folder: Path, tensors: dict[str, Tensor]) -> list[str]:
    """Save tensors into safetensors files of at most SHARD_BYTES each; returns the file names."""
    from safetensors.torch import save_file

    groups: list[dict[str, Tensor]] = [{}]
    size = 0
    for key in sorted(tensors):
        tensor = tensors[key].detach().cpu().contiguous()
        nbytes = tensor.numel() * tensor.element_size()
        if groups[-1] and size + nbytes > SHARD_BYTES:
            groups.append({})
            size = 0
        groups[-1][key] = tensor
        size += nbytes
    names = []
    for index, group in enumerate(groups, start=1):
        name = f"state-{index:05d}.safetensors"
        tmp = folder / f".{name}.tmp"
        save_file(group, str(tmp))
        tmp.replace(folder / name)
        names.append(name)
    return names
