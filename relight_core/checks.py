"""Validation at the Python boundary, shared by the numerical modules: errors name the argument,
what was expected and what arrived."""

from __future__ import annotations

import numpy as np
import torch


def as_float_tensor(x, name: str, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """Validate and convert to a finite float32/float64 tensor.

    float32/float64 tensors keep their dtype unless `dtype` is given; integer tensors, arrays and
    numbers become `dtype` (default float32). Rejects bool and complex values, other float
    dtypes (unless `dtype` is given) and NaN or inf.
    """
    if dtype is not None and dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bool or x.is_complex():
            raise TypeError(f"{name}: expected a real tensor, got dtype {x.dtype}")
        if x.is_floating_point() and x.dtype not in (torch.float32, torch.float64) and dtype is None:
            raise TypeError(f"{name}: expected a float32 or float64 tensor, got {x.dtype}")
        keep = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        t = x.to(dtype=dtype or keep, device=device)
    else:
        if isinstance(x, np.ndarray) and x.dtype.kind not in "fiu":
            raise TypeError(f"{name}: expected a real array, got dtype {x.dtype}")
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype or torch.float32, device=device)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}: expected numbers, an array or a tensor, got {type(x).__name__} ({exc})") from None
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: expected finite values, got NaN or inf")
    return t


def check_last(t: torch.Tensor, name: str, shape: tuple[int, ...]) -> None:
    """Raise ValueError unless the trailing dimensions of `t` are `shape`."""
    k = len(shape)
    if t.dim() < k or tuple(t.shape[-k:]) != shape:
        want = "[..., " + ", ".join(map(str, shape)) + "]"
        raise ValueError(f"{name}: expected shape {want}, got {list(t.shape)}")
