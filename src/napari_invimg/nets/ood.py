"""How far an image lies from the denoiser's training data, seen by the denoiser itself.

Score of an image ``x`` (in the network's [0, 1] units): add Gaussian noise of a fixed level σ_ref and
measure the denoiser's relative error ``e(x) = log(‖D(x + σ_ref n, σ_ref) − x‖² / (N σ_ref²))``. On images like
its training data the error has a known spread (mean ``μ`` and standard deviation ``s`` over training crops,
stored in the weights' metadata); the score is the z-value ``(e(x) − μ)/s``: structures the network does
not know (new textures, artifacts) are hard to denoise and score high. Related to the residual-based
out-of-distribution tests of Graham et al. (CVPR 2023, "Denoising diffusion models for out-of-distribution
detection"), reduced to one denoiser call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = ["SIGMA_REF", "reference_statistics", "relative_error"]

#: the noise level (network units) at which the score is measured
SIGMA_REF = 0.1


def relative_error(denoise: Callable[[torch.Tensor, float], torch.Tensor], x: torch.Tensor,
                   sigma: float = SIGMA_REF, seed: int = 0) -> float:
    """``log(‖D(x + σn, σ) − x‖² / (N σ²))`` for an image ``x`` (2D tensor), noise from a seeded generator."""
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(x.shape, generator=g).to(device=x.device, dtype=x.dtype)
    with torch.no_grad():
        out = denoise(x + sigma * noise, sigma)
    mse = float(((out - x) ** 2).mean())
    return math.log(max(mse, 1e-12) / (sigma * sigma))


def reference_statistics(denoise: Callable[[torch.Tensor, float], torch.Tensor], images: Sequence[np.ndarray],
                         sigma: float = SIGMA_REF, patch: int = 64, per_image: int = 4, seed: int = 0) -> dict[str, float]:
    """Mean and standard deviation of :func:`relative_error` over ``per_image`` random ``patch``² crops of each
    training image: the reference the score is measured against (stored in the weights' metadata)."""
    rng = np.random.default_rng(seed)
    errors = []
    for k, im in enumerate(images):
        a = np.asarray(im, dtype=np.float32)
        for j in range(per_image):
            r = int(rng.integers(0, max(1, a.shape[0] - patch + 1)))
            c = int(rng.integers(0, max(1, a.shape[1] - patch + 1)))
            crop = torch.from_numpy(np.ascontiguousarray(a[r:r + patch, c:c + patch]))
            errors.append(relative_error(denoise, crop, sigma, seed=seed + 1000 * k + j))
    e = np.asarray(errors)
    return {"sigma": float(sigma), "patch": int(patch), "mean": float(e.mean()), "std": float(max(e.std(), 1e-3)),
            "crops": int(e.size)}
