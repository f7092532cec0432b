"""Checkpoints: safetensors files with the model config in their metadata, and conversion of the
released `model.pth` (official key names, PAPER_MODEL.md 1.5) into this project's layout.

A Relight checkpoint is a safetensors file whose metadata holds:
    "format": "relight-checkpoint", "format_version": "1",
    "config": RelighterConfig as JSON, plus free-form provenance ("source", "note").
Nothing in a checkpoint is executable.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from .models.albedo_encoder import official_key_rules as albedo_encoder_rules
from .models.config import RelighterConfig, get_config
from .models.relighter import Relighter

FORMAT = "relight-checkpoint"
FORMAT_VERSION = "1"


class CheckpointError(ValueError):
    """A file is not a usable Relight checkpoint; the message says what it is and what was expected."""


# --------------------------------------------------------------------------------------------
# Saving and loading
# --------------------------------------------------------------------------------------------


def save_checkpoint(path: str | os.PathLike, state_dict: dict[str, Tensor], config: RelighterConfig, **provenance: str) -> None:
    """Write `state_dict` and `config` to `path` atomically (temporary file, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": config.to_json(), **provenance}
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; checkpoints are shared data
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_checkpoint(path: str | os.PathLike, expected_config: str | None = None) -> tuple[dict[str, Tensor], RelighterConfig, dict]:
    """Read a Relight checkpoint -> (state dict, config, metadata). Raises CheckpointError otherwise."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        kind = describe_file(path)
        raise CheckpointError(f"{path} is {kind}, not a Relight checkpoint (a .safetensors file); "
                              f"convert a released model.pth with `relight convert`") from error
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file without Relight metadata ({len(tensors)} tensors), "
                              f"not a Relight checkpoint; convert released weights with `relight convert`")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {metadata.get('format_version')!r}; "
                              f"this Relight reads version {FORMAT_VERSION}")
    config = RelighterConfig.from_json(metadata["config"])
    if expected_config is not None and config.name != expected_config:
        raise CheckpointError(f"{path} is a checkpoint for the {config.name!r} config, "
                              f"but the {expected_config!r} config was expected")
    return tensors, config, metadata


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", expected_config: str | None = None) -> Relighter:
    """Build the network a checkpoint describes and load its weights (eval mode, deterministic)."""
    tensors, config, _ = read_checkpoint(path, expected_config)
    model = Relighter(config)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match the {config.name!r} network: "
                              f"{len(missing)} missing tensors (e.g. {missing[:3]}), "
                              f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    return model.to(device).eval()


def describe_file(path: Path) -> str:
    """A short human description of what a file looks like, for error messages."""
    with open(path, "rb") as f:
        head = f.read(9)
    header_size = int.from_bytes(head[:8], "little") if len(head) == 9 else 0
    if head[8:9] == b"{" and 2 <= header_size < path.stat().st_size:
        return "a safetensors file"
    if head[:2] == b"PK":
        return "a zip archive (a PyTorch .pth file?)"
    if head[:1] == b"\x80":
        return "a Python pickle"
    if head[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xe1"):
        return "an image"
    if not head:
        return "an empty file"
    return "not a checkpoint format Relight knows"


# --------------------------------------------------------------------------------------------
# Conversion of the released checkpoint (official key names)
# --------------------------------------------------------------------------------------------

G = r"encoders\.eg3d\.G\."
_STYLE_LAYER = r"(conv0|conv1|torgb)\.(weight|bias|noise_strength|noise_const|affine\.weight|affine\.bias)"

# Official keys that never influence an output: the GAN backbone the encoders replace, its pose
# mapping, NeRFFaceLighting's copy source of the shading blocks, the unused mapping_lit average,
# FIR buffers (rebuilt here) and the super-resolution noise (its noise mode is "none").
IGNORED = [
    G + r"backbone\.synthesis\..*",
    G + r"backbone\.synthesis_lit\..*",
    G + r"backbone\.mapping\.(embed|fc\d+)\..*",
    G + r"backbone\.mapping_lit\.w_avg",
    r".*\.resample_filter",
    G + r"superresolution\.block\d\.conv\d\.(noise_strength|noise_const)",
]

RENAMES = [
    (G + r"backbone\.mapping_lit\.embed\.(.*)", r"lighting.embed.\1"),
    (G + r"backbone\.mapping_lit\.fc0\.(.*)", r"lighting.fc.\1"),
    (G + r"backbone\.mapping\.w_avg", r"planes_to_style.w_avg"),
    (r"encoders\.shading_encoder\.mapping_x\.conv1\.(.*)", r"shading_encoder.lift.0.\1"),
    (r"encoders\.shading_encoder\.mapping_x\.conv2\.(.*)", r"shading_encoder.lift.2.\1"),
    (r"encoders\.shading_encoder\.mapping_x\.conv3\.(.*)", r"shading_encoder.lift.4.\1"),
    (r"encoders\.shading_encoder\.b(\d)\." + _STYLE_LAYER, r"shading_encoder.block\1.\2.\3"),
    (r"encoders\.planes2ws\.layers\.([02])\.(.*)", r"planes_to_style.convs.\1.\2"),
    (r"encoders\.planes2ws\.layers\.6\.(.*)", r"planes_to_style.linear.\1"),
    (G + r"superresolution\.block(\d)\." + _STYLE_LAYER, r"superres.block\1.\2.\3"),
    (G + r"decoder\.net\.0\.(.*)", r"renderer.decoders.albedo_hidden.\1"),
    (G + r"decoder\.net\.2\.(.*)", r"renderer.decoders.albedo_out.\1"),
    (G + r"shading_decoder\.net\.0\.(.*)", r"renderer.decoders.shading_hidden.\1"),
    (G + r"shading_decoder\.net\.2\.(.*)", r"renderer.decoders.shading_out.\1"),
]

# Temporal net: 1x1 convs become linears; ConvTranspose2d weights are stored [in, out, 1, 1].
_TEMPORAL_CONVS = {
    "combine_channels": ("combine", False),
    "input_convs1": ("albedo_in", False),
    "input_convs2": ("shading_in", False),
    "output_conv1": ("albedo_head.expand", True),
    "output_conv1_2": ("albedo_head.weigh", True),
    "output_conv2": ("shading_head.expand", True),
    "output_conv2_2": ("shading_head.weigh", True),
}
_TEMPORAL_BLOCKS = {
    "transformer_blocks_stream1": ("albedo_self", "self_attention"),
    "transformer_blocks_stream2": ("shading_self", "self_attention"),
    "cross_attention_blocks": ("cross", "cross_attention"),
}


def _convert_temporal(official: dict[str, Tensor], used: set[str]) -> dict[str, Tensor]:
    """The released temporal net -> TemporalNet tensors (value and output projections folded)."""
    out: dict[str, Tensor] = {}

    def take(key: str) -> Tensor:
        used.add(key)
        return official[key]

    for name, (ours, transposed) in _TEMPORAL_CONVS.items():
        weight = take(f"attention.{name}.weight")[:, :, 0, 0]
        out[f"temporal.{ours}.weight"] = weight.t().contiguous() if transposed else weight
        out[f"temporal.{ours}.bias"] = take(f"attention.{name}.bias")
    layers = {int(m.group(1)) for k in official if (m := re.match(r"attention\.cross_attention_blocks\.(\d+)\.", k))}
    for i in sorted(layers):
        for group, (ours, attention) in _TEMPORAL_BLOCKS.items():
            src, dst = f"attention.{group}.{i}.", f"temporal.layers.{i}.{ours}."
            in_weight, in_bias = take(src + f"{attention}.in_proj_weight"), take(src + f"{attention}.in_proj_bias")
            used.add(src + f"{attention}.in_proj_weight")  # q and k rows have no effect (sequence length 1)
            channels = in_weight.shape[1]
            value_w, value_b = in_weight[2 * channels:].double(), in_bias[2 * channels:].double()
            out_w, out_b = take(src + f"{attention}.out_proj.weight").double(), take(src + f"{attention}.out_proj.bias").double()
            out[dst + "mix.weight"] = (out_w @ value_w).float()
            out[dst + "mix.bias"] = (out_w @ value_b + out_b).float()
            for part in ("feedforward.0", "feedforward.2", "norm1", "norm2"):
                target = part.replace("feedforward", "ffn")
                out[dst + f"{target}.weight"] = take(src + f"{part}.weight")
                out[dst + f"{target}.bias"] = take(src + f"{part}.bias")
    return out


def convert_official(official: dict[str, Tensor]) -> dict[str, Tensor]:
    """Map a released `Relighting` state dict (official key names) to a `Relighter('paper')` state dict.

    Raises CheckpointError when an official key is neither mapped nor known to be unused.
    """
    rules = [(re.compile(p), r) for p, r in albedo_encoder_rules() + RENAMES]
    ignored = [re.compile(p) for p in IGNORED]
    converted: dict[str, Tensor] = {}
    used: set[str] = set()
    if any(k.startswith("attention.") for k in official):
        converted.update(_convert_temporal(official, used))
    for key, tensor in official.items():
        if key in used or any(p.fullmatch(key) for p in ignored):
            continue
        for pattern, replacement in rules:
            if pattern.fullmatch(key):
                converted[pattern.sub(replacement, key)] = tensor.float()
                break
        else:
            raise CheckpointError(f"official key {key!r} is not known to the converter; "
                                  f"is this the released PortraitRelighting model.pth?")
    return converted


def read_official_pth(path: str | os.PathLike) -> dict[str, Tensor]:
    """Load a released model.pth (a plain state dict) without executing code (torch weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for foreign files
        raise CheckpointError(f"{path} is {describe_file(path)} that torch cannot read as a state dict "
                              f"({type(error).__name__}); expected the released model.pth") from error
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is a PyTorch file but not a plain state dict of tensors; "
                              f"expected the released model.pth")
    if not any(k.startswith("encoders.") for k in state):
        raise CheckpointError(f"{path} is a state dict of {len(state)} tensors without the released "
                              f"'encoders.*' keys; it is not the PortraitRelighting model.pth")
    return state


def convert_file(source: str | os.PathLike, target: str | os.PathLike) -> RelighterConfig:
    """`relight convert`: released model.pth -> Relight safetensors checkpoint (paper config)."""
    official = read_official_pth(source)
    converted = convert_official(official)
    config = get_config("paper")
    _check_loads(converted, config, source)
    save_checkpoint(target, converted, config, source=f"converted from {Path(source).name}")
    return config


def _check_loads(state_dict: dict[str, Tensor], config: RelighterConfig, source) -> None:
    """Strictly load into the network once, so a wrong file fails before anything is written."""
    with torch.device("meta"):
        model = Relighter(config)
    try:
        model.load_state_dict(state_dict, strict=True, assign=True)
    except RuntimeError as error:
        raise CheckpointError(f"{source} does not fit the {config.name!r} network: {error}") from error


# --------------------------------------------------------------------------------------------
# Inspection
# --------------------------------------------------------------------------------------------


def inspect_file(path: str | os.PathLike) -> str:
    """A few lines saying what a weights file is and holds. Never executes code from the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    kind = describe_file(path)
    if kind == "a Python pickle":
        return _inspect_pickle(path)
    if kind.startswith("a zip archive"):
        official = read_official_pth(path)
        converted = convert_official(official)
        return (f"{path}: the released PortraitRelighting state dict ({len(official)} tensors, "
                f"{sum(t.numel() for t in official.values()) / 1e6:.1f} M values); "
                f"{len(converted)} of them drive the network. Convert it with `relight convert`.")
    if kind != "a safetensors file":
        raise CheckpointError(f"{path} is {kind}; expected a Relight checkpoint, a released model.pth "
                              f"or an EG3D-style .pkl")
    tensors, config, metadata = read_checkpoint(path)
    values = sum(t.numel() for t in tensors.values())
    lines = [f"{path}: Relight checkpoint, format {metadata['format_version']}, config {config.name!r}, "
             f"{len(tensors)} tensors, {values / 1e6:.2f} M values"]
    lines += [f"  {key}: {value}" for key, value in sorted(metadata.items()) if key not in ("format", "format_version", "config")]
    return "\n".join(lines)


def _inspect_pickle(path: Path) -> str:
    from .safe_pickle import read_eg3d_pickle

    content = read_eg3d_pickle(path)
    lines = [f"{path}: EG3D-style network pickle (read without running its code)"]
    for name, entry in content.items():
        if isinstance(entry, dict) and "tensors" in entry:
            values = sum(t.numel() for t in entry["tensors"].values())
            lines.append(f"  {name}: {entry['class_name']}, {len(entry['tensors'])} tensors, {values / 1e6:.2f} M values")
            rendering = entry["init_kwargs"].get("rendering_kwargs", {})
            if rendering:
                keys = ("depth_resolution", "depth_resolution_importance", "ray_start", "ray_end", "box_warp")
                lines.append("    rendering: " + ", ".join(f"{k}={rendering[k]}" for k in keys if k in rendering))
        else:
            lines.append(f"  {name}: {entry}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The shipped default weights
# --------------------------------------------------------------------------------------------

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "data" / "relight_small.safetensors"


def default_weights_status() -> str:
    """One sentence on the shipped weights (their "status" metadata), for commands to print."""
    if not DEFAULT_WEIGHTS.is_file():
        return "UNTRAINED: no weights are shipped; using seeded random weights of the 'small' network"
    return read_checkpoint(DEFAULT_WEIGHTS)[2].get("status", "trained")


def load_default_model(device: str | torch.device = "cpu") -> tuple[Relighter, bool]:
    """The shipped `small` weights -> (model, True); without them, seeded random weights of the
    `small` config -> (model, False). Callers print `default_weights_status()` either way."""
    if DEFAULT_WEIGHTS.is_file():
        return load_model(DEFAULT_WEIGHTS, device), True
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    model = Relighter(get_config("small"))
    torch.random.set_rng_state(generator_state)
    return model.to(device).eval(), False
