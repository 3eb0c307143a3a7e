"""Plug-and-play reconstructions: a denoiser ``D(x, σ)`` stands in for the prior's proximal operator.

Any registered denoiser works (``priors.denoiser_names()``: the learned ``"drunet"`` when shipped, the classical ``"tv"``,
``"wavelet"``, ``"hessian"``, ``"nlm"``). The data term (:class:`~napari_invimg.operators.DataTerm`) is the weighted least squares
``f(x) = ½ Σ (Ax − y)² / v`` with ``v`` the camera variance at the first estimate (exact for Gaussian noise, the usual Gaussian approximation of
Poisson noise). Images are normalized to about [0, 1] for the denoiser. The denoiser strength follows the
continuation of Zhang et al. (DPIR): ``σ_k`` falls geometrically from ``sigma_start`` to the noise level, with the
coupling ``ρ_k = λ / σ_k²`` (``λ = lam``, 0.23 by default), so no weight needs tuning. PnP-ADMM
and PnP-HQS apply the denoiser under a different flip/90° rotation at each iteration (``equivariant``) and watch the
iteration (``guard``: restart from the last sound iterate with stronger denoising when it diverges;
``info["guard"]``). With a learned denoiser they also start from Richardson–Lucy stopped at the noise level
(``start``; first level 0.07 instead of DPIR's 0.2, last level half the noise level: the RL estimate carries less
noise than the measurement where the data determine the image, RESULTS §3 helper ``bm3d4``), add fresh noise to the denoiser's input (``noise_injection``)
and return the mean of the last iterates (``average``): on Gaussian blur with Poisson noise these took PnP-ADMM
from 1.6 dB below TV to 1.7 dB above it on the held-out images (benchmarks/RESULTS.md §3, issue #14). Results
with a learned denoiser carry ``info["prior_fit"]`` (misfit ratio, out-of-distribution score, warning) and
``info["scheme"]`` (the start, first level, injection and the number of iterates averaged). On complex images (MRI)
the learned denoiser sees the image with the phase of its low-resolution centre removed (``phase``; MRI brain 8 coils,
Poisson 8×: 26.1 → 28.3 dB, RESULTS §6), without injection there and without averaging unless the operator asks for
it (the MRI operators average the last 8 iterates). An operator may name its own
learned denoiser and scheme (``preferred_denoiser``, ``plug_and_play_defaults``): the MRI operators take the network
fine-tuned on MR magnitudes (``"drunet_mri"``), the L1-wavelet start, a first level of a few times the noise and
λ = 1 (RESULTS §6, issue #14). RED takes the same scheme at one
level, 1.5 × the noise (RESULTS §3: from 0.7–5 dB below TV to at most 0.22 dB below it).
"""

from __future__ import annotations

from typing import Any

import torch

from ..operators.base import LinearOperator
from ..operators.data_term import DataTerm
from ..operators.noise import NoiseModel
from ..priors.base import clip
from ..priors.denoisers import Denoiser, denoiser_names, dihedral
from ..priors.learned import LearnedDenoiser
from ._posterior import WEIGHTS, load_denoiser
from ._prior_fit import measured_misfit, prior_fit_report
from ._proximal import initial_gain, initial_image
from .classical import RichardsonLucy
from .registry import (
    ITERATIONS,
    Context,
    Estimate,
    Method,
    Param,
    TileProfile,
    run_first_estimate,
)

__all__ = ["PnPADMM", "PnPPGD", "RED", "default_denoiser"]


def default_denoiser(A: LinearOperator | None = None) -> str:
    """The operator's ``preferred_denoiser`` when it is registered (the MRI operators: ``"drunet_mri"``), else
    ``"drunet"`` when the learned denoiser is available, else ``"tv"``."""
    names = denoiser_names()
    preferred = getattr(A, "preferred_denoiser", None)
    if preferred and preferred in names:
        return preferred
    return "drunet" if "drunet" in names else "tv"


DENOISER = Param("denoiser", str, None,
                 doc="a registered denoiser name (priors.denoiser_names(): tv, wavelet, hessian, nlm, drunet and "
                     "drunet_mri when shipped); empty: the operator's preferred one (MRI: drunet_mri, fine-tuned on MR "
                     "magnitudes), else drunet if shipped, else tv")
#: the coupling λ where neither the user nor the operator (``plug_and_play_defaults``) chooses one
DEFAULT_LAM = 0.23
LAM = Param("lam", float, None, 1e-4, 100.0, log_scale=True,
            doc="coupling λ in ρ = λ/σ² between data fit and denoiser; empty: 0.23, or the operator's measured choice "
                "with a learned denoiser (MRI: 1)")
SIGMA_START = Param("sigma_start", float, None, 1e-3, 1.0,
                    doc="first denoiser level (images scaled to ≈[0, 1]); empty: 0.07 after a Richardson–Lucy start, "
                        "the operator's multiple of the noise level (MRI), else 0.2 (DPIR's)")
START = Param("start", str, "auto", choices=("auto", "richardson_lucy", "wavelet", "adjoint"),
              doc="first estimate: Richardson–Lucy stopped at the noise level, the L1-wavelet (undecimated Haar, λ by "
                  "the discrepancy principle) reconstruction, or α·Aᴴy; auto: Richardson–Lucy with a learned denoiser "
                  "where it applies (real, non-negative problems on the operators it supports), else the operator's "
                  "measured choice (MRI: wavelet), else the adjoint")
NOISE_INJECTION = Param("noise_injection", float, None, 0.0, 4.0,
                        doc="fresh Gaussian noise of std c·σ_k added to a learned denoiser's input (which then runs at "
                            "σ_k·√(1+c²)): whitens the data step's colored noise, which a denoiser trained on white "
                            "noise turns into structure (seeded; 0: off); empty: 0.5 on real images, 0 on complex ones "
                            "(MRI: it cost 0.4 dB there)")
AVERAGE = Param("average", int, None, 1, 1000,
                doc="with a learned denoiser, return the mean of the denoised iterates of the last N iterations (at "
                    "most a third of them; 1: the last iterate); empty: 8 on real images, 1 on complex ones")
PHASE = Param("phase", str, "auto", choices=("auto", "remove", "keep"),
              doc="complex images (MRI) with a learned denoiser: remove the phase of the first estimate's low-resolution "
                  "centre before denoising, so the network sees a non-negative real image (and a small imaginary part) "
                  "like those it was trained on, not oscillating real and imaginary parts; auto: remove on complex "
                  "images, keep: denoise the real and imaginary parts as they are")
POSITIVITY = Param("positivity", bool, True, doc="clip x ≥ 0 (real images only)")
FIRST_GAIN = Param("first_gain", float, None, 1e-12, 1e12, log_scale=True,
                   doc="α of the first estimate α·Aᴴy; empty: the least-squares α")
SCALE = Param("scale", float, None, 1e-12, 1e12, log_scale=True,
              doc="intensity mapped to 1 for the denoiser; empty: the 99.9th percentile of the first estimate")
CG_ITERATIONS = Param("cg_iterations", int, 20, 1, 1000,
                      doc="conjugate-gradient steps per data step (warm-started, stops at a relative residual of 1e-6)")
NOISE_LEVEL = Param("noise_level", float, None, 1e-12, 1e12, log_scale=True,
                    doc="the measurement's noise std (data units); the last denoiser level is this (half of it after "
                        "the Richardson–Lucy start); empty: the root-mean camera variance at the first estimate")
GUARD = Param("guard", bool, True,
              doc="watch the iteration (misfit leaving the noise level, range growing, non-finite values); on divergence "
                  "restart from the last sound iterate with stronger denoising (info['guard'])")
EQUIVARIANT = Param("equivariant", bool, True,
                    doc="apply a learned denoiser under a different flip/90° rotation at each iteration (stabilizes "
                        "plug-and-play; Terris et al. 2024; classical denoisers: no effect)")
#: the last denoiser level as a multiple of the noise level after the Richardson–Lucy start (learned denoisers, real
#: images); chosen on validation images (never the bar's held-out test images), benchmarks/RESULTS.md §3 (helper
#: ``bm3d4``): the data step's estimate carries less noise than the measurement where the data determine the image
#: (smooth cells, flat leaves), and a network run at the measurement's level there smooths away what RL kept
RL_START_END_NOISE = 0.5
#: the parameters of the annealed schemes (PnP-ADMM, PnP-HQS) beyond the problem's
SCHEME_PARAMS = (LAM, SIGMA_START, START, NOISE_INJECTION, AVERAGE, PHASE, CG_ITERATIONS, GUARD, EQUIVARIANT)
#: the parameters of :class:`_Problem` (its keywords), shared by every PnP method
PROBLEM_PARAMS = (DENOISER, WEIGHTS, POSITIVITY, SCALE, NOISE_LEVEL, FIRST_GAIN)


class _Problem:
    """A plug-and-play problem in normalized units: the data term, the denoiser and the continuation schedule."""

    def __init__(self, y: torch.Tensor, A: LinearOperator, noise: NoiseModel, positivity: bool, denoiser: str | None,
                 weights: str = "", scale: float | None = None, noise_level: float | None = None,
                 first_gain: float | None = None):
        name = default_denoiser(A) if denoiser is None else denoiser
        if name not in denoiser_names():
            raise ValueError(f"Unknown denoiser {name!r}; available: {', '.join(denoiser_names())}.")
        self.denoiser_name = name
        self.denoiser: Denoiser = load_denoiser(name, weights)
        #: a trained network (flips/rotations help it; the classical denoisers are symmetric already)
        self.learned = isinstance(self.denoiser, LearnedDenoiser)
        self.A = A
        self.lower = 0.0 if positivity and not A.in_complex else None
        self.first_gain = initial_gain(y, A) if first_gain is None else float(first_gain)
        x0 = initial_image(y, A, self.lower, self.first_gain)
        if scale is None:
            mag = x0.abs().flatten()
            k = max(int(0.999 * mag.numel()) - 1, 0)
            scale = float(mag.kthvalue(k + 1).values)
        self.scale = max(float(scale), 1e-12)
        self.x0 = x0 / self.scale
        z0 = A.apply(x0)
        v = noise.variance(z0.real if z0.is_complex() else z0) / self.scale**2
        #: the data term f in normalized units, weighted by the camera variance at the first estimate; its
        #: ``prox`` is the data step (warm-started, preconditioned CG)
        self.data = DataTerm(y / self.scale, A, noise.scaled(1.0 / self.scale), variance=v)
        #: noise level of the measurement in normalized units (the last denoiser level)
        self.sigma_noise = float(v.mean().sqrt()) if noise_level is None else float(noise_level) / self.scale

    def schedule(self, sigma_start: float, n: int, end_factor: float = 1.0) -> list[float]:
        """``n`` levels falling geometrically from ``sigma_start`` to ``end_factor`` × the noise level (at least 1e-3)."""
        end = max(end_factor * self.sigma_noise, 1e-3)
        start = max(sigma_start, end)
        if n == 1:
            return [end]
        return [start * (end / start) ** (k / (n - 1)) for k in range(n)]

    #: unit phase ``e^{iφ}`` removed before denoising (complex images, :func:`lowres_phase`), or None
    phase: torch.Tensor | None = None
    #: clip the real part of a phase-removed complex image at 0 (``positivity``)
    positive_magnitude: bool = False

    def remove_phase(self, positivity: bool) -> None:
        """Denoise complex images as ``e^{iφ} (D(Re(e^{−iφ}x)) + i D(Im(e^{−iφ}x)))`` with φ the phase of the first
        estimate's low-resolution centre."""
        self.phase = lowres_phase(self.x0, self.A.ndim)
        self.positive_magnitude = positivity

    def denoise(self, x: torch.Tensor, sigma: float, ctx: Context, turn: int | None = None) -> torch.Tensor:
        """``D(x, σ)`` clipped to the bounds; with ``turn`` = k, under the k-th of the 8 flips/90° rotations."""
        ctx.evaluations += 1
        if turn is None:
            def f(t):
                return self.denoiser(t, sigma, self.A.ndim)
        else:
            def f(t):
                return dihedral(lambda u: self.denoiser(u, sigma, self.A.ndim), t, turn)
        if self.phase is None:
            return clip(f(x), self.lower, None)
        w = x * self.phase.conj()
        real = f(w.real)
        if self.positive_magnitude:
            real = real.clamp(min=0)
        return torch.complex(real, f(w.imag)) * self.phase

    def report(self, ctx: Context, k: int, total: int, x: torch.Tensor, sigma: float) -> torch.Tensor:
        xs = x * self.scale
        ctx.log(sigma=sigma * self.scale, misfit_weighted=self.data.misfit(x))
        ctx.keep(xs, iteration=k)
        ctx.step(k, total, xs)
        return xs

    def info(self, k: int, **extra: Any) -> dict[str, Any]:
        return {"iterations": k, "denoiser": self.denoiser_name, "sigma_end": self.sigma_noise * self.scale, "scale": self.scale,
                "first_gain": self.first_gain, **extra}


def lowres_phase(x: torch.Tensor, ndim: int, fraction: float = 0.08) -> torch.Tensor:
    """``e^{iφ}``, φ the phase of ``x`` low-pass filtered by a Gaussian of std ``fraction`` × size in k-space (the
    calibration region's width): the smooth background phase of an MR image, which homodyne and phase-constrained
    reconstructions remove (Noll, Nishimura & Macovski, IEEE TMI 10 (1991) 154)."""
    axes = tuple(range(x.ndim - ndim, x.ndim))[-2:]
    k = torch.fft.fftn(x, dim=axes)
    window = torch.ones((), dtype=x.real.dtype, device=x.device)
    for a in axes:
        n = x.shape[a]
        f = torch.fft.fftfreq(n, device=x.device, dtype=x.real.dtype) * n
        shape = [1] * x.ndim
        shape[a] = n
        window = window * torch.exp(-0.5 * (f / (fraction * n)) ** 2).reshape(shape)
    low = torch.fft.ifftn(k * window, dim=axes)
    mag = low.abs()
    floor = 1e-6 * float(mag.max()) + 1e-30
    return torch.where(mag > floor, low / mag.clamp(min=floor), torch.ones_like(low))


def misfit_ratio(P: _Problem, z: torch.Tensor) -> float:
    """``Σ |Az − y|²/v / (κ M)``: 1 at the noise level's expectation (``M`` measured values, ``κ`` = 2 for complex data;
    unsampled k-space does not count)."""
    return measured_misfit(P.data, z)


class _Guard:
    """Watches a plug-and-play iteration and steps back when it runs away.

    Each iteration's estimate ``z`` is checked: non-finite values; the weighted misfit ``mean(|Az − y|²/v)`` (1 at
    the noise level) above 2 and above 1.5× its least value so far, after the first three iterations (the misfit
    leaving the noise level); the range ``max |z|`` above 1.5× that of the first estimate (the iterate outgrowing the
    data). On a breach the iteration restarts from the last sound iterate, with the denoiser level held at twice the
    level where it broke (stronger denoising) for the rest of the schedule; after three restarts it stops there.
    """

    MAX_RESTARTS = 3

    def __init__(self, P: _Problem, enabled: bool):
        self.P, self.enabled = P, enabled
        self.range0 = float(P.x0.abs().max())
        self.best_misfit = float("inf")
        self.sound: tuple | None = None
        self.floor = 0.0
        self.restarts: list[dict[str, Any]] = []
        self.stopped = False

    def misfit(self, z: torch.Tensor) -> float:
        return misfit_ratio(self.P, z)

    def sigma(self, s: float) -> float:
        """The denoiser level to use: the schedule's, or the floor set by a restart."""
        return max(s, self.floor)

    def check(self, k: int, s: float, state: tuple) -> tuple | None:
        """``None`` when iterate ``k`` (``state[0]`` its estimate) is sound (it is remembered), else the state
        to restart from."""
        if not self.enabled:
            return None
        z = state[0]
        finite = bool(torch.isfinite(z).all())
        misfit = self.misfit(z) if finite else float("inf")
        size = float(z.abs().max()) if finite else float("inf")
        reason = None
        if not finite:
            reason = "non-finite values"
        elif k > 3 and misfit > 2.0 and misfit > 1.5 * self.best_misfit:
            reason = f"misfit {misfit:.2f}× the noise level's (least so far {self.best_misfit:.2f})"
        elif size > 4.0 * self.range0:
            reason = f"range {size:.3g} above 4× the first estimate's {self.range0:.3g}"
        if reason is None or self.sound is None:
            self.best_misfit = min(self.best_misfit, misfit)
            self.sound = tuple(t.clone() for t in state)
            return None
        self.restarts.append({"iteration": k, "reason": reason, "sigma": s * self.P.scale})
        if len(self.restarts) > self.MAX_RESTARTS:
            self.stopped = True
        self.floor = max(self.floor, 2 * s)
        return tuple(t.clone() for t in self.sound)

    def info(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "restarts": self.restarts, "stopped_early": self.stopped,
                "sigma_floor": self.floor * self.P.scale}


def _richardson_lucy_applies(y: torch.Tensor, A: LinearOperator, P: _Problem) -> bool:
    return P.lower is not None and RichardsonLucy.applies(y, A)


class _Scheme:
    """What PnP-ADMM and PnP-HQS share beyond the data term: the first estimate, the schedule ``σ_k``, the denoiser
    step (flips/rotations, noise injection) and the mean of the last iterates.

    Why (benchmarks/RESULTS.md §3, issue #14): with Gaussian blur and Poisson noise, the data step leaves colored
    (band-pass) noise of about the denoiser's level; a network trained on white noise turns it into worm-like
    structure, and the iteration keeps it. Fresh white noise added to the denoiser's input (``noise_injection``:
    the input is then closer to what the network saw in training; SNORE, Renaud et al., SIAM J. Imaging Sci. 2024;
    DiffPIR's re-noising, Zhu et al., CVPR 2023) and the mean of the last iterates (a cheap average over that
    noise) remove it; starting from Richardson–Lucy stopped at the noise level with a low first level (0.07)
    keeps what the data already determine instead of re-deriving it from a cartoon at σ = 0.2.
    """

    def __init__(self, P: _Problem, y: torch.Tensor, A: LinearOperator, noise: NoiseModel, ctx: Context, iterations: int,
                 sigma_start: float | None, start: str, noise_injection: float | None, average: int | None,
                 equivariant: bool, phase: str = "keep", positivity: bool = True, lam: float | None = None,
                 operator_tuned: bool = True):
        complex_image = A.in_complex  # the image, not the data: visibilities are complex, the sky is real
        #: the operator's measured choices for a learned denoiser (MRI: the L1-wavelet start, a low first level)
        tuned = A.plug_and_play_defaults() if P.learned and operator_tuned else {}
        if noise_injection is None:
            noise_injection = 0.0 if complex_image else 0.5
        if average is None:
            average = int(tuned.get("average", 1 if complex_image else 8))
        self.phase = "removed" if (phase == "remove" or (phase == "auto" and P.learned)) and complex_image else None
        if self.phase:
            P.remove_phase(positivity)
        rl = start == "richardson_lucy" or (start == "auto" and P.learned and _richardson_lucy_applies(y, A, P))
        if start == "auto" and not rl:
            start = tuned.get("start", "adjoint")
        if rl:
            if not _richardson_lucy_applies(y, A, P):
                raise ValueError(f"start='richardson_lucy' needs a real, non-negative problem (positivity=True) on one of "
                                 f"{', '.join(RichardsonLucy.operators)}; this is a {A.name}. Use start='adjoint'.")
            first = run_first_estimate("richardson_lucy", y, A, noise, ctx, 0.1, iterations).mean
            P.x0 = clip(first.to(P.x0.dtype) / P.scale, P.lower, None)
        elif start == "wavelet":  # about as long as the PnP iterations that follow (RESULTS §6): 40 % of the bar
            first = run_first_estimate("wavelet", y, A, noise, ctx, 0.4, iterations, wavelet="haar").mean
            P.x0 = clip(first.to(P.x0.dtype) / P.scale, P.lower, None)
        self.start = "richardson_lucy" if rl else ("wavelet" if start == "wavelet" else "adjoint")
        #: the coupling λ of ρ_k = λ/σ_k²
        self.lam = float(lam) if lam is not None else float(tuned.get("lam", DEFAULT_LAM))
        if sigma_start is not None:
            s0 = sigma_start
        elif "sigma_start_noise" in tuned:
            s0 = tuned["sigma_start_noise"] * P.sigma_noise
        else:
            s0 = 0.07 if rl else 0.2
        end = tuned.get("sigma_end_noise", RL_START_END_NOISE if rl else 1.0)
        self.sigmas = P.schedule(s0, iterations, float(end))
        self.injection = float(noise_injection) if P.learned else 0.0
        self.generator = ctx.generator(offset=14) if self.injection > 0 else None
        self.average = max(1, min(int(average), len(self.sigmas) // 3)) if P.learned else 1
        self.equivariant = equivariant and P.learned
        self.sum: torch.Tensor | None = None
        self.count = 0

    def denoise(self, P: _Problem, v: torch.Tensor, s: float, k: int, ctx: Context) -> torch.Tensor:
        """``D(v + c·σ·n, σ·√(1+c²))`` under the k-th flip/rotation (learned denoisers), else ``D(v, σ)``."""
        if self.injection > 0:
            n = torch.randn(v.shape, generator=self.generator, device=v.device, dtype=v.real.dtype)
            if v.is_complex():
                n = torch.complex(n, torch.randn(v.shape, generator=self.generator, device=v.device, dtype=n.dtype))
            v = v + (self.injection * s) * n
            s = s * (1.0 + self.injection**2) ** 0.5
        return P.denoise(v, s, ctx, turn=k if self.equivariant else None)

    def keep(self, k: int, z: torch.Tensor) -> None:
        """Add iterate ``k``'s estimate to the mean when it is among the last ``average``."""
        if k > len(self.sigmas) - self.average:
            self.sum = z.clone() if self.sum is None else self.sum + z
            self.count += 1

    def restart(self) -> None:
        self.sum, self.count = None, 0

    def result(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.count == 0 else self.sum / self.count

    def info(self) -> dict[str, Any]:
        return {"start": self.start, "sigma_start": self.sigmas[0], "sigma_last": self.sigmas[-1], "lam": self.lam,
                "noise_injection": self.injection, "averaged": self.count, "phase": self.phase}


def prior_fit(P: _Problem, estimate: torch.Tensor) -> dict[str, Any]:
    """``{"prior_fit": …}`` for a plug-and-play result's info (learned denoisers only; empty for classical ones)."""
    seen = estimate if P.phase is None else estimate * P.phase.conj()  # what the denoiser was given
    report = prior_fit_report(P.denoiser, seen, misfit_ratio(P, estimate), P.A.ndim)
    return {} if report is None else {"prior_fit": report}


_REFERENCE_PNP = ("Venkatakrishnan, Bouman & Wohlberg, GlobalSIP (2013) 945; Zhang et al., IEEE TPAMI 44 (2022) 6360 "
                  "(DPIR continuation).")


#: reach (pixels) assumed for a denoiser that does not declare ``receptive_field`` (the classical ones, e.g. TV)
_DEFAULT_RECEPTIVE_FIELD = 16


class _TiledPlugAndPlay(Method):
    """How PnP-ADMM and PnP-HQS tile (benchmarks/RESULTS.md §8): with the TV denoiser (a convex prox: tiles converge
    to the untiled result) and data steps solved to convergence; with the learned denoiser (tiles on its 8-pixel grid,
    halo + its 53-pixel receptive field) for denoising and 2D deblurring, not for 3D deblurring, where 24 annealed
    iterations amplified the tiles' differences to 6e-3 of the data range even with an 88-pixel halo."""

    tile_profile = TileProfile(3.0, 0, 24)
    #: the denoisers verified to tile (the first is the default in tiles), and the problems where one was
    #: verified on some only: ``(denoiser, operator, ndim)``
    tile_denoisers: tuple[str, ...] = ("tv", "drunet")
    tile_verified_on: tuple[tuple[str, str, int], ...] = (("drunet", "Identity", 2), ("drunet", "Identity", 3),
                                                          ("drunet", "Blur", 2))

    @classmethod
    def tile_params(cls, A: LinearOperator, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("denoiser") or cls.tile_denoisers[0]
        if name not in cls.tile_denoisers:
            raise ValueError(f"{cls.name!r} runs tile by tile only with the denoiser(s) {', '.join(cls.tile_denoisers)}; "
                             f"{name!r} is not verified to tile (its result would depend on the tile borders). Choose "
                             f"one of those, or load the data into memory (np.asarray).")
        verified = [(op, nd) for den, op, nd in cls.tile_verified_on if den == name]
        if verified and (A.name, A.ndim) not in verified:
            where = ", ".join(f"{op} {nd}D" for op, nd in verified)
            raise ValueError(f"The {name!r} denoiser runs tile by tile in {cls.name!r} only on {where} problems, not on "
                             f"a {A.ndim}D {A.name}: there its tiled result differs from the untiled one (a non-convex "
                             f"iteration amplifies the tiles' small differences). Use denoiser='tv' in tiles, or load "
                             f"the data into memory (np.asarray).")
        return {**params, "denoiser": name}

    @classmethod
    def tile_reach(cls, params: dict[str, Any]) -> tuple[int, int]:
        """The denoiser's receptive field and grid."""
        den = load_denoiser(params.get("denoiser") or cls.tile_denoisers[0], params.get("weights") or "")
        return int(getattr(den, "receptive_field", _DEFAULT_RECEPTIVE_FIELD)), int(den.grid)

    @classmethod
    def resolve_globals(cls, pilot, y, noise: NoiseModel, params: dict[str, Any], frames: int = 1) -> dict[str, Any]:
        """The first estimate's gain, the image scale and the last denoiser level are global (from the pilot); the data
        step's CG, whose step sizes are global inner products, runs to convergence (its exact solution is local)."""
        params = {**params, "cg_iterations": max(int(params["cg_iterations"]), 200)}
        # the guard's restarts (global misfit and range) and the per-iteration flips (which move the denoiser's grid
        # against the tile borders) would differ from tile to tile: tiles run the plain iteration
        params.update({k: False for k in ("guard", "equivariant") if k in params})
        # the Richardson–Lucy start stops on a global misfit, and the injected noise is drawn per tile: tiles start from
        # α·Aᴴy and run without injection
        params.update({k: v for k, v in (("start", "adjoint"), ("noise_injection", 0.0)) if k in params})
        if any(params.get(k) is None for k in ("scale", "noise_level", "first_gain")):
            info = pilot({**params, "iterations": 1}).info
            found = {"scale": info["scale"], "noise_level": info["sigma_end"], "first_gain": info["first_gain"]}
            params = {**params, **{k: v for k, v in found.items() if params.get(k) is None}}
        return params


    #: ADMM (True: the scaled dual u accumulates x − z) or half-quadratic splitting (False: u stays 0)
    dual_update: bool = True

    def run(self, y, A, noise, ctx: Context, iterations: int, lam: float | None, sigma_start: float | None, start: str,
            noise_injection: float | None, average: int | None, phase: str, cg_iterations: int, guard: bool,
            equivariant: bool, **setup: Any) -> Estimate:
        """x = argmin f + ρ_k/2‖x − z + u‖², z = D(x + u, σ_k), u += x − z (ADMM) or u = 0 (HQS), ρ_k = λ/σ_k²."""
        with torch.no_grad():
            P = _Problem(y, A, noise, **setup)
            S = _Scheme(P, y, A, noise, ctx, iterations, sigma_start, start, noise_injection, average, equivariant,
                        phase, setup.get("positivity", True), lam)
            lam = S.lam
            G = _Guard(P, guard)
            x = z = P.x0
            u = torch.zeros_like(x)
            for k, s in enumerate(S.sigmas, 1):
                s = G.sigma(s)
                x = P.data.prox(z - u, lam / (s * s), x, cg_iterations)
                z = S.denoise(P, x + u, s, k, ctx)
                if self.dual_update:
                    u = u + x - z
                back = G.check(k, s, (z, x, u))
                if back is not None:
                    z, x, u = back
                    S.restart()
                S.keep(k, z)
                P.report(ctx, k, iterations, S.result(z) if k == len(S.sigmas) else z, s)
                if G.stopped:
                    break
            mean = S.result(z)
            out = mean * P.scale
        return Estimate(out, info=P.info(k, guard=G.info(), scheme=S.info(), **prior_fit(P, mean)))


class PnPADMM(_TiledPlugAndPlay):
    name = "pnp_admm"
    label = "PnP-ADMM"
    description = ("ADMM with a denoiser as prior prox: x = argmin f + ρ/2‖x − z + u‖², z = D(x + u, σ_k), u += x − z; "
                   "σ_k annealed to the noise level, ρ_k = λ/σ_k².")
    reference = _REFERENCE_PNP
    params = (ITERATIONS(24, 500), *PROBLEM_PARAMS, *SCHEME_PARAMS)
    dual_update = True


class PnPPGD(_TiledPlugAndPlay):
    name = "pnp_pgd"
    label = "PnP-HQS (DPIR)"
    description = ("Half-quadratic splitting x = argmin f + ρ_k/2‖x − z‖², z = D(x, σ_k): proximal steps with a denoiser "
                   "as the prior's prox (the PGD family with an exact data step); σ_k annealed to the noise level, "
                   "ρ_k = λ/σ_k².")
    reference = _REFERENCE_PNP + " Geman & Yang, IEEE TIP 4 (1995) 932 (HQS)."
    params = (ITERATIONS(24, 2000), *PROBLEM_PARAMS, *SCHEME_PARAMS)
    dual_update = False


class RED(Method):
    name = "red"
    label = "RED (regularization by denoising)"
    description = ("argmin f(x) + λ/2σ² xᵀ(x − D(x, σ)) by Romano's fixed point x ← (AᵀWA + λ/σ²)⁻¹(AᵀWy + λ/σ² D(x, σ)); "
                   "σ from the noise level unless given; with a learned denoiser the first estimate, noise injection, "
                   "flips and mean of the last iterates of PnP-ADMM.")
    reference = ("Romano, Elad & Milanfar, SIAM J. Imaging Sci. 10 (2017) 1804; Renaud, Prost, Leclaire & Papadakis, "
                 "SIAM J. Imaging Sci. 17 (2024) (stochastic denoising regularization).")
    params = (ITERATIONS(40, 1000), *PROBLEM_PARAMS, LAM,
              Param("sigma", float, None, 1e-4, 1.0,
                    doc="denoiser level (images scaled to ≈[0, 1]); empty: 1.5 × noise level"),
              START, NOISE_INJECTION, AVERAGE, PHASE, EQUIVARIANT, CG_ITERATIONS,
              Param("tol", float, 1e-4, 1e-8, 1e-1, log_scale=True,
                    doc="stop when the relative change of x falls below this (not with noise injection, whose "
                        "iterates keep moving: then all iterations run)"))

    def run(self, y, A, noise, ctx: Context, iterations: int, lam: float | None, sigma: float | None, start: str,
            noise_injection: float | None, average: int | None, phase: str, equivariant: bool, cg_iterations: int,
            tol: float, **setup: Any) -> Estimate:
        """Why the scheme (benchmarks/RESULTS.md §3, issue #14): plain RED from α·Aᴴy at σ = 2 × noise lost 0.7–5 dB to
        TV on deblurring; the data step's colored noise turned into structure as in PnP-ADMM, and the same remedies
        (Richardson–Lucy start, noise injection, flips, mean of the last iterates) and σ = 1.5 × noise bring it to TV
        or above."""
        with torch.no_grad():
            P = _Problem(y, A, noise, **setup)
            S = _Scheme(P, y, A, noise, ctx, iterations, None, start, noise_injection, average, equivariant, phase,
                        setup.get("positivity", True), operator_tuned=False)  # measured for the annealed schemes only
            s = sigma if sigma is not None else max(1.5 * P.sigma_noise, 2e-3)
            S.sigmas = [s] * iterations
            lam = DEFAULT_LAM if lam is None else lam
            rho = lam / (s * s)
            x = P.x0
            k = 0
            for k in range(1, iterations + 1):
                d = S.denoise(P, x, s, k, ctx)
                x_new = clip(P.data.prox(d, rho, x, cg_iterations), P.lower, None)
                change = float(torch.linalg.vector_norm(x_new - x)) / max(float(torch.linalg.vector_norm(x_new)), 1e-30)
                x = x_new
                S.keep(k, x)
                out = P.report(ctx, k, iterations, S.result(x) if k == iterations else x, s)
                if k > 3 and change < tol and S.injection == 0:
                    break
            mean = S.result(x) if S.count else x
            out = mean * P.scale
        return Estimate(out, info=P.info(k, sigma=s * P.scale, lam=lam, scheme=S.info(), **prior_fit(P, mean)))
