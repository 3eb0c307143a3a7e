"""The in-memory reconstruction that :func:`napari_invimg.reconstruct` and every tile of :mod:`.tiling` run, and
the pieces both paths share: the checks of a call, its provenance (``info``) and the calibration of its std."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._device import resolve_device, to_tensor
from ._version import __version__
from .errors import Cancelled
from .methods import registry
from .methods.registry import Context
from .operators.base import Operator, check_finite
from .operators.noise import Gaussian, NoiseModel, estimate
from .uncertainty import Reconstruction

__all__ = ["check_data", "check_call", "provenance", "calibrated", "reconstruct_array"]


def check_data(a, shape: tuple[int, ...], complex_: bool, what: str) -> np.ndarray | torch.Tensor:
    """Validate an array against an operator's expected shape and type; clear ``ValueError`` otherwise."""
    if a is None:
        raise ValueError(f"No {what} given.")
    is_tensor = isinstance(a, torch.Tensor)
    arr = a if is_tensor else np.asarray(a)
    if arr.ndim == 0 or (arr.numel() if is_tensor else arr.size) == 0:
        raise ValueError(f"The {what} is empty.")
    if not is_tensor and arr.dtype.kind not in "biufc":
        raise ValueError(f"The {what} must be numeric, got dtype {arr.dtype}.")
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


def check_call(method: str, A: Operator, params: dict[str, Any], calibration: Any = None
               ) -> tuple[type[registry.Method], dict[str, Any]]:
    """The method class and its validated parameters; ``ValueError`` when the method cannot use ``A`` or the
    calibration was fitted for another method."""
    cls = registry.get(method)
    if getattr(calibration, "method", cls.name) != cls.name:
        raise ValueError(f"This calibration was fitted for {calibration.method!r}; calibrate {cls.name!r} itself.")
    if not isinstance(A, Operator):
        raise ValueError(f"A must be a napari_invimg operator, got {type(A).__name__}.")
    reason = cls.supports(A)
    if reason:
        raise ValueError(reason)
    return cls, cls.validate(params)


def provenance(cls: type[registry.Method], params: dict[str, Any], operator: Any, noise: NoiseModel, noise_source: str,
               seed: int | None, device: Any) -> dict[str, Any]:
    """The ``info`` every result starts from: enough to replay it (:func:`napari_invimg.replay`)."""
    return {
        "method": cls.name,
        "params": params,
        "operator": operator,
        "noise": noise.spec(),
        "noise_source": noise_source,
        "seed": seed,
        "device": None if device is None else str(device),
        "uncertainty": cls.uncertainty,
        "version": __version__,
    }


def calibrated(std, samples, mean, info: dict[str, Any], calibration):
    """``std`` (and ``samples`` about ``mean``) scaled by the calibration factor, recorded in ``info``."""
    if calibration is None or std is None:
        return std, samples
    scale = float(getattr(calibration, "scale", calibration))
    if samples is not None:
        samples = mean[None] + scale * (samples - mean[None])
    recorded = ("level", "method", "coverage_before", "coverage_after", "n_images")
    info["calibration"] = {"scale": scale, **{k: getattr(calibration, k) for k in recorded if hasattr(calibration, k)}}
    return std * scale, samples


def _numpy(t: torch.Tensor | None) -> np.ndarray | None:
    if t is None:
        return None
    return t.detach().cpu().numpy()


def _finish(est: registry.Estimate, info: dict[str, Any], calibration) -> Reconstruction:
    mean, std, samples = _numpy(est.mean), _numpy(est.std), _numpy(est.samples)
    if samples is not None and std is None:
        std = samples.std(axis=0) if not np.iscomplexobj(samples) else np.abs(samples - samples.mean(0)).std(axis=0)
    info = {**info, **est.info}
    std, samples = calibrated(std, samples, mean, info, calibration)
    return Reconstruction(mean=mean, std=std, samples=samples, info=info)


def reconstruct_array(y, A: Operator, method: str = "richardson_lucy", noise: NoiseModel | None = None,
                      seed: int | None = 0, device: str | torch.device | None = None,
                      progress: Callable[[int, int, np.ndarray | None], Any] | None = None, calibration: Any = None,
                      **params: Any) -> Reconstruction:
    """:func:`napari_invimg.reconstruct` on data in memory (numpy or torch)."""
    cls, params = check_call(method, A, params, calibration)
    y = check_data(y, A.out_shape, A.out_complex, "measurement")
    sigma = A.estimate_noise(y) if noise is None else None  # operators that know where their data hold only noise
    if sigma is not None:
        noise = Gaussian(sigma)
        noise_source = "estimated"
    elif noise is None:
        noise = estimate(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y)
        noise_source = "estimated"
    else:
        if not isinstance(noise, NoiseModel):
            raise ValueError(f"noise must be a napari_invimg noise model, got {type(noise).__name__}.")
        noise_source = "given"
    dev = resolve_device(device)
    A.to(dev)
    yt = to_tensor(y, device=dev)
    if A.out_complex and not yt.is_complex():
        yt = yt.to(torch.complex64)
    ctx = Context(dev, seed, progress)
    info = provenance(cls, params, A.spec(), noise, noise_source, seed, dev)
    if getattr(A, "host_round_trip", None):  # the operator's data leave the device (e.g. a CPU-only NUFFT)
        info["host_round_trip"] = A.host_round_trip
    t0 = time.perf_counter()
    try:
        est = cls().run(yt, A, noise, ctx, **params)
    except Cancelled as exc:
        info.update(seconds=time.perf_counter() - t0, history=ctx.history, cancelled=True)
        partial = _finish(ctx.partial, info, calibration) if ctx.partial is not None else None
        raise Cancelled("reconstruction cancelled", partial=partial) from exc
    info.update(seconds=time.perf_counter() - t0, history=ctx.history)
    if ctx.evaluations:
        info.setdefault("evaluations", ctx.evaluations)
    return _finish(est, info, calibration)

