"""How the benchmarks measure: precision, synchronized wall-clock timing and the machine they ran on.

Shared by :mod:`relight_core.eval.bench` (which describes the timing protocol), the plate
benchmark and the mesh command's timings.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator

import torch

@contextlib.contextmanager
def precision_context(precision: str, device_type: str, autocast: bool = True) -> Iterator[None]:
    """"fp32": TF32 off for matmul and cuDNN (flags restored on exit); "bf16": bf16 autocast
    (nothing when `autocast` is False: the model was converted to bf16)."""
    if precision == "bf16" and not autocast:
        yield
        return
    if precision == "bf16":
        with torch.autocast(device_type, dtype=torch.bfloat16):
            yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, iterations: int, warmup: int) -> dict:
    """Time `fn()`: `warmup` untimed calls, then `iterations` timed ones.

    Returns {"median_ms", "min_ms", "max_ms"} (milliseconds, host wall time, synchronized on CUDA)
    and "peak_mib": peak CUDA memory allocated during the timed calls (MiB; None on the CPU).
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(iterations):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "peak_mib": peak}


# ------------------------------------------------------------------------------------------
# the machine
# ------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def device_name(device: torch.device) -> str:
    """GPU name, or "<CPU model> (<n> threads)" with torch's intra-op thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_model()} ({torch.get_num_threads()} threads)"


def _load_average() -> float | None:
    """1-minute system load average when the run starts (None where unknown). On a CPU, load from
    other processes makes the timings meaningless (idle threads spin at every parallel region)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def git_commit() -> str:
    """$RELIGHT_GIT_COMMIT when set (a copied tree's .git can be stale); else `git rev-parse --short
    HEAD` of this source tree; else "unknown"."""
    if os.environ.get("RELIGHT_GIT_COMMIT"):
        return os.environ["RELIGHT_GIT_COMMIT"]
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=10, check=True)
        return done.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
