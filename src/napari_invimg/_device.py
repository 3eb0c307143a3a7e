"""Device and dtype helpers shared by every floor (pure torch)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["resolve_device", "to_tensor", "like_input", "real_dtype_of"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` means cuda if available, then mps, else cpu; anything else is passed to torch."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def to_tensor(x, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """numpy / scalars / tensors -> tensor (float32 or complex64 unless ``dtype`` says otherwise)."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        a = np.asarray(x)
        if a.dtype == np.float64 and dtype is None:
            a = a.astype(np.float32)
        elif a.dtype == np.complex128 and dtype is None:
            a = a.astype(np.complex64)
        elif a.dtype.kind in "biu":
            a = a.astype(np.float32)
        t = torch.from_numpy(np.ascontiguousarray(a))
    if dtype is not None:
        t = t.to(dtype)
    if device is not None:
        t = t.to(device)
    return t


def like_input(t: torch.Tensor, was_numpy: bool):
    """Return ``t`` as numpy when the caller passed numpy."""
    if was_numpy:
        return t.detach().cpu().numpy()
    return t


def real_dtype_of(dtype: torch.dtype) -> torch.dtype:
    return {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, dtype)
