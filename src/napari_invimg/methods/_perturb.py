"""Perturbed copies of a forward model: the operator family a learned method trains on, and the model errors a
robustness check simulates (the data made by ``A'`` while the method is given ``A``).

Keys (``value`` in brackets):

- ``psf_scale`` [factor]: the PSF stretched by the factor about its center (widths × factor), any Blur;
- ``na`` [numerical aperture], ``defocus_um`` [µm]: a Born–Wolf widefield PSF with the ``optics`` given
  (``wavelength_um``, ``na``, ``pixel_size_um``, ...) and the value replaced (2D: the plane at that defocus);
- ``acceleration`` [R], ``mask`` [kind name], ``mask_seed`` [int]: a Cartesian MRI mask of the nominal mask's kind
  (inferred from the mask) and acceleration with one of them changed, on the same coils;
- ``noise_scale`` [factor] changes the noise model, not the operator (see :func:`perturb_noise`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ..operators.base import Operator, from_spec
from ..operators.noise import NoiseModel

__all__ = ["OPERATOR_KEYS", "perturb_operator", "perturb_noise", "scale_psf", "mask_kind"]

OPERATOR_KEYS = ("psf_scale", "na", "defocus_um", "acceleration", "mask", "mask_seed")


def scale_psf(psf: np.ndarray, factor: float) -> np.ndarray:
    """The PSF with every width multiplied by ``factor`` (linear resampling about the center, renormalized)."""
    if not np.isfinite(factor) or factor <= 0:
        raise ValueError(f"A PSF scale must be a positive factor, got {factor}.")
    h = np.asarray(psf, dtype=np.float64)
    center = (np.asarray(h.shape) - 1) / 2.0
    grid = np.indices(h.shape, dtype=np.float64)
    coords = center.reshape((-1,) + (1,) * h.ndim) + (grid - center.reshape((-1,) + (1,) * h.ndim)) / factor
    out = ndimage.map_coordinates(h, coords, order=1, mode="constant", cval=0.0)
    out = np.clip(out, 0, None)
    if out.sum() <= 0:
        raise ValueError(f"The PSF scaled by {factor} is empty.")
    return (out / out.sum()).astype(np.float32)


def mask_kind(mask: np.ndarray) -> str:
    """The kind of a Cartesian sampling mask: ``equispaced`` / ``random`` (whole lines) or ``poisson`` (2D)."""
    plane = np.asarray(mask)
    plane = (plane.reshape(-1, *plane.shape[-2:])[0] > 0)
    if not (plane == plane[:1]).all():
        return "poisson"
    cols = np.flatnonzero(plane[0])
    runs = np.split(cols, np.flatnonzero(np.diff(cols) > 1) + 1)
    center = max(runs, key=len)  # the fully sampled center lines
    gaps = np.concatenate([np.diff(cols[cols < center[0]]), np.diff(cols[cols > center[-1]])])
    if gaps.size < 2:
        return "equispaced"
    m = int(gaps.min())
    off_grid = np.abs(gaps - m * np.round(gaps / m)) > 1
    return "equispaced" if m >= 3 and not off_grid.any() else "random"


def _mri(A: Operator, key: str, value: Any, seed: int) -> Operator:
    from ..mri.masks import mask as make_mask
    from ..mri.operators import CartesianMRI

    nominal = A.mask_array
    kind, acceleration = mask_kind(nominal), float(np.round(A.acceleration, 1))
    if key == "acceleration":
        acceleration = float(value)
    elif key == "mask":
        kind = str(value)
    new = make_mask(kind, nominal.shape, acceleration=acceleration, seed=int(value) if key == "mask_seed" else seed)
    return CartesianMRI(new, coil_maps=A.coil_maps_array)


def perturb_operator(A: Operator, key: str, value: Any, seed: int = 0, optics: dict[str, Any] | None = None) -> Operator:
    """A copy of ``A`` with one property changed (see the module docstring); ``ValueError`` when ``A`` has none."""
    spec = A.spec()
    if key == "psf_scale":
        if "psf" not in spec:
            raise ValueError(f"A PSF-width perturbation needs a Blur operator; {A.name} has no PSF.")
        return from_spec({**spec, "psf": scale_psf(spec["psf"], float(value))})
    if key in ("na", "defocus_um"):
        if "psf" not in spec:
            raise ValueError(f"An {key} perturbation needs a Blur operator; {A.name} has no PSF.")
        if not optics:
            raise ValueError(f"An {key} perturbation needs the nominal optics (wavelength_um, na, pixel_size_um).")
        from ..operators.psf import widefield

        shape = np.asarray(spec["psf"]).shape
        params = {k: v for k, v in optics.items() if k in ("wavelength_um", "na", "pixel_size_um", "ni")}
        if key == "na":
            psf = widefield(shape, **{**params, "na": float(value)})
        elif len(shape) == 2:
            dz = abs(float(value))
            psf = widefield((1, *shape), **params, z_step_um=1.0)[0] if dz == 0 else \
                widefield((3, *shape), **params, z_step_um=dz)[0]
            psf = psf / psf.sum()
        else:
            raise ValueError("A defocus perturbation applies to 2D widefield PSFs; use psf_scale for 3D.")
        return from_spec({**spec, "psf": psf})
    if key in ("acceleration", "mask", "mask_seed"):
        if A.name != "CartesianMRI":
            raise ValueError(f"A {key} perturbation needs a Cartesian MRI operator, not {A.name}.")
        return _mri(A, key, value, seed)
    raise ValueError(f"Unknown perturbation {key!r}; choose one of {', '.join(OPERATOR_KEYS + ('noise_scale',))}.")


def perturb_noise(noise: NoiseModel, factor: float) -> NoiseModel:
    """The noise model with its variance scaled by ``factor²`` (Poisson gain × factor², σ × factor)."""
    if not np.isfinite(factor) or factor <= 0:
        raise ValueError(f"A noise scale must be a positive factor, got {factor}.")
    from ..operators.noise import from_spec as noise_from_spec

    spec = dict(noise.spec())
    if "gain" in spec and spec["gain"]:
        spec["gain"] = float(spec["gain"]) * factor**2
    if "sigma" in spec:
        spec["sigma"] = np.asarray(spec["sigma"]) * factor if np.ndim(spec["sigma"]) else float(spec["sigma"]) * factor
    return noise_from_spec(spec)
