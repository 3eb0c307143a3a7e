"""Device and dtype helpers shared by every floor (pure torch)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["resolve_device", "available_devices", "to_tensor", "like_input", "real_dtype_of"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` means cuda if available, then mps, else cpu; anything else is passed to torch."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"Unknown device {device!r}; this machine has: {', '.join(available_devices())}.") from None
    kind = dev.type
    ok = {"cpu": True, "cuda": torch.cuda.is_available(),
          "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}.get(kind, False)
    if ok and kind == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        ok = False
    if not ok:
        raise ValueError(f"Device {str(dev)!r} is not available here; this machine has: {', '.join(available_devices())}.")
    return dev


def available_devices() -> list[str]:
    """The torch devices this machine can run on (``cpu`` always; ``cuda:i`` and ``mps`` where present)."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


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
        elif a.dtype.kind in "biu" or a.dtype == np.float16:
            a = a.astype(np.float32)  # no float16 FFT kernels on CPU: compute in float32
        t = torch.from_numpy(np.ascontiguousarray(a))
    if dtype is None and t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
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
