"""Fast whole-frame inference on CUDA: converted weights, static buffers, one CUDA graph per frame.

`prepare_inference` converts a model once for inference (bf16 weights instead of autocast,
channels-last conv stacks, attention that suits the GPU's kernels); `compile_temporal` and
`compile_encoders` torch.compile the per-texel temporal network and the convolutional encoders.

`FastVideoRelighter` computes exactly what `VideoRelighter` computes (same modules, same order;
the fused renderer where models/kernels.py allows it) but keeps the temporal window in static
texel-token tensors (the temporal network's own layout) and, once the window is full and a few
frames have warmed up, replays one captured CUDA graph per frame: the ~1400 kernel launches of a
frame cost one launch. Nothing in a frame synchronizes with the host (the graph requires it).

`graphed(fn)` captures any call on static inputs (the benchmark times each stage this way).
`compile_dense_modules` (the benchmark's older "compile" mode) compiles every dense module of an
autocast model, the super-resolution included.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import Tensor

from .relighter import Relighter, VideoRelighter, _with_light_count
from .stylegan import ModulatedConv
from .temporal import planes_to_tokens, tokens_to_planes
from .transformer import FLASH_MAX_HEAD_DIM, EfficientSelfAttention

WARM_FRAMES = 2
"""Steady-state frames run eagerly (on a side stream) before the capture: lazy initialisation,
cuDNN/cuBLAS plan selection and torch.compile all happen there, never inside the graph."""

OUTPUT_KEYS = ("image", "image_raw", "albedo", "shading", "depth", "opacity")
"""Images `FastVideoRelighter.step` returns (copied out of the graph's static outputs)."""


def _uncached_autocast() -> torch.autocast:
    """The current CUDA autocast state with its weight-cast cache off: a graph must not point at
    cached casts that die when the caller's autocast block ends."""
    return torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda"),
                          enabled=torch.is_autocast_enabled("cuda"), cache_enabled=False)


def graphed(fn: Callable[[], object], warmup: int = WARM_FRAMES) -> Callable[[], object]:
    """Capture `fn` (no arguments, static inputs and shapes) into a CUDA graph; returns its replay.

    `fn` runs `warmup` times on a side stream first. The replay returns the static outputs of the
    capture, overwritten by every replay.
    """
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), _uncached_autocast():
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), _uncached_autocast():
        outputs = fn()

    def replay() -> object:
        graph.replay()
        return outputs

    return replay


def compile_dense_modules(model: Relighter, mode: str = "default") -> None:
    """torch.compile, in place, the encoders, the super-resolution and the temporal network.

    Compilation happens at their first call (slow: minutes for `paper`); `FastVideoRelighter`
    makes that call during its warm-up frames.
    """
    for name in ("albedo_encoder", "shading_encoder", "planes_to_style", "superres", "temporal"):
        getattr(model, name).compile(mode=mode, dynamic=False)


def prepare_inference(model: Relighter, dtype: torch.dtype = torch.bfloat16, channels_last: bool = True) -> Relighter:
    """Convert `model` in place for fast inference (no autocast needed afterwards); returns it.

    * Weights and buffers in `dtype`, once: autocast re-casts every fp32 weight at every call.
      Kept in fp32: the renderer's decoders (the fused kernel reads them as fp32 and does the ray
      maths, sigmoid/softexp heads and compositing in fp32; its torch twin upcasts the planes).
      LayerNorm on bf16 inputs keeps fp32 statistics inside `F.layer_norm`.
    * Channels-last weights for the plain convolution stacks (albedo encoder, the shading
      encoder's lift, planes-to-style), so their activations, and the tri-planes, are
      channels-last. The super-resolution stays NCHW: its FIR blur is 3.5x slower in
      channels-last (design/PERFORMANCE.md 2.2).
    * Attention as two GEMMs where the head exceeds FlashAttention's FLASH_MAX_HEAD_DIM.
    * The super-resolution's upsampling convs as sub-pixel convs (`stylegan.upsample_conv_subpixel`:
      the FIR folded into the weights, no separate blur pass).
    * `torch.backends.cudnn.benchmark = True` (process-wide: convolution plans are timed once per
      shape, in the warm-up frames).

    Outputs stay within a stated tolerance of the fp32 model (tests/models/test_fast.py).
    """
    if model.training:
        raise ValueError("prepare_inference needs the model in eval mode (call model.eval())")
    model.to(dtype)
    model.renderer.float()
    if channels_last:
        for module in (model.albedo_encoder, model.shading_encoder.lift, model.planes_to_style.convs):
            module.to(memory_format=torch.channels_last)
    for module in model.modules():
        if isinstance(module, EfficientSelfAttention):
            module.matmul_attention = module.q.out_features // module.heads > FLASH_MAX_HEAD_DIM
        if isinstance(module, ModulatedConv):
            module.subpixel_upsample = module.upsample
    torch.backends.cudnn.benchmark = True
    return model


def compile_temporal(model: Relighter, mode: str = "default") -> None:
    """torch.compile the temporal network's token function (`TemporalNet.forward_tokens`), in place.

    Inductor fuses its bias/ReLU/residual/LayerNorm chains on the 65k texel tokens, which eager
    mode runs as separate memory-bound passes. Compiles at the first call (seconds).
    """
    temporal = model.temporal
    temporal.forward_tokens = torch.compile(temporal.forward_tokens, mode=mode, dynamic=False)


def compile_encoders(model: Relighter, mode: str = "default") -> None:
    """torch.compile the albedo encoder, the shading encoder and planes-to-style, in place.

    Not the super-resolution: Inductor made it slower (4.1 -> 5.4 ms, its FIR path). Compiles at
    the first call (tens of seconds for `paper`).
    """
    for name in ("albedo_encoder", "shading_encoder", "planes_to_style"):
        getattr(model, name).compile(mode=mode, dynamic=False)


class FastVideoRelighter:
    """`VideoRelighter` (sliding or frozen window) for one fixed input shape on CUDA.

    Args:
        model: the network, on a CUDA device, in eval mode.
        use_graph: capture the steady-state frame into a CUDA graph (else run it eagerly on the
            static buffers, which still saves the per-frame concatenation of the window).
        window_policy: as in `VideoRelighter`.

    The precision is the model's (see `prepare_inference`) or the caller's autocast: call `step`
    the same way for one instance. Inputs must keep their shapes and light count until `reset()`.
    The returned images are float32 whatever the precision.
    """

    def __init__(self, model: Relighter, use_graph: bool = True, window_policy: str = "sliding"):
        if model.training:
            raise ValueError("FastVideoRelighter needs the model in eval mode (call model.eval())")
        if next(model.parameters()).device.type != "cuda":
            raise ValueError("FastVideoRelighter needs the model on a CUDA device (model.cuda())")
        self.model = model
        self.use_graph = use_graph
        self.window_policy = window_policy
        self._filling = VideoRelighter(model, window_policy)  # validates the policy
        self.reset()

    def reset(self) -> None:
        """Forget the previous frames and the captured graph (shot cut, new clip or new shapes)."""
        self._filling.reset()
        self._inputs: dict[str, Tensor] | None = None
        self._albedo_window: Tensor | None = None  # texel tokens [B*R*R, W*3C], oldest frame first
        self._shading_window: Tensor | None = None  # [L*B*R*R, W*3C]
        self._replay: Callable[[], dict] | None = None
        self._eager_frames = 0

    @torch.inference_mode()
    def step(self, image: Tensor, camera: Tensor, sh: Tensor) -> dict[str, Tensor]:
        """Relight the next frame: image [B, 3, S, S], camera [B, 25], sh [B, 9] or [B, 9, 3].

        Returns the images of OUTPUT_KEYS (as `Relighter.render` names them), fresh tensors.
        """
        if self._inputs is None and len(self._filling._albedo) < self._filling.window:
            out = self._filling.step(image, camera, sh)
            if len(self._filling._albedo) == self._filling.window:
                self._start_steady_state(image, camera, sh)
            return {key: out[key].float() for key in OUTPUT_KEYS}
        self._copy_inputs(image, camera, sh)
        if not self.use_graph:
            out = self._frame()
        elif self._replay is not None:
            out = self._replay()
        elif self._eager_frames < WARM_FRAMES:
            out = self._side_stream_frame()
            self._eager_frames += 1
        else:
            out = self._capture_and_replay()
        return {key: out[key].to(torch.float32, copy=True) for key in OUTPUT_KEYS}

    # --------------------------------------------------------------------------------------

    def _start_steady_state(self, image: Tensor, camera: Tensor, sh: Tensor) -> None:
        """Move the filled window into static token buffers and allocate the static inputs."""
        lights = sh.shape[2] if sh.ndim == 3 else 1
        self._albedo_window = torch.cat([planes_to_tokens(a) for a in self._filling._albedo], dim=1)
        self._shading_window = torch.cat(
            [planes_to_tokens(_with_light_count(s, lights).flatten(0, 1)) for s in self._filling._shading], dim=1)
        self._inputs = {"image": image.clone(), "camera": camera.clone(), "sh": sh.clone()}

    def _copy_inputs(self, image: Tensor, camera: Tensor, sh: Tensor) -> None:
        for name, value in (("image", image), ("camera", camera), ("sh", sh)):
            static = self._inputs[name]
            if value.shape != static.shape:
                raise ValueError(f"FastVideoRelighter: {name} changed shape from {list(static.shape)} to "
                                 f"{list(value.shape)}; call reset() when the input size or light count changes")
            static.copy_(value)

    def _frame(self) -> dict[str, Tensor]:
        """One steady-state frame on the static buffers (what VideoRelighter.step computes)."""
        model, x = self.model, self._inputs
        record = torch.profiler.record_function
        with record("stage:encode"):
            albedo = model.encode(x["image"])
        with record("stage:shade"):
            shading = model.shade(albedo, x["sh"])
        with record("stage:temporal"):
            count, batch, _, height, width = shading.shape
            albedo_window = self._albedo_window.repeat(count, 1) if count > 1 else self._albedo_window
            albedo_res, shading_res = model.temporal.forward_tokens(albedo_window, self._shading_window)
            albedo_res = tokens_to_planes(albedo_res, count * batch, height, width).unflatten(0, (count, batch)).mean(0)
            shading_res = tokens_to_planes(shading_res, count * batch, height, width).unflatten(0, (count, batch))
            if self.window_policy == "sliding":
                self._advance_window(albedo, shading)
        with record("stage:planes_to_style"):
            style = model.planes_to_style(albedo)
        with record("stage:render+superres"):
            return model.render(albedo + albedo_res, shading + shading_res, x["camera"], style)

    def _advance_window(self, albedo: Tensor, shading: Tensor) -> None:
        """Drop the oldest frame of the windows and append this one's planes, in place."""
        for window, planes in ((self._albedo_window, albedo), (self._shading_window, shading.flatten(0, 1))):
            newest = planes_to_tokens(planes).to(window.dtype)
            window.copy_(torch.cat([window[:, newest.shape[1]:], newest], 1))

    def _side_stream_frame(self) -> dict[str, Tensor]:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), _uncached_autocast():
            out = self._frame()
        torch.cuda.current_stream().wait_stream(stream)
        return out

    def _capture_and_replay(self) -> dict[str, Tensor]:
        """Capture the frame (which does not run it), then replay it once for this frame."""
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph), _uncached_autocast():
                outputs = self._frame()
        except RuntimeError as error:  # an op that cannot be captured: keep working without the graph
            warnings.warn(f"relight: CUDA graph capture failed ({error}); running frames eagerly", RuntimeWarning)
            self.use_graph = False
            return self._frame()

        def replay() -> dict[str, Tensor]:
            graph.replay()
            return outputs

        self._replay = replay
        return replay()
