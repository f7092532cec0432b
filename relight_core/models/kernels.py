"""The one place that chooses between the fused CUDA kernels of `cuda_ext/` and their torch twins.

The torch code in this package is the reference (and the CPU and training path). A fused kernel
runs instead only when all of these hold:

* the extension loads: `relight_core._cuda` (built by `setup.py`) or the module `relight build-ext`
  left in the user cache. Importing relight_core never compiles anything; the first eligible call
  loads the extension once and remembers why it could not (`extension_status()`);
* the inputs are on a CUDA device, the module is in eval mode, autograd is off (no_grad or
  inference_mode: the kernels are forward-only) and the sizes are compiled in;
* `RELIGHT_KERNELS` is not "0" and no `reference_only()` block is active;
* a one-time self-check on the first real call agreed with the twin (a broken build falls back
  to the twin with a warning instead of rendering garbage).

Kernels: `fused_render` (cuda_ext/triplane_render*), the whole eval-mode `VolumeRenderer.forward`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor, nn

SOURCE_DIR = Path(__file__).resolve().parents[2] / "cuda_ext"
"""cuda_ext/ of this source tree (present in a checkout, not in a wheel)."""

ENV_SWITCH = "RELIGHT_KERNELS"
"""Environment variable: "0" forces the torch reference everywhere."""

SELF_CHECK_TOLERANCE = 1e-2
"""Largest relative L2 error of the first fused render against the fp32 twin. Real bugs give
errors of order 1; TF32 in the twin's decoder matmuls can give about 1e-3."""

_SUPPORTED_SIZES = {(32, 64), (8, 16)}  # (plane channels, decoder hidden width) compiled in cuda_ext
_MAX_SAMPLES, _MAX_LIGHTS = 128, 4

_extension = None
_extension_error: str | None = None
_reference_depth = 0
_self_checked: dict[tuple, bool] = {}


# ------------------------------------------------------------------------------------------
# loading and building
# ------------------------------------------------------------------------------------------


def source_files() -> list[Path]:
    """The .cpp/.cu sources of cuda_ext/, sorted (empty outside a source checkout)."""
    if not SOURCE_DIR.is_dir():
        return []
    return sorted(p for p in SOURCE_DIR.iterdir() if p.suffix in (".cpp", ".cu"))


def _build_tag() -> str:
    """Hash of the sources, headers and the torch/CUDA versions: a cached build is reused only if all match."""
    digest = hashlib.sha256(f"{torch.__version__}|{torch.version.cuda}".encode())
    for path in sorted(SOURCE_DIR.glob("*")) if SOURCE_DIR.is_dir() else []:
        if path.suffix in (".cpp", ".cu", ".h", ".cuh"):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def cache_dir() -> Path:
    """Where `relight build-ext` builds: $RELIGHT_CACHE (default ~/.cache/relight)/cuda_ext/<tag>."""
    root = Path(os.environ.get("RELIGHT_CACHE", Path.home() / ".cache" / "relight"))
    return root / "cuda_ext" / _build_tag()


def _module_name() -> str:
    return f"relight_cuda_{_build_tag()}"


def build_extension(verbose: bool = True):
    """Compile cuda_ext/ into the user cache with torch.utils.cpp_extension.load and return the module.

    Raises RuntimeError (with the compiler's reason) when there are no sources, no CUDA build of
    torch or no toolkit, or the compilation fails.
    """
    from torch.utils import cpp_extension

    sources = source_files()
    if not sources:
        raise RuntimeError(f"no CUDA sources at {SOURCE_DIR}: build-ext needs a source checkout of relight")
    if torch.version.cuda is None:
        raise RuntimeError(f"torch {torch.__version__} is a CPU-only build; install a CUDA build of torch first")
    if cpp_extension.CUDA_HOME is None:
        raise RuntimeError("no CUDA toolkit found (nvcc): install one or set CUDA_HOME")
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    module = cpp_extension.load(
        name=_module_name(), sources=[str(p) for p in sources], build_directory=str(folder),
        extra_cflags=["-O3"], extra_cuda_cflags=["-O3", "--use_fast_math"], verbose=verbose,
    )
    _remember(module, None)
    return module


def _remember(module, error: str | None) -> None:
    global _extension, _extension_error
    _extension, _extension_error = module, error


def _import_cached_build():
    """The module left by `relight build-ext` for these exact sources, or None."""
    built = sorted(cache_dir().glob(f"{_module_name()}*.so"))
    if not built:
        return None
    spec = importlib.util.spec_from_file_location(_module_name(), built[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_extension():
    """The compiled extension module, or None. Tried once per process; the reason is kept."""
    if _extension is not None or _extension_error is not None:
        return _extension
    reasons = []
    for name, load in (("relight_core._cuda", lambda: importlib.import_module("relight_core._cuda")),
                       (f"build-ext cache {cache_dir()}", _import_cached_build)):
        try:
            module = load()
        except (ImportError, OSError) as error:  # missing, or built against another torch
            reasons.append(f"{name}: {error}")
            continue
        if module is not None:
            _remember(module, None)
            return module
        reasons.append(f"{name}: not built")
    _remember(None, "; ".join(reasons) + " (run `relight build-ext`)")
    return None


def extension_status() -> str:
    """One line: where the extension was loaded from, or why it is not available."""
    module = load_extension()
    if module is None:
        return f"not available: {_extension_error}"
    return f"loaded from {getattr(module, '__file__', module.__name__)}"


def require_extension():
    """The extension module; RuntimeError with the reason when it cannot load (tests force kernels this way)."""
    module = load_extension()
    if module is None:
        raise RuntimeError(f"relight CUDA extension {extension_status()}")
    return module


# ------------------------------------------------------------------------------------------
# the switch
# ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def reference_only() -> Iterator[None]:
    """Run the torch reference for everything inside the block (tests, benchmarks, the self-check)."""
    global _reference_depth
    _reference_depth += 1
    try:
        yield
    finally:
        _reference_depth -= 1


def kernels_allowed() -> bool:
    """False inside `reference_only()` or when RELIGHT_KERNELS=0."""
    return _reference_depth == 0 and os.environ.get(ENV_SWITCH, "1") != "0"


# ------------------------------------------------------------------------------------------
# fused tri-plane renderer
# ------------------------------------------------------------------------------------------


def _render_problem_supported(renderer: nn.Module, albedo_planes: Tensor, shading_planes: Tensor) -> bool:
    cfg = renderer.config
    return ((cfg.plane_channels, cfg.decoder_hidden) in _SUPPORTED_SIZES
            and 4 <= cfg.coarse_samples <= _MAX_SAMPLES and 1 <= cfg.fine_samples <= _MAX_SAMPLES
            and shading_planes.ndim == 5 and 1 <= shading_planes.shape[0] <= _MAX_LIGHTS
            and albedo_planes.ndim == 4 and albedo_planes.shape[1] == 3 * cfg.plane_channels)


def use_fused_renderer(renderer: nn.Module, albedo_planes: Tensor, shading_planes: Tensor, cam2world: Tensor,
                       intrinsics: Tensor) -> bool:
    """Whether `VolumeRenderer.forward` should run `fused_render` for these inputs (see the module docstring)."""
    if not (kernels_allowed() and albedo_planes.is_cuda and shading_planes.is_cuda and not renderer.training
            and not torch.is_grad_enabled() and _render_problem_supported(renderer, albedo_planes, shading_planes)):
        return False
    if load_extension() is None:
        return False
    key = (albedo_planes.device, albedo_planes.dtype, shading_planes.shape[0], renderer.config.plane_channels,
           renderer.config.decoder_hidden)
    if key not in _self_checked:
        if torch.cuda.is_current_stream_capturing():
            return False  # the check synchronizes; a warm-up call before the capture runs it
        _self_checked[key] = _self_check(renderer, albedo_planes, shading_planes, cam2world, intrinsics)
    return _self_checked[key]


def _relative_error(value: Tensor, reference: Tensor) -> float:
    value, reference = value.double(), reference.double()
    return float((value - reference).norm() / reference.norm().clamp_min(1e-12))


def _self_check(renderer: nn.Module, albedo_planes: Tensor, shading_planes: Tensor, cam2world: Tensor,
                intrinsics: Tensor) -> bool:
    """Compare the first fused render with the fp32 twin on the same inputs; warn and refuse on mismatch."""
    try:
        fused = fused_render(renderer, albedo_planes, shading_planes, cam2world, intrinsics)
        with reference_only(), torch.autocast("cuda", enabled=False):
            reference = renderer(albedo_planes.float(), shading_planes.float(), cam2world.float(), intrinsics.float())
        errors = {key: _relative_error(fused[key], reference[key]) for key in reference}
    except RuntimeError as error:
        warnings.warn(f"relight: fused renderer failed ({error}); using the torch renderer", RuntimeWarning)
        return False
    worst = max(errors, key=errors.get)
    if not errors[worst] < SELF_CHECK_TOLERANCE:  # also catches NaN
        warnings.warn(f"relight: fused renderer disagrees with the torch renderer ({worst}: relative error "
                      f"{errors[worst]:.2e}); using the torch renderer. Rebuild with `relight build-ext` and run "
                      "tests/models/test_kernels.py", RuntimeWarning)
        return False
    return True


def _decoder_tensors(decoders: nn.Module) -> list[Tensor]:
    """The eight float32 decoder tensors the kernel takes, with the equalized gains applied (as in F.linear calls)."""
    out = []
    for layer in (decoders.albedo_hidden, decoders.albedo_out, decoders.shading_hidden, decoders.shading_out):
        out.append((layer.weight * layer.weight_gain).float().contiguous())
        out.append((layer.bias * layer.bias_gain).float().contiguous())
    return out


def fused_render(renderer: nn.Module, albedo_planes: Tensor, shading_planes: Tensor, cam2world: Tensor,
                 intrinsics: Tensor) -> dict[str, Tensor]:
    """`VolumeRenderer.forward` in eval mode by the fused CUDA kernel (forward only), always.

    Same arguments and returned dict as `VolumeRenderer.forward`; all outputs float32. Planes in
    float32, bfloat16 or float16 are read as they are (other dtypes, or mixed ones, as float32);
    rays and all arithmetic are float32 whatever the autocast state. Raises RuntimeError when the
    extension is not available.
    """
    from .renderer import camera_rays  # renderer imports this module

    extension = require_extension()
    cfg = renderer.config
    batch, _, res, _ = albedo_planes.shape
    lights, channels, n = shading_planes.shape[0], cfg.plane_channels, cfg.neural_resolution
    dtype = albedo_planes.dtype
    if dtype not in (torch.float32, torch.bfloat16, torch.float16) or shading_planes.dtype != dtype:
        dtype = torch.float32
    device = albedo_planes.device
    with torch.autocast(device.type, enabled=False):
        origins, directions = camera_rays(cam2world.float(), intrinsics.float(), n)
        # Each plane channels-last, so one bilinear tap reads C contiguous values.
        albedo = albedo_planes.to(dtype).reshape(batch, 3, channels, res, res).permute(0, 1, 3, 4, 2).contiguous()
        shading = (shading_planes.to(dtype).reshape(lights, batch, 3, channels, res, res)
                   .permute(0, 1, 2, 4, 5, 3).contiguous())
        coarse = torch.linspace(cfg.ray_start, cfg.ray_end, cfg.coarse_samples, device=device)
        fine_u = torch.linspace(0, 1, cfg.fine_samples, device=device)
        features, albedo_image, shading_image, depth, opacity = extension.triplane_render_fwd(
            albedo, shading, origins.contiguous(), directions.contiguous(), coarse, fine_u,
            *_decoder_tensors(renderer.decoders), float(cfg.box_warp))
    return {
        "features": features.view(lights, batch, channels, n, n),
        "albedo": albedo_image.view(batch, channels, n, n),
        "shading": shading_image.view(lights, batch, 1, n, n),
        "depth": depth.view(batch, 1, n, n),
        "opacity": opacity.view(batch, 1, n, n),
    }


def fused_report() -> str:
    """One line for benchmark tables: which fused kernels ran in this process, or why none did."""
    if load_extension() is None:
        return f"none ({_extension_error})"
    if not _self_checked:
        return "none (extension loaded; no eligible call yet)"
    refused = [key for key, passed in _self_checked.items() if not passed]
    if refused:
        return f"renderer refused after a failed self-check for {refused} (see the warnings)"
    return "renderer (self-check passed)"


# ------------------------------------------------------------------------------------------
# `relight build-ext`
# ------------------------------------------------------------------------------------------


def _add_build_ext(parser) -> None:
    parser.add_argument("--quiet", action="store_true", help="hide the compiler output unless the build fails")


def _run_build_ext(args) -> int:
    """Build cuda_ext/ into the user cache, then report what the dispatch will load."""
    import sys

    print(f"relight build-ext: sources {', '.join(p.name for p in source_files()) or 'none'}; cache {cache_dir()}")
    try:
        build_extension(verbose=not args.quiet)
    except (RuntimeError, OSError, ImportError) as error:  # compiler errors arrive as RuntimeError
        print(f"relight build-ext: build failed: {error}", file=sys.stderr)
        return 1
    print(f"relight build-ext: ok; the fused kernels are {extension_status()}")
    if not torch.cuda.is_available():
        print("relight build-ext: note: no CUDA GPU visible here, so nothing will use them on this machine")
    return 0
