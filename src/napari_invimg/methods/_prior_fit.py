"""Does the learned prior fit? ``info["prior_fit"]`` of every learned-prior result.

``misfit_ratio``: the mean weighted misfit ``mean(|A x̂ − y|²/v)`` of the returned mean, 1 at the noise level's
expectation (a value above 2 means the prior pulled the mean away from the data). ``ood_score``: how far the
mean lies from the denoiser's training data, seen by the denoiser (``nets.ood``: the z-value of its relative
denoising error at a fixed noise level against the spread of that error on training crops; above 3: outside).
``warning``: a sentence for the user when either is high, else ``None``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..nets.ood import relative_error
from ..priors.denoisers import Denoiser

__all__ = ["MISFIT_LIMIT", "OOD_LIMIT", "measured_misfit", "prior_fit_report"]

#: misfit ratio above which the result is flagged
MISFIT_LIMIT = 2.0
#: out-of-distribution z-value above which the input is flagged
OOD_LIMIT = 3.0
#: largest side of the center crop the score is measured on (bounds its cost)
_CROP = 256


def _slice2d(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """A real 2D image of ``x`` (magnitude when complex; the middle slice of a stack; the first of a batch)."""
    t = x.abs() if x.is_complex() else x
    if ndim == 3:
        t = t[..., t.shape[-3] // 2, :, :]
    t = t.reshape(-1, *t.shape[-2:])[0]
    h, w = t.shape
    r, c = max(0, (h - _CROP) // 2), max(0, (w - _CROP) // 2)
    return t[r:r + _CROP, c:c + _CROP].float()


def prior_fit_report(denoiser: Denoiser, estimate: torch.Tensor, misfit_ratio: float, ndim: int) -> dict[str, Any] | None:
    """``{"ood_score", "misfit_ratio", "warning"}`` for a result ``estimate`` (the denoiser's [0, 1] units) of a
    learned denoiser; ``None`` for denoisers without a training set (the classical ones)."""
    reference = getattr(denoiser, "ood_reference", None)
    if reference is None:
        return None
    ref = reference()
    image = _slice2d(estimate.detach(), ndim)
    error = relative_error(lambda t, s: denoiser(t, s, 2), image, ref["sigma"])
    score = (error - ref["mean"]) / ref["std"]
    ratio = float(misfit_ratio)
    notes = []
    if not math.isfinite(ratio) or ratio > MISFIT_LIMIT:
        notes.append(f"the mean misfits the data at {ratio:.2g}× the noise level's expectation (above {MISFIT_LIMIT:g}×): "
                     "the learned prior does not fit these data; compare with a classical prior (e.g. 'tv') or check "
                     "the noise model")
    if score > OOD_LIMIT:
        notes.append(f"the image looks unlike the denoiser's training data (out-of-distribution score {score:.1f}, "
                     f"above {OOD_LIMIT:g}): structures may be invented or lost; compare with a classical prior or "
                     "fine-tune the denoiser (ni.train_denoiser)")
    warning = ("Learned prior: " + "; ".join(notes) + ".") if notes else None
    return {"ood_score": float(score), "misfit_ratio": ratio, "warning": warning}


def measured_misfit(data: Any, x: torch.Tensor) -> float:
    """``Σ w |A x − y|² / (κ M)`` of a :class:`~napari_invimg.operators.DataTerm`: 1 at the noise level's expectation,
    per measured value (``M = A.n_measured()``: unsampled k-space, zero by construction, does not dilute it by 1/R)
    and κ = 2 for complex data (whose noise has variance ``v`` per component)."""
    kappa = 2.0 if data.y.is_complex() else 1.0
    return data.misfit(x) * data.y.numel() / (kappa * max(data.A.n_measured(), 1))


def prior_fit_info(likelihood: Any, denoiser: Denoiser, mean: torch.Tensor, ndim: int) -> dict[str, Any]:
    """``{"prior_fit": …}`` for a sampler's info (empty for classical denoisers): the misfit of ``mean`` under the
    ``likelihood`` (a :class:`~napari_invimg.operators.DataTerm`: its weights ``1/v``), the score on ``mean`` scaled to the denoiser's
    units by its 99.9th percentile."""
    with torch.no_grad():
        misfit = measured_misfit(likelihood, mean)
        mag = mean.abs().flatten().float()
        scale = float(torch.quantile(mag[:: max(1, mag.numel() // 100_000)], 0.999))
        report = prior_fit_report(denoiser, mean / max(scale, 1e-12), misfit, ndim)
    return {} if report is None else {"prior_fit": report}
