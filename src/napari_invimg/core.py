"""The in-memory reconstruction that :func:`napari_invimg.reconstruct` and every tile of :mod:`.tiling` run, and
the pieces both paths share: the checks of a call, its provenance (``info``) and the calibration of its std."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._device import resolve_device, to_tensor
from ._version import __version__
from .errors import Cancelled
from .methods import registry
from .methods.registry import Context
from .operators.base import Operator
from .operators.noise import Gaussian, NoiseModel, estimate
from .priors.denoisers import denoiser_host_round_trip
from .uncertainty import Reconstruction
from .validation import check_counts, check_data, check_noise, check_seed, counts_warning, unit_range_scale

__all__ = ["check_data", "check_call", "note_ignored", "provenance", "calibrated", "reconstruct_array", "noise_for"]


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


def note_ignored(cls: type[registry.Method], A: Operator, params: dict[str, Any], info: dict[str, Any]) -> None:
    """Parameters given for an operator they do not act on (:meth:`Method.ignored_params`): recorded in
    ``info["ignored_params"]`` and said in a warning; nothing when there are none."""
    ignored = cls.ignored_params(A, params)
    if ignored:
        info["ignored_params"] = ignored
        warnings.warn("; ".join(ignored.values()) + ".", UserWarning, stacklevel=4)


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


def noise_for(y, A: Operator, noise: NoiseModel | None) -> tuple[NoiseModel, str, str | None]:
    """The noise model of a run and where it came from: checked against the data when given
    (:func:`~napari_invimg.validation.check_noise`, :func:`~napari_invimg.validation.check_counts`), else estimated.

    An estimated Poisson–Gaussian model that the data contradict (values far below zero: a subtracted camera
    offset) falls back to a Gaussian estimate, with a warning (the third value; ``info["noise_warning"]``).
    """
    if noise is not None:
        check_noise(noise, A.out_shape)
        check_counts(y, noise)
        warning = counts_warning(y, noise)
        if warning:
            warnings.warn(warning, UserWarning, stacklevel=3)
        return noise, "given", warning
    sigma = A.estimate_noise(y)  # operators that know where their data hold only noise (else None)
    if sigma is not None:
        return Gaussian(sigma), "estimated", None
    arr = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y
    noise = estimate(arr)
    try:
        check_counts(y, noise)
    except ValueError:
        warning = ("The data go below zero further than Poisson noise allows (a subtracted camera offset?); "
                   "the noise was modeled as Gaussian instead.")
        return estimate(arr, model="gaussian"), "estimated", warning
    return noise, "estimated", None


def _finish(est: registry.Estimate, info: dict[str, Any], calibration, scale: float = 1.0) -> Reconstruction:
    if scale != 1.0:  # a unit_range run: back to the data's units
        est = registry.Estimate(est.mean * scale, None if est.std is None else est.std * scale,
                                None if est.samples is None else est.samples * scale, est.info)
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
    seed = check_seed(seed)  # None: a fresh seed, recorded in info["seed"]
    noise, noise_source, noise_warning = noise_for(y, A, noise)
    dev = resolve_device(device)
    A.to(dev)
    yt = to_tensor(y, device=dev)
    if A.out_complex and not yt.is_complex():
        yt = yt.to(torch.complex64)
    scale = 1.0
    unit_range = cls.runs_in_unit_range(params)
    if unit_range:  # the method's prior works on images in ≈[0, 1]: run in those units, then restore
        scale = unit_range_scale(yt)
        yt, noise_run = yt / scale, noise.scaled(1.0 / scale)
    else:
        noise_run = noise
    ctx = Context(dev, seed, progress)
    ctx.output_scale = scale
    info = provenance(cls, params, A.spec(), noise, noise_source, seed, dev)
    if noise_warning:
        info["noise_warning"] = noise_warning
    note_ignored(cls, A, params, info)
    if unit_range:
        info["data_scale"] = scale
    host = [note for note in (getattr(A, "host_round_trip", None), denoiser_host_round_trip(params.get("denoiser")))
            if note]  # the operator's or the denoiser's data leave the device (a CPU-only NUFFT, scikit-image)
    if host:
        info["host_round_trip"] = "; ".join(host)
    t0 = time.perf_counter()
    try:
        est = cls().run(yt, A, noise_run, ctx, **params)
    except Cancelled as exc:
        info.update(seconds=time.perf_counter() - t0, history=ctx.history, cancelled=True)
        partial = _finish(ctx.partial, info, calibration, scale) if ctx.partial is not None else None
        raise Cancelled("reconstruction cancelled", partial=partial) from exc
    info.update(seconds=time.perf_counter() - t0, history=ctx.history)
    if ctx.evaluations:
        info.setdefault("evaluations", ctx.evaluations)
    return _finish(est, info, calibration, scale)

