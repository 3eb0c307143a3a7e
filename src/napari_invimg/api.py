"""The public scripting API (floor 3): simulate, reconstruct, methods, method_info.

Front ends (widgets, CLI) and the benchmarks call these functions and nothing below them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .core import check_data, reconstruct_array
from .methods import registry
from .operators.base import OPERATORS, Operator
from .operators.noise import NoiseModel
from .tiling import reconstruct_tiled
from .uncertainty import Reconstruction
from .validation import check_noise, check_seed

__all__ = ["simulate", "reconstruct", "methods", "methods_for", "method_info", "check_data"]


def methods(operator: Operator | type[Operator] | str | None = None, domain: str | None = None) -> list[str]:
    """Names of the registered methods; with ``operator`` only those that can use it (:func:`methods_for`); with
    ``domain`` only that domain's and the general imaging ones."""
    return methods_for(operator, domain)


def methods_for(operator: Operator | type[Operator] | str | None, domain: str | None = None) -> list[str]:
    """The methods that can use ``operator``: an operator, an operator class or a class name (``"Blur"``) — the one
    list every dock and front end shows; ``None``: every method."""
    names = registry.available()
    if operator is not None:
        kind = OPERATORS.get(operator) if isinstance(operator, str) else operator
        names = [n for n in names if registry.get(n).supports(kind) is None]
    if domain is not None:
        names = [n for n in names if registry.get(n).domain in (domain, "imaging")]
    return names


def method_info(name: str) -> dict[str, Any]:
    """Description, parameters (name, type, default, bounds), returns_std, uncertainty kind,
    supported operators and reference of a method."""
    return registry.info(name)


def simulate(x, A: Operator, noise: NoiseModel | None = None, seed: int | None = 0):
    """``y = A(x) + noise``: numpy in -> numpy out, torch in -> torch out (``seed=None``: a fresh seed)."""
    if not isinstance(A, Operator):
        raise ValueError(f"A must be a napari_invimg operator, got {type(A).__name__}.")
    x = check_data(x, A.in_shape, A.in_complex, "image")
    if noise is not None:
        check_noise(noise, A.out_shape)
    seed = check_seed(seed)
    with torch.no_grad():
        z = A.forward(x)
    return z if noise is None else noise.sample(z, seed=seed)


def reconstruct(
    y,
    A: Operator,
    method: str = "richardson_lucy",
    noise: NoiseModel | None = None,
    seed: int | None = 0,
    device: str | torch.device | None = None,
    progress: Callable[[int, int, np.ndarray | None], Any] | None = None,
    calibration: Any = None,
    **params: Any,
) -> Reconstruction:
    """Reconstruct ``x`` from ``y = A(x) + noise`` with a registered method.

    Parameters
    ----------
    y : array
        The measurement, shaped like ``A.out_shape`` (a dask array for tiled, lazy processing of
        shift-invariant problems).
    A : Operator
        The forward model.
    method : str
        A name from :func:`methods`.
    noise : NoiseModel, optional
        The noise model; estimated from ``y`` when omitted (:func:`napari_invimg.noise.estimate`).
    seed : int or None
        Seed of every random choice; the same seed gives the same result on the same device. ``None``: a fresh
        seed, recorded in ``info["seed"]`` so that the run can be replayed.
    device : str, optional
        ``None``: cuda if available, then mps, else cpu.
    progress : callable, optional
        ``progress(step, total, preview)``; returning ``False`` cancels and raises :class:`Cancelled`,
        whose ``partial`` holds the best result so far. ``preview`` may share memory with the method's working
        arrays (RL's iterates are updated in place): copy it to keep it beyond the call.
    calibration : Calibration or float, optional
        A factor on the standard deviation from :func:`napari_invimg.diagnostics.calibrate`.
    **params
        The method's parameters (see :func:`method_info`).
    """
    seed = check_seed(seed)
    if type(y).__module__.startswith("dask"):
        return reconstruct_tiled(y, A, method=method, noise=noise, seed=seed, device=device, progress=progress,
                                 calibration=calibration, **params)
    return reconstruct_array(y, A, method, noise, seed, device, progress, calibration, **params)
