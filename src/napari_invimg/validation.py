"""Input validation in one place (floor 1): the checks that turn bad input into a clear error of ours.

:func:`napari_invimg.reconstruct`, :func:`napari_invimg.simulate`, the tiled path and the operator and
noise-model constructors call these, so a method never sees an array, a seed, a device or a noise model
that would make it fail deep inside torch or return NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["check_finite", "check_shape", "check_seed", "check_data", "check_noise", "check_counts",
           "data_scale", "unit_range_scale", "fresh_seed", "POISSON_FLOOR_SIGMAS"]

#: Poisson(-Gaussian) data may dip below zero by read noise only: values below −6σ (σ the read noise) are
#: not counts of this camera (a subtracted offset that was too large, or data that are not intensities)
POISSON_FLOOR_SIGMAS = 6.0


def check_finite(x, what: str = "input") -> None:
    """Raise a ``ValueError`` a user can act on when ``x`` holds NaN or inf."""
    if isinstance(x, torch.Tensor):
        # a finite sum means finite terms (NaN and ±inf absorb any addition); a non-finite one (a bad value, or an
        # overflow of huge ones) is checked elementwise. torch's ``isfinite(x).all()`` alone took 1 ms at 512² and
        # 14 ms at 64×256² (1 thread), the sum 0.04 and 1.1 ms (benchmarks/RESULTS.md §1, helper `rl100`)
        ok = not (x.is_floating_point() or x.is_complex())
        if not ok:
            z = torch.view_as_real(x.resolve_conj()) if x.is_complex() else x
            ok = math.isfinite(float(z.sum())) or bool(torch.isfinite(x).all())
    else:
        ok = bool(np.isfinite(np.asarray(x)).all())
    if not ok:
        raise ValueError(f"The {what} contains NaN or infinite values; replace or mask them before reconstructing.")


def check_shape(shape: Any, what: str = "shape") -> tuple[int, ...]:
    """A tuple of positive integers, or a ``ValueError`` naming what is wrong with it."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"The {what} must be a sequence of positive integers, got {shape!r}.") from None
    if not dims:
        raise ValueError(f"The {what} must have at least one dimension, got {shape!r}.")
    out = []
    for s in dims:
        if isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)):
            v = int(s)
        elif isinstance(s, (float, np.floating)) and float(s).is_integer():
            v = int(s)
        else:
            raise ValueError(f"The {what} must be a sequence of positive integers, got {tuple(dims)!r}.")
        if v < 1:
            raise ValueError(f"Every size in the {what} must be at least 1, got {tuple(dims)!r}.")
        out.append(v)
    return tuple(out)


def fresh_seed() -> int:
    """A new seed from the operating system's entropy (never from a global generator), below 2³²."""
    return int(np.random.SeedSequence().entropy % (2**32))


def check_seed(seed: Any) -> int:
    """``None`` → a fresh seed (record it to replay the run); an integer ≥ 0 → itself; else a ``ValueError``."""
    if seed is None:
        return fresh_seed()
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        if isinstance(seed, (float, np.floating)) and float(seed).is_integer():
            seed = int(seed)
        else:
            raise ValueError(f"seed must be a non-negative integer or None (a fresh seed), got {seed!r}.")
    if not 0 <= int(seed) < 2**63:
        raise ValueError(f"seed must be a non-negative integer below 2**63, got {seed}.")
    return int(seed)


def check_data(a, shape: tuple[int, ...], complex_: bool, what: str) -> np.ndarray | torch.Tensor:
    """Validate an array against an operator's expected shape and type; clear ``ValueError`` otherwise.

    Half-precision data are accepted and widened to float32 (the FFTs have no float16 kernels on CPU), extended
    precision (numpy's ``longdouble``/``clongdouble``, which torch cannot hold) narrowed to float64/complex128.
    """
    if a is None:
        raise ValueError(f"No {what} given.")
    is_tensor = isinstance(a, torch.Tensor)
    arr = a if is_tensor else np.asarray(a)
    if arr.ndim == 0 or (arr.numel() if is_tensor else arr.size) == 0:
        raise ValueError(f"The {what} is empty.")
    if not is_tensor and arr.dtype.kind not in "biufc":
        raise ValueError(f"The {what} must be numeric, got dtype {arr.dtype}.")
    if is_tensor and arr.dtype in (torch.float16, torch.bfloat16):
        arr = arr.float()
    elif is_tensor and arr.dtype == torch.complex32:
        arr = arr.to(torch.complex64)
    elif not is_tensor and arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif not is_tensor and arr.dtype.kind in "fc" and arr.dtype.itemsize > (16 if arr.dtype.kind == "c" else 8):
        arr = arr.astype(np.complex128 if arr.dtype.kind == "c" else np.float64)
    if tuple(arr.shape) != tuple(shape):
        if arr.ndim == len(shape) + 1 and arr.shape[-1] in (3, 4) and tuple(arr.shape[:-1]) == tuple(shape):
            raise ValueError(f"The {what} looks like an RGB(A) image {tuple(arr.shape)}; convert it to gray first.")
        raise ValueError(f"The {what} has shape {tuple(arr.shape)} but the forward model expects {tuple(shape)}.")
    iscomplex = arr.is_complex() if is_tensor else np.iscomplexobj(arr)
    if iscomplex and not complex_:
        raise ValueError(f"The {what} is complex but this forward model needs real data; take the magnitude first.")
    if complex_ and not iscomplex and what == "measurement":
        raise ValueError(f"The {what} must be complex (k-space or visibilities); got real data.")
    if complex_ and what == "measurement" and not bool((arr != 0).any()):
        raise ValueError(f"The {what} is all zero: there is nothing to reconstruct (check the file or the slice).")
    check_finite(arr, what)
    return arr


def data_scale(y) -> float:
    """A positive scale of the data (the RMS of ``|y|``; 1 for all-zero data) for unit-free floors."""
    if isinstance(y, torch.Tensor):
        z = y.detach()
        if not (z.is_floating_point() or z.is_complex()):
            z = z.double()
        # Σ|z|² accumulated in double precision by BLAS dot products over blocks of 2¹⁶ values (torch's float64
        # ``vector_norm`` took 40 ms at 64×256², 1 thread, the blocks 8 ms; benchmarks/RESULTS.md §1, helper `rl100`)
        flat = (torch.view_as_real(z.resolve_conj()) if z.is_complex() else z).reshape(-1)
        device = torch.device("cpu") if flat.device.type == "mps" else flat.device  # (no float64 on mps)
        total = torch.zeros((), dtype=torch.float64, device=device)  # one synchronization at the end
        for block in flat.split(1 << 16):
            block = block.to(device=device, dtype=torch.float64)
            total += torch.dot(block, block)
        s = math.sqrt(float(total) / z.numel()) if z.numel() else 0.0
    else:
        s = float(np.sqrt(np.mean(np.abs(np.asarray(y, dtype=np.complex128 if np.iscomplexobj(y) else np.float64))
                                  ** 2)))
    return s if s > 0 and np.isfinite(s) else 1.0


def unit_range_scale(y: torch.Tensor) -> float:
    """Robust maximum of ``|y|`` (its 99.5th percentile; the RMS if that is zero): the unit of a ``unit_range``
    method's run (``core.py``; also ``bayes_dip``'s learned-prior draws). It scales with the data, so the result
    times it does not depend on the data's units. ``ValueError`` for data with no values or a NaN or infinity (the
    percentile would silently become 1)."""
    if y.numel() == 0:
        raise ValueError("The data have no values: there is no scale to take.")
    check_finite(y, "data")
    a = y.abs().reshape(-1).double()
    k = max(1, int(round(0.995 * a.numel())))
    s = float(a.kthvalue(k).values)
    return s if s > 0 else data_scale(y)


def check_noise(noise: Any, out_shape: tuple[int, ...]) -> None:
    """A noise model of ours whose σ map (if any) is shaped like (or broadcasts to) the data."""
    # by class name, not by import: operators.noise imports this module
    if not any(c.__name__ == "NoiseModel" for c in type(noise).__mro__):
        raise ValueError(f"noise must be a napari_invimg noise model (ni.noise.Gaussian, Poisson, PoissonGaussian), "
                         f"got {type(noise).__name__}.")
    sig = noise.sigma
    if not isinstance(sig, float):
        shape = np.shape(sig)
        try:
            ok = np.broadcast_shapes(shape, tuple(out_shape)) == tuple(out_shape)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"The noise σ map has shape {shape} but the data have shape {tuple(out_shape)}; "
                             "give one σ per measurement (or a scalar).")


def check_counts(y, noise: Any, what: str = "measurement") -> None:
    """Poisson(-Gaussian) models need intensities: refuse data far below zero, which no camera of this model makes.

    Read noise lets values dip below zero, so the floor is ``−6σ`` (σ the read noise; 0 for pure Poisson) less a
    float tolerance. Data with a camera offset subtracted too far, or background-subtracted data, fail it: add the
    offset back, or model the noise as Gaussian.
    """
    if noise.gain <= 0:
        return
    t = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    if t.is_complex():
        raise ValueError(f"A Poisson noise model needs real data (intensities); the {what} is complex. "
                         "Use ni.noise.Gaussian.")
    # the least and the largest value in one pass (max |y| = max(−min, max)): no |y| copy of the data
    low, high = (float(v) for v in torch.aminmax(t))
    floor = -POISSON_FLOOR_SIGMAS * noise.sigma_scalar - 1e-6 * max(-low, high)
    if low < floor:
        raise ValueError(
            f"The {what} goes down to {low:.4g}, below what a Poisson camera with gain {noise.gain:.4g} and read noise "
            f"σ {noise.sigma_scalar:.4g} can record (≈ {floor:.4g}): these are not photon counts. Add the camera offset "
            f"back (or subtract a smaller one), or use noise=ni.noise.Gaussian(σ) for background-subtracted data.")


def counts_warning(y, noise: Any) -> str | None:
    """A warning (or ``None``) when a pure Poisson model (``σ = 0``) is given for data that are not whole numbers of
    photons: ``y / gain`` should be integers (to a float tolerance) on at least 99 % of the pixels. Normalized,
    flat-fielded or background-subtracted data, or a wrong gain, fail it; the run goes on with the given model."""
    if noise.gain <= 0 or noise.sigma_scalar > 0:
        return None
    t = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    if t.is_complex() or t.numel() == 0:
        return None
    r = t.detach().double() / noise.gain
    off = (r - torch.round(r)).abs() > 1e-3 + 1e-5 * r.abs()
    share = float(off.double().mean())
    if share <= 0.01:
        return None
    return (f"A pure Poisson model with gain {noise.gain:.4g} was given, but y / gain is not a whole number of photons on "
            f"{100 * share:.0f} % of the pixels (normalized, flat-fielded or processed data, or another gain?): the "
            "likelihood assumes photon counts. Give the camera's gain, or ni.noise.PoissonGaussian / ni.noise.estimate.")
