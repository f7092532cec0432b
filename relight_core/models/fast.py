"""Fast whole-frame inference on CUDA: static buffers, one CUDA graph per frame, optional torch.compile.

`FastVideoRelighter` computes exactly what `VideoRelighter` computes (same modules, same order;
the fused renderer where models/kernels.py allows it) but keeps the temporal window in static
tensors and, once the window is full and a few frames have warmed up, replays one captured CUDA
graph per frame: the ~1400 kernel launches of a frame cost one launch. Nothing in a frame
synchronizes with the host (the graph requires it).

`graphed(fn)` captures any call on static inputs (the benchmark times each stage this way), and
`compile_dense_modules` compiles the convolutional and per-pixel modules with torch.compile (the
renderer stays eager: its kernel is a custom extension op).
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import Tensor

from .relighter import Relighter, VideoRelighter, _with_light_count

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


class FastVideoRelighter:
    """`VideoRelighter` (sliding or frozen window) for one fixed input shape on CUDA.

    Args:
        model: the network, on a CUDA device, in eval mode.
        use_graph: capture the steady-state frame into a CUDA graph (else run it eagerly on the
            static buffers, which still saves the per-frame concatenation of the window).
        window_policy: as in `VideoRelighter`.

    The precision is the caller's: call `step` inside `torch.autocast("cuda", torch.bfloat16)` for
    bf16, always the same way for one instance. Inputs must keep their shapes and light count
    until `reset()`.
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
        self._albedo_window: Tensor | None = None  # [B, W*3C, R, R], oldest frame first
        self._shading_window: Tensor | None = None  # [L, B, W*3C, R, R]
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
            return {key: out[key] for key in OUTPUT_KEYS}
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
        return {key: out[key].clone() for key in OUTPUT_KEYS}

    # --------------------------------------------------------------------------------------

    def _start_steady_state(self, image: Tensor, camera: Tensor, sh: Tensor) -> None:
        """Move the filled window into static buffers and allocate the static inputs."""
        albedo_frames = list(self._filling._albedo)
        lights = sh.shape[2] if sh.ndim == 3 else 1
        shading_frames = [_with_light_count(s, lights) for s in self._filling._shading]
        self._albedo_window = torch.cat(albedo_frames, dim=1)
        self._shading_window = torch.cat(shading_frames, dim=2)
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
            count, batch = shading.shape[:2]
            albedo_res, shading_res = model.temporal(self._albedo_window.repeat(count, 1, 1, 1),
                                                     self._shading_window.flatten(0, 1))
            albedo_res = albedo_res.unflatten(0, (count, batch)).mean(0)
            shading_res = shading_res.unflatten(0, (count, batch))
            if self.window_policy == "sliding":
                self._advance_window(albedo, shading)
        with record("stage:planes_to_style"):
            style = model.planes_to_style(albedo)
        with record("stage:render+superres"):
            return model.render(albedo + albedo_res, shading + shading_res, x["camera"], style)

    def _advance_window(self, albedo: Tensor, shading: Tensor) -> None:
        """Drop the oldest frame of the window and append this one, in place."""
        c3 = albedo.shape[1]
        self._albedo_window.copy_(torch.cat([self._albedo_window[:, c3:], albedo.to(self._albedo_window.dtype)], 1))
        self._shading_window.copy_(
            torch.cat([self._shading_window[:, :, c3:], shading.to(self._shading_window.dtype)], 2))

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
