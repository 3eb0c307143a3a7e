"""A hierarchical raster posterior for VLBI: a Gaussian Markov random field around a mean image, its strength and
correlation length sampled with the image, by Hamiltonian Monte Carlo.

    x = F · m ⊙ (1 + σ f)  (link "linear", the default),   F · m ⊙ softplus₅(1 + σ f)  ("softplus"),
    F · softmax(log m + σ f)  ("log", Comrade.jl's log-intensity raster);   f = K_ρ ε,   ε ~ N(0, I),
    log σ ~ N(0, 1),  log ρ ~ N(log r, 1),  log F ~ N(log F₀, s_F²)

``m`` is a mean image of unit flux (rml's image blurred to the nominal resolution without its flux below
``mean_threshold`` of the blurred peak, :func:`compact_mean_image`, ``mean_image="rml"``, the default;
or a Gaussian of FWHM ``prior_fwhm_uas``); in the linear link the field is made flux-free (``f − Σmf/Σm``) so that F
is the total flux and not traded against σ. On complex visibilities with the linear link (``sampler="auto"``, the
default there) the field is integrated out: given θ = (σ, ρ, F) the model is linear-Gaussian in ε, so θ is sampled
from its marginal posterior ``p(θ) N(ỹ; F a, I + F²σ² G K_ρ² Gᵀ)`` by adaptive Metropolis (one data-space Cholesky
per evaluation) and ε | θ, y is drawn exactly after every transition (:mod:`.collapsed`; Rue & Held 2005, §4.1).
On closure quantities with the linear link (``sampler="auto"``) the sampler is HMC-within-Gibbs (below) with one more
move of (σ, ρ, F): the closure residuals are linearized at a mean image, the linearized model is collapsed the same
way, and θ moves given the auxiliary normals of its exact draws of ε, corrected to the exact posterior by an importance
weight inside the chain (:class:`_LinearizedMove`). Closures fix neither the total flux nor the position: F is drawn
from its prior after every transition (its exact conditional), and a Gaussian prior on the image centroid about m's
(sd ``centroid_sd`` × the nominal resolution; eht-imaging's centre-of-mass term) fixes the position, which otherwise
only m anchors and the samples jitter in (RESULTS.md §7: on the ring a third of the pixel variance).
Otherwise (a nonlinear link, or ``sampler="hmc"``) the sampler is HMC-within-Gibbs: HMC moves ε with (σ, ρ, F) held (given
them the image is linear in ε), and between its transitions (σ, ρ, F) move by Metropolis on their non-centered
conditionals (:meth:`GMRFPosterior.hyper_moves`) and (σ, ρ) by ASIS interweaving steps with the field σK_ρε held fixed
(:meth:`GMRFPosterior.interweave`). ``K_ρ`` the stationary filter whose power
spectrum is the order-``order`` Matérn / GMRF one, ``(κ² + λ(k))^{-order}`` — times ``1 + g (1 − |B̂(k)|²)``,
``B̂`` the transfer function of the blur to the nominal resolution and ``g`` = ``high_frequency_gain`` (10 on
closures): the mean image is blurred to the resolution, so the structure it lacks lies beyond it, and without the
gain the one σ that the long baselines fix is carried at full strength into the unmeasured low frequencies, making
the band 1.3–2.3× too wide (RESULTS.md §7, helpers ``closure6``, ``closure7``) — with ``κ = 1/ρ`` (ρ in pixels) and
``λ(k) = 4 sin²(πk₁/N) + 4 sin²(πk₂/N)`` the eigenvalues of the grid Laplacian (periodic grid), normalized to
unit variance per pixel, ``r`` the nominal resolution in pixels and ``F₀`` the zero-baseline flux. The
non-centered form (ε, σ, ρ, F sampled jointly; Papaspiliopoulos, Roberts & Sköld, Stat. Sci. 22 (2007) 59) is the
one Comrade.jl uses for its raster models (Tiede, JOSS 7 (2022) 4457; EHT Collaboration 2024, A&A 681, A79).
The likelihood is Gaussian in the complex visibilities, or in the closure phases (von Mises-like
``2(1 − cos Δψ)/σ²``) and log closure amplitudes, with a fractional systematic error added to every
visibility's sigma. HMC runs in coordinates whitened by the Gauss–Newton metric of ε, recomputed at the chains'
draws at the end of each warm-up window (Stan's schedule), each chain with its own step size
(:mod:`napari_invimg.methods._hmc`). The log link is what Comrade uses, but on these
high-SNR data (visibility SNR up to 2000) its curvature varies by 10⁴–10⁶ across the posterior and HMC's step
collapses to 0.01 (RESULTS.md §7, issue #19); the linear link (a Gaussian image model, not positive) mixes.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..methods._hmc import fisher_metric, hmc, warmup_windows
from ..methods.registry import Context, Estimate, Method, Param
from ..operators.base import Operator
from ..operators.noise import NoiseModel
from ..uncertainty import effective_sample_size, mixing_summary, split_rhat
from .operators import Closures, Interferometer, gaussian_image
from .rml import _sigma_of, resolve_total_flux, single_thread

__all__ = ["GMRFHMC", "LINKS", "SAMPLERS", "GMRFPosterior", "compact_mean_image"]

#: how the image follows from the field f: ``linear`` F m (1 + f); ``softplus`` F m softplus_β(1 + f) (positive, with
#: a bounded second derivative, so HMC's step is not throttled as by the exponential); ``log`` F softmax(log m + f)
LINKS = ("linear", "softplus", "log")
#: ``auto``: the collapsed sampler where the model is linear-Gaussian in ε (visibilities, linear link), else ``hmc``
SAMPLERS = ("auto", "collapsed", "hmc")
#: sharpness β of the softplus link: softplus_β(u) = log(1 + e^{βu})/β, 0.0013 at u = −1, 0.14 at u = 0
SOFTPLUS_BETA = 5.0


def _check_scalars(*, prior_fwhm_uas: float, order: int, flux_uncertainty: float, systematic: float,
                   mean_floor: float, high_frequency_gain: float) -> None:
    """``ValueError`` naming the first of :class:`GMRFPosterior`'s scalars that is out of its range (NaN included)."""
    checks = (("prior_fwhm_uas", prior_fwhm_uas, "positive", lambda v: v > 0),
              ("order", order, "an integer ≥ 1", lambda v: v >= 1 and float(v).is_integer()),
              ("flux_uncertainty", flux_uncertainty, "positive", lambda v: v > 0),
              ("systematic", systematic, "non-negative", lambda v: v >= 0),
              ("mean_floor", mean_floor, "in [0, 1)", lambda v: 0 <= v < 1),
              ("high_frequency_gain", high_frequency_gain, "non-negative", lambda v: v >= 0))
    for name, value, what, ok in checks:
        if not (math.isfinite(float(value)) and ok(float(value))):
            raise ValueError(f"{name} must be finite and {what}, got {value}.")


class GMRFPosterior:
    """The negative log-posterior of the module docstring on parameter vectors ``θ = [ε (N²), log σ, log ρ,
    log F]`` (batches: (chains, N² + 3)), and the whitened data residuals whose half squared norm is the
    negative log-likelihood.

    ``mean_floor``: m is kept above this fraction of its peak (times the Gaussian of ``prior_fwhm_uas``), so that the
    linear link can put flux everywhere (a given mean or amplitude image's negative values are set to 0 first).
    ``amplitude_image``: with the linear link, the field's amplitude a apart from
    the mean, ``x = F (m + σ a ⊙ P_a K_ρ ε)``, ``P_a f = f − Σaf/Σa`` (default a = m: ``F m (1 + σ P K_ρ ε)``),
    floored like m (``mean_floor`` of its peak times the Gaussian of ``prior_fwhm_uas``: a = m gives the default).
    ``high_frequency_gain`` g: the spectrum of ``K_ρ`` times ``1 + g (1 − |B̂(k)|²)`` (module docstring)."""

    def __init__(self, y: torch.Tensor, A: Operator, noise: NoiseModel, *, prior_fwhm_uas: float, order: int,
                 total_flux: float | None, flux_uncertainty: float, systematic: float = 0.0, link: str = "log",
                 dtype: torch.dtype = torch.float64, mean_image: np.ndarray | None = None,
                 centroid_sd: float = 0.02, mean_floor: float = 0.01, amplitude_image: np.ndarray | None = None,
                 high_frequency_gain: float = 0.0):
        fwd = A.interferometer if isinstance(A, Closures) else A
        if not isinstance(fwd, Interferometer):
            raise TypeError(f"gmrf_hmc images with the Interferometer or Closures operators, not {A.name}.")
        _check_scalars(prior_fwhm_uas=prior_fwhm_uas, order=order, flux_uncertainty=flux_uncertainty,
                       systematic=systematic, mean_floor=mean_floor, high_frequency_gain=high_frequency_gain)
        self.A, self.fwd, self.dtype = A, fwd, dtype
        self.closures = isinstance(A, Closures)
        n = fwd.npix
        self.npix = n
        sigma = _sigma_of(noise, A.out_shape[0])
        if self.closures:
            self.y = torch.as_tensor(np.asarray(y.detach().cpu()), dtype=dtype)
            self.k = A.n_phases
            # a fractional error f on every visibility adds f² per baseline of a closure (3 per phase, 4 per amplitude)
            baselines = np.concatenate([np.abs(A.design.phase).sum(1), np.abs(A.design.amplitude).sum(1)])
            sigma = np.sqrt(sigma**2 + baselines * systematic**2)
        else:
            self.y = y.detach().cpu().to(torch.complex128 if dtype == torch.float64 else torch.complex64)
            sigma = np.sqrt(sigma**2 + (systematic * np.abs(self.y.numpy())) ** 2)
        self.sigma = torch.as_tensor(sigma, dtype=dtype)
        self.matrix = None  # [Re; Im] rows of the DFT in one matrix: one product per evaluation
        if fwd.transform == "dft":
            self.matrix = fwd.real_matrix(dtype).T.contiguous()
        if not self.closures:
            self.y_ri = torch.cat([self.y.real, self.y.imag]).to(dtype)
            self.sigma_ri = torch.cat([self.sigma, self.sigma])
        self.flux0 = resolve_total_flux(y, A, total_flux)
        self.flux_sd = float(flux_uncertainty)
        mean = gaussian_image(n, fwd.fov_uas, prior_fwhm_uas, 1.0)
        broad = mean  # the Gaussian of prior_fwhm_uas: the shape of the floors below
        if mean_image is not None:  # a data-driven mean (e.g. rml's image blurred to the resolution), kept positive
            given = np.asarray(mean_image, dtype=np.float64)
            if given.shape != (n, n) or not np.isfinite(given).all() or not given.max() > 0:
                raise ValueError(f"The mean image must be a finite ({n}, {n}) image with positive flux.")
            given = np.maximum(given, 0.0)
            floor = max(float(mean_floor), 1e-6)  # m > 0 everywhere: the linear link scales the field by m
            mean = np.maximum(given / given.sum(), floor * given.max() / given.sum() * mean / mean.max())
        self.mu = torch.as_tensor(np.log(np.maximum(mean, 1e-300)), dtype=dtype)
        res = fwd.obs.resolution_uas if fwd.obs is not None else prior_fwhm_uas / 3
        self.rho0 = math.log(res / (fwd.fov_uas / n))
        self.order = int(order)
        if link not in LINKS:
            raise ValueError(f"link must be one of {LINKS}, got {link!r}.")
        self.link = link
        self.m = torch.as_tensor(mean / mean.sum(), dtype=dtype)
        # the field's amplitude a (linear link: x = F (m + σ a ⊙ P_a f)); a = m unless an amplitude image is given
        self.a = self.m
        if amplitude_image is not None:
            if link != "linear":
                raise ValueError("An amplitude image other than the mean applies to the linear link only.")
            amp = np.asarray(amplitude_image, dtype=np.float64)
            if amp.shape != (n, n) or not np.isfinite(amp).all() or not amp.max() > 0:
                raise ValueError(f"The amplitude image must be a finite ({n}, {n}) image with positive flux.")
            amp = np.maximum(amp, 0.0)
            floor = max(float(mean_floor), 1e-6)
            amp = np.maximum(amp / amp.sum(), floor * amp.max() / amp.sum() * broad / broad.max())
            self.a = torch.as_tensor(amp / amp.sum(), dtype=dtype)
        # closures do not see the image's position (closure phases are invariant to a shift): fix the gauge by a
        # Gaussian prior on the centroid at m's, sd ``centroid_sd`` × the nominal resolution (eht-imaging's "cm"
        # regularizer, Chael et al. 2018 §3.3); with the linear link Σx = F exactly, so it is linear in ε
        rows = torch.arange(n, dtype=dtype)
        self.pixel_rows = rows
        self.centroid_m = torch.stack([(self.m.sum(1) * rows).sum(), (self.m.sum(0) * rows).sum()])
        if not centroid_sd > 0:
            raise ValueError(f"centroid_sd must be positive, got {centroid_sd}.")
        self.centroid_sd_px = float(centroid_sd) * math.exp(self.rho0)
        k = torch.fft.fftfreq(n, dtype=dtype)
        lam = 4 * torch.sin(math.pi * k)[:, None] ** 2 + 4 * torch.sin(math.pi * k[: n // 2 + 1])[None, :] ** 2
        self.lam = lam  # Laplacian eigenvalues on the rfft2 grid
        # the prior power beyond the resolution raised by 1 + g (1 − |B̂(k)|²), B̂ the transfer function of the blur to
        # the nominal resolution (FWHM e^{rho0} px): the power a blurred mean image lacks (RESULTS §7, helper closure7)
        self.high_frequency_gain = float(high_frequency_gain)
        self.boost = None
        if self.high_frequency_gain > 0:
            k2 = k[:, None] ** 2 + k[: n // 2 + 1][None, :] ** 2
            blur2 = torch.exp(-2 * (math.pi * math.exp(self.rho0)) ** 2 * k2 / (4 * math.log(2)))
            self.boost = 1 + self.high_frequency_gain * (1 - blur2)
        self.d = n * n + 3

    # -- the model ------------------------------------------------------------------------------------
    def field(self, eps: torch.Tensor, log_rho: torch.Tensor) -> torch.Tensor:
        """``K_ρ ε``: white noise (…, N, N) filtered to the GMRF spectrum, unit variance per pixel."""
        spec, _ = self._spectrum(log_rho)
        n = self.npix
        return torch.fft.irfft2(torch.fft.rfft2(eps, norm="ortho") * spec.sqrt(), s=(n, n), norm="ortho")

    def _spectrum(self, log_rho: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The GMRF spectrum on the rfft2 grid (…, N, N//2+1), normalized to unit mean over the full grid (rfft2
        columns 1 … ⌈N/2⌉−1 stand for two columns each), and those column multiplicities."""
        kappa2 = torch.exp(-2 * log_rho)[..., None, None]
        spec = (kappa2 + self.lam) ** (-self.order)
        if self.boost is not None:
            spec = spec * self.boost
        n = self.npix
        weights = torch.full((n // 2 + 1,), 2.0, dtype=spec.dtype)
        weights[0] = 1.0
        if n % 2 == 0:
            weights[-1] = 1.0
        return spec / ((spec * weights).sum((-2, -1), keepdim=True) / (n * n)), weights

    def interweave(self, theta: torch.Tensor, gen: torch.Generator, moves: int = 4) -> torch.Tensor:
        """Metropolis moves of log σ and log ρ in the centered parametrization: the field ``g = σ K_ρ ε`` (hence the
        image and the likelihood) is held fixed and ε rescaled, so each move needs FFTs only. Interleaved with the
        non-centered HMC transitions this is ASIS (Yu & Meng, JCGS 20 (2011) 531): σ and ρ, stiff given ε when the
        data fix the image, move freely given g. Target ``p(s, t) p(g | s, t)``, ``g | s, t ~ N(0, e^{2s} K_t K_tᵀ)``."""
        n = self.npix
        n2 = n * n
        theta = theta.clone()
        eps = theta[..., :n2].reshape(*theta.shape[:-1], n, n)
        eps_hat = torch.fft.rfft2(eps, norm="ortho")
        s0, t0 = theta[..., -3].clone(), theta[..., -2].clone()
        spec, weights = self._spectrum(t0)
        g_power = (eps_hat.abs() ** 2) * spec * weights  # |ĝ|²/σ₀² per rfft frequency, with multiplicities

        def log_p(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            sp, _ = self._spectrum(t)
            logdet = 0.5 * (torch.log(sp) * weights).sum((-2, -1))  # log|det K_t|
            quad = torch.exp(2 * (s0 - s)) * (g_power / sp).sum((-2, -1))  # ‖K_t⁻¹ g‖² / σ²
            return -0.5 * s * s - 0.5 * (t - self.rho0) ** 2 - n2 * s - logdet - 0.5 * quad

        s, t = s0, t0
        current = log_p(s, t)
        s_sd, t_sd = 1.0 / math.sqrt(2.0 * n2), 0.1
        for _ in range(moves):
            for which in (0, 1):
                if which == 0:
                    ps, pt = s + s_sd * torch.randn(s.shape, generator=gen, dtype=s.dtype), t
                else:
                    ps, pt = s, t + t_sd * torch.randn(t.shape, generator=gen, dtype=t.dtype)
                proposed = log_p(ps, pt)
                take = torch.log(torch.rand(s.shape, generator=gen, dtype=s.dtype)) < proposed - current
                s, t = torch.where(take, ps, s), torch.where(take, pt, t)
                current = torch.where(take, proposed, current)
        # ε' with the same g: ε̂' = ε̂ · e^{s₀ − s} √(spec₀ / spec')
        spec_new, _ = self._spectrum(t)
        scale = torch.exp(s0 - s)[..., None, None]
        eps_new = torch.fft.irfft2(eps_hat * (spec / spec_new).sqrt() * scale, s=(n, n), norm="ortho")
        theta[..., :n2] = eps_new.reshape(*theta.shape[:-1], n2)
        theta[..., -3], theta[..., -2] = s, t
        return theta

    def hyper_moves(self, theta: torch.Tensor, gen: torch.Generator, scales: torch.Tensor,
                    moves: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """Random-walk Metropolis moves of log σ, log ρ and log F one at a time with ε held fixed (the non-centered
        conditionals), proposal sd ``scales`` (3,): the other half of the ASIS pair (:meth:`interweave`). Returns
        the new parameter vectors and the acceptance rate per coordinate (3,)."""
        theta = theta.clone()
        current = self(theta)
        rate = torch.zeros(3, dtype=theta.dtype)
        for _ in range(moves):
            for j in range(3):
                proposal = theta.clone()
                proposal[..., -3 + j] += scales[j] * torch.randn(theta.shape[:-1], generator=gen, dtype=theta.dtype)
                value = self(proposal)
                take = torch.log(torch.rand(value.shape, generator=gen, dtype=value.dtype)) < current - value
                take &= torch.isfinite(value)
                theta = torch.where(take[..., None], proposal, theta)
                current = torch.where(take, value, current)
                rate[j] += take.double().mean() / moves
        return theta, rate

    def draw_flux(self, theta: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Closures: a Gibbs draw of log F from its conditional, which is its prior ``N(log F₀, s_F²)`` (closure phases
        and log closure amplitudes do not change when the image is scaled, and ε, σ, ρ are a priori independent of F)."""
        if not self.closures:
            raise ValueError("The total flux has its prior as conditional only on closure quantities.")
        theta = theta.clone()
        theta[..., -1] = math.log(self.flux0) + self.flux_sd * torch.randn(theta.shape[:-1], generator=gen,
                                                                           dtype=theta.dtype)
        return theta

    def image(self, theta: torch.Tensor) -> torch.Tensor:
        """The image of parameter vectors (…, d) under the link (module docstring)."""
        n = self.npix
        eps = theta[..., : n * n].reshape(*theta.shape[:-1], n, n)
        log_sigma, log_rho, log_flux = theta[..., -3], theta[..., -2], theta[..., -1]
        f = torch.exp(log_sigma)[..., None, None] * self.field(eps, log_rho)
        if self.link == "linear":  # the field carries no flux (Σ m f = 0): F is the total flux, not traded against σ
            f = f - (self.a * f).sum((-2, -1), keepdim=True) / self.a.sum()
            return torch.exp(log_flux)[..., None, None] * (self.m + self.a * f)
        if self.link == "softplus":
            return torch.exp(log_flux)[..., None, None] * self.m * F.softplus(1 + f, beta=SOFTPLUS_BETA)
        z = self.mu + f
        q = torch.softmax(z.reshape(*z.shape[:-2], n * n), -1).reshape(z.shape)
        return torch.exp(log_flux)[..., None, None] * q

    def residuals(self, theta: torch.Tensor) -> torch.Tensor:
        """Whitened data residuals (…, m): ``[Re, Im](Ax − y)/σ``, or ``2 sin(Δψ/2)/σ_ψ`` and ``Δa/σ_a``."""
        return self.residuals_of_image(self.image(theta))

    def residuals_of_image(self, x: torch.Tensor) -> torch.Tensor:
        """The whitened data residuals of :meth:`residuals` for images x (…, N, N)."""
        if self.matrix is not None:
            ri = x.reshape(*x.shape[:-2], -1) @ self.matrix
            if not self.closures:
                return (ri - self.y_ri) / self.sigma_ri
            m = ri.shape[-1] // 2
            vis = torch.complex(ri[..., :m], ri[..., m:])
        else:
            vis = self.fwd.apply(x)
        if self.closures:
            z = self.A.closures_of(vis).to(self.dtype)
            k = self.k
            phase = 2 * torch.sin((z[..., :k] - self.y[:k]) / 2) / self.sigma[:k]
            amp = (z[..., k:] - self.y[k:]) / self.sigma[k:]
            return torch.cat([phase, amp, self.centroid_residuals(x)], -1)
        diff = vis.to(self.y.dtype) - self.y
        return torch.cat([diff.real / self.sigma, diff.imag / self.sigma], -1)

    def centroid(self, x: torch.Tensor) -> torch.Tensor:
        """The centroid (row, column) in pixels of images x (…, N, N): ``Σ r x / Σ x``."""
        total = x.sum((-2, -1))
        return torch.stack([(x.sum(-1) * self.pixel_rows).sum(-1), (x.sum(-2) * self.pixel_rows).sum(-1)], -1) / \
            total[..., None]

    def centroid_residuals(self, x: torch.Tensor) -> torch.Tensor:
        """Closures: the whitened offset of the centroid from the mean image's, ``(c(x) − c(m)) / s_c`` (…, 2): the
        position prior that fixes the gauge the closure quantities leave free."""
        return (self.centroid(x) - self.centroid_m) / self.centroid_sd_px

    def prior(self, theta: torch.Tensor) -> torch.Tensor:
        n2 = self.npix**2
        return 0.5 * ((theta[..., :n2] ** 2).sum(-1) + theta[..., -3] ** 2 + (theta[..., -2] - self.rho0) ** 2
                      + ((theta[..., -1] - math.log(self.flux0)) / self.flux_sd) ** 2)

    def prior_curvature(self) -> torch.Tensor:
        diag = torch.ones(self.d, dtype=self.dtype)
        diag[-1] = 1.0 / self.flux_sd**2
        return diag

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """Negative log-posterior per parameter vector."""
        r = self.residuals(theta)
        return 0.5 * (r * r).sum(-1) + self.prior(theta)

    def start(self) -> torch.Tensor:
        theta = torch.zeros(self.d, dtype=self.dtype)
        theta[-2] = self.rho0
        theta[-1] = math.log(self.flux0)
        return theta


def compact_mean_image(image: np.ndarray, fov_uas: float, resolution_uas: float, threshold: float,
                       blur: float = 1.0) -> np.ndarray:
    """A mean image m for the field from a point estimate (rml's): ``m = B_b(x ⊙ 1[Bx > t·max Bx])``, ``B`` the blur to
    the nominal resolution, ``B_b`` to ``blur`` × the resolution, ``t`` = ``threshold`` (0: ``m = B_b x``). The point estimate's low-level haze (on closures
    rml leaves 10–30% of its flux off the source: flux on scales the long baselines resolve out changes only the
    zero-spacing flux, which closures do not see) is left out, so that the posterior, whose linear link scales the
    field by m, does not inherit it (RESULTS.md §7, helper ``closure5``; eht-imaging's ``threshold`` of a prior image,
    Chael et al., ApJ 857 (2018) 23, §4)."""
    from .compare import blur_to_resolution

    if not blur > 0:
        raise ValueError(f"The mean image's blur must be a positive fraction of the resolution, got {blur}.")
    x = np.maximum(np.asarray(image, dtype=np.float64), 0.0)
    if not threshold > 0:
        return blur_to_resolution(x, fov_uas, blur * resolution_uas).astype(np.float64)
    blurred = blur_to_resolution(x, fov_uas, resolution_uas).astype(np.float64)
    if not blurred.max() > 0:
        raise ValueError("The point estimate for the mean image has no positive flux.")
    return blur_to_resolution(x * (blurred > threshold * blurred.max()), fov_uas,
                              blur * resolution_uas).astype(np.float64)


def _mode(post: GMRFPosterior, theta0: torch.Tensor, iterations: int) -> torch.Tensor:
    """A mode of the posterior by L-BFGS from ``theta0`` (the last finite iterate if a line search overflows)."""
    theta = theta0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=iterations, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        value = post(theta)
        value.backward()
        return value

    last = theta.detach().clone()
    opt.step(closure)
    with torch.no_grad():
        if not torch.isfinite(post(theta)):
            return last
    return theta.detach()


class GMRFHMC(Method):
    name = "gmrf_hmc"
    label = "Hierarchical GMRF posterior (HMC)"
    description = (
        "x = F m (1 + σ K_ρ ε) (or a softplus / log link): Gaussian Markov random field around a mean image m (rml's "
        "image blurred to the resolution, or a Gaussian; the linear field carries no flux), "
        "with its strength σ, correlation length ρ and the total flux F sampled with ε (HMC on ε, metric: Gauss–Newton "
        "at the chains, re-estimated in warm-up windows; Metropolis and ASIS moves of σ, ρ, F between). Data: complex visibilities, or closure phases + log closure "
        "amplitudes (with a prior on the centroid, which closures leave free). On visibilities with the linear link ε is "
        "integrated out: (σ, ρ, F) from their marginal by adaptive Metropolis, then ε exactly given them. Returns mean, "
        "std, samples, split-R̂ and ESS."
    )
    reference = ("Tiede, JOSS 7 (2022) 4457 (Comrade.jl); EHT Collaboration 2024, A&A 681, A79; Neal, Handbook of "
                 "MCMC (2011) ch. 5; Hoffman & Gelman, JMLR 15 (2014) 1593; Rue & Held, Gaussian Markov Random "
                 "Fields (2005) §4.1.")
    needs_adjoint = False
    operators = ("Interferometer", "Closures")
    complex_images = False
    returns_std = True
    uncertainty = "posterior"
    domain = "blackhole"
    params = (
        Param("iterations", int, 600, 8, 100000, doc="HMC transitions per chain after warm-up"),
        Param("warmup", int, 300, 4, 100000, doc="warm-up transitions per chain (step size and metric adaptation)"),
        Param("chains", int, 4, 1, 16, doc="chains run together (split-R̂ needs at least two)"),
        Param("n_samples", int, 100, 2, 100000, doc="samples returned (thinned, all chains)"),
        Param("prior_fwhm_uas", float, 80.0, 1.0, 10000.0, doc="FWHM of the Gaussian mean image (µas)"),
        Param("mean_image", str, "rml", choices=("gaussian", "rml"),
              doc="the field's mean image m: the Gaussian of prior_fwhm_uas, or rml's image (without its haze, "
                  "mean_threshold) blurred to the resolution"),
        Param("mean_threshold", float, 0.1, 0.0, 0.9,
              doc="mean_image='rml': rml's flux where its blurred image is below this fraction of its peak is left "
                  "out of m (rml's low-level haze, which closures cannot remove; 0 keeps it)"),
        Param("mean_blur", float, 1.0, 0.1, 4.0,
              doc="mean_image='rml': FWHM of the blur of m as a fraction of the nominal resolution (1: at the "
                  "resolution; below: a sharper m, closer to the data; 0.5 raised NXCORR on rings but lost the "
                  "coverage of doubles on closures, RESULTS §7)"),
        Param("high_frequency_gain", float, None, 0.0, 1000.0,
              doc="the field's prior power beyond the nominal resolution raised by 1 + g (1 − |B̂(k)|²), B̂ the "
                  "resolution blur's transfer function: the structure a mean image blurred to the resolution lacks, "
                  "so that σ, set by the data's long baselines, is not carried at full strength into the "
                  "unmeasured low frequencies (empty: 10 on closures, 0 on visibilities; RESULTS §7, closure7)"),
        Param("order", int, 1, 1, 3, doc="order of the GMRF precision (1: (κ² + Δ), Comrade's; 2: smoother)"),
        Param("total_flux", float, None, 0.0, None, doc="prior total flux F₀ in Jy (empty: from the shortest baselines)"),
        Param("flux_uncertainty", float, 0.1, 1e-3, 2.0, doc="prior std of log F (closures leave the flux to it)"),
        Param("link", str, "linear", choices=LINKS,
              doc="image from the field: softplus x = F m softplus(1 + σf) (positive), linear F m (1 + σf), "
                  "log F softmax(log m + σf) (Comrade's; stiff on high-SNR data)"),
        Param("systematic", float, 0.02, 0.0, 1.0,
              doc="fractional systematic error added in quadrature to every visibility's sigma (EHT practice: 1–5%)"),
        Param("interweave", bool, True,
              doc="after each HMC transition, also move σ and ρ with the field σK_ρε held fixed (ASIS)"),
        Param("centroid_sd", float, 0.02, 1e-4, 10.0,
              doc="closures: sd of the image centroid about the mean image's, in units of the nominal resolution "
                  "(closures do not fix the position; this fixes the gauge)", operators=("Closures",)),
        Param("linearized_moves", int, 3, 1, 100,
              doc="closures: moves of (σ, ρ) given the linearized model's auxiliary normals after every transition "
                  "(the moves that free the correlation length; one Cholesky of the data covariance each; 3 against "
                  "1: R̂ of σ, ρ ≤ 1.008 and 1.4–2× their ESS per CPU second at 1.33× the time, RESULTS §7)",
              operators=("Closures",)),
        Param("trajectory", float, 1.5, 0.1, 10.0, doc="HMC trajectory length in whitened units"),
        Param("max_leapfrog", int, 48, 1, 1024, doc="most leapfrog steps per transition"),
        Param("sampler", str, "auto", choices=SAMPLERS,
              doc="collapsed: (σ, ρ, F) from their marginal (ε integrated out), then ε exactly (visibilities; on "
                  "closures through their linearization with an exact correction; linear link only); hmc: "
                  "HMC-within-Gibbs on ε and (σ, ρ, F); auto: collapsed where it applies"),
    )

    def run(self, y, A, noise, ctx: Context, **params: Any) -> Estimate:
        t0 = time.perf_counter()
        chains, warm, draws = params["chains"], params["warmup"], params["iterations"]
        with single_thread():
            mean_image = None
            if params["mean_image"] == "rml":  # rml's image blurred to the nominal resolution
                from .rml import RML

                pilot = RML().run(y, A, noise, ctx, **RML.validate({}))
                fwd = A.interferometer if isinstance(A, Closures) else A
                res = fwd.obs.resolution_uas if fwd.obs is not None else params["prior_fwhm_uas"] / 3
                mean_image = compact_mean_image(pilot.mean.detach().cpu().numpy(), fwd.fov_uas, res,
                                                params["mean_threshold"], params["mean_blur"])
            post = GMRFPosterior(y, A, noise, prior_fwhm_uas=params["prior_fwhm_uas"], order=params["order"],
                                 total_flux=params["total_flux"], flux_uncertainty=params["flux_uncertainty"],
                                 systematic=params["systematic"], link=params["link"], mean_image=mean_image,
                                 centroid_sd=params["centroid_sd"],
                                 high_frequency_gain=_high_frequency_gain(params["high_frequency_gain"], A))
            if params["sampler"] == "collapsed" and not _collapsible(post):
                raise ValueError("sampler='collapsed' needs link='linear'.")
            if params["sampler"] != "hmc" and _collapsible(post) and not post.closures:
                return _run_collapsed(post, ctx, params, t0)
            n = post.npix
            start = post.start()
            start[: n * n] = 0.1 * ctx.randn((n * n,), dtype=post.dtype, offset=41)  # off the point-symmetric saddle
            mode = _mode(post, start, 200)
            # HMC moves ε with (σ, ρ, F) held (their inverse mass 0, the metric block diagonal): given them the image is
            # linear in ε, so the whitened ε-posterior is close to N(0, I) (exactly so on visibilities) and the step is
            # not throttled by the curved (σ, ε) ridge of the joint. (σ, ρ, F) move between the HMC transitions by
            # Metropolis on their non-centered conditionals and, with interweave, ASIS moves of (σ, ρ) with σK_ρε fixed
            metric = fisher_metric(post.residuals, mode.unsqueeze(0), post.prior_curvature(), mode, frozen=3)
            w = ctx.randn((chains, post.d), dtype=post.dtype, offset=43)
            w[:, -3:] = 0.0  # the chains start at the mode's hyper-parameters
            inv_mass = torch.ones(post.d, dtype=post.dtype)
            inv_mass[-3:] = 0.0
            total = warm + draws
            gen = ctx.generator(47)
            box: dict[str, Any] = {"metric": metric, "adapt": True, "rates": []}

            def hyper_scales(m):
                return 2.4 / m.frozen_information.sqrt() * torch.tensor([1.0, 1.0, 1.0], dtype=post.dtype)

            box["scales"] = hyper_scales(metric)
            linear = None  # closures with the linear link: θ also moves given the linearized model's auxiliary normals
            if post.closures and _collapsible(post) and params["sampler"] != "hmc":
                linear = _LinearizedMove(post, mode, gen, moves=params["linearized_moves"])
                box["linear_rates"] = []

            def between(v: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    m = box["metric"]
                    theta = m.to_theta(v)
                    theta, rate = post.hyper_moves(theta, gen, box["scales"])
                    if box["adapt"]:  # Robbins–Monro on the log proposal scales towards acceptance 0.44 (1-D optimum)
                        box["scales"] = box["scales"] * torch.exp(0.5 * (rate - 0.44))
                    box["rates"].append(rate)
                    if params["interweave"]:
                        theta = post.interweave(theta, gen)
                    if linear is not None:
                        theta, linear_rate = linear(theta, adapt=box["adapt"])
                        box["linear_rates"].append(linear_rate)
                    if post.closures:  # closures are free of F: its conditional is its prior, drawn exactly
                        theta = post.draw_flux(theta, gen)
                    return m.to_w(theta)

            hmc_kw: dict[str, Any] = {"trajectory": params["trajectory"], "max_leapfrog": params["max_leapfrog"],
                                      "between": between, "inv_mass": inv_mass}
            # warm-up in windows (Stan's schedule): step size alone in the first and last buffers; at the end of every
            # slow window the metric is recomputed at the window's draws (the mode's curvature can be far from the bulk's)
            initial, windows, terminal = warmup_windows(warm)
            step: Any = 0.5
            phases: list[dict[str, float]] = []
            done = 0

            def run_phase(w, length, keep, offset):
                window: list[torch.Tensor] = []

                def collect(v, k):
                    if keep:
                        window.append(box["metric"].to_theta(v).detach())

                w, new_step, acc = hmc(lambda v: post(box["metric"].to_theta(v)), w, ctx, iterations=length,
                                       adapt=True, step=step, record=collect, progress=(done, total), offset=offset,
                                       **hmc_kw)
                phases.append({"transitions": length, "step": float(new_step.mean()), "acceptance": float(acc.mean())})
                return w, new_step, window

            w, step, _ = run_phase(w, initial, False, 1)
            done += initial
            for j, length in enumerate(windows):
                w, step, window = run_phase(w, length, True, 2 + j)
                done += length
                theta = box["metric"].to_theta(w).detach()
                draws_theta = torch.cat(window, 0)
                pick = draws_theta[torch.linspace(0, len(draws_theta) - 1, min(4, len(draws_theta))).round().long()]
                box["metric"] = fisher_metric(post.residuals, pick, post.prior_curvature(), draws_theta.mean(0), frozen=3)
                if linear is not None:
                    linear.update(draws_theta)
                w = box["metric"].to_w(theta)
            if terminal:
                w, step, _ = run_phase(w, terminal, False, 2 + len(windows))
            metric = box["metric"]
            box["adapt"] = False
            box["rates"] = []
            box["linear_rates"] = []
            images = torch.empty((chains, draws, n, n), dtype=torch.float32)
            hypers = torch.empty((chains, draws, 3), dtype=torch.float64)

            def record(v, k):
                with torch.no_grad():
                    th = metric.to_theta(v)
                    images[:, k - 1] = post.image(th).float()
                    hypers[:, k - 1] = th[:, -3:]
                ctx.keep(images[:, :k].mean((0, 1)), iteration=warm + k)

            w, step, acceptance = hmc(lambda v: post(metric.to_theta(v)), w, ctx, iterations=draws, adapt=False,
                                      step=step, progress=(warm, total), record=record, offset=99, **hmc_kw)
        flat = images.reshape(-1, n, n)
        mean = flat.mean(0)
        std = flat.std(0)
        pick = torch.linspace(0, draws - 1, max(1, math.ceil(params["n_samples"] / chains))).round().long()
        samples = images[:, pick].transpose(0, 1).reshape(-1, n, n)[: params["n_samples"]]
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise ValueError("gmrf_hmc produced non-finite images; check the noise sigmas and the field of view.")
        info: dict[str, Any] = {
            "chains": chains, "warmup": warm, "iterations": draws, "std_from": "chain",
            "step_size": float(step.mean()), "acceptance": float(acceptance.mean()),
            "acceptance_per_chain": [round(float(a), 3) for a in acceptance],
            "leapfrog_steps": int(torch.clamp(torch.ceil(params["trajectory"] / step), 1, params["max_leapfrog"]).max()),
            "warmup_phases": phases,
            "hyperparameter_acceptance": [round(float(r), 3) for r in torch.stack(box["rates"]).mean(0)],
            "total_flux_prior": post.flux0,
            "wall_seconds": time.perf_counter() - t0,
            "data": "closures" if post.closures else "visibilities",
            "sampler": "hmc_within_gibbs" if linear is None else "hmc_within_gibbs_linearized",
            "high_frequency_gain": post.high_frequency_gain,
        }
        if linear is not None:
            info["linearized_move_acceptance"] = float(np.mean(box["linear_rates"])) if box["linear_rates"] else None
        if draws >= 4:
            info["mixing"] = mixing_summary(images.numpy())
            hyper = mixing_summary(hypers.numpy())
            info["mixing_hyperparameters"] = {"rhat_max": hyper["rhat_max"], "ess_min": hyper["ess_min"],
                                              "rhat": [round(float(r), 4) for r in split_rhat(hypers.numpy())],
                                              "ess": [round(float(e), 1) for e in effective_sample_size(hypers.numpy())]}
        h = hypers.reshape(-1, 3)
        info["sigma_log_intensity"] = float(h[:, 0].exp().median())
        info["correlation_length_uas"] = float(h[:, 1].exp().median()) * post.fwd.fov_uas / n
        info["total_flux"] = float(h[:, 2].exp().median())
        info["hyperparameter_intervals"] = _hyper_intervals(h, post)
        return Estimate(mean.to(ctx.device), std.to(ctx.device), samples.to(ctx.device), info)


#: the default ``high_frequency_gain`` on closures (chosen on the random family of ``bench_rml_starts``, RESULTS §7)
CLOSURE_HIGH_FREQUENCY_GAIN = 10.0


def _high_frequency_gain(value: float | None, A: Operator) -> float:
    """The gain of the prior power beyond the resolution: ``value``, or (empty) 10 on closures and 0 on visibilities
    (on visibilities the collapsed sampler's coverage was calibrated without it and it was not re-measured)."""
    if value is not None:
        return float(value)
    return CLOSURE_HIGH_FREQUENCY_GAIN if isinstance(A, Closures) else 0.0


def _hyper_intervals(h: torch.Tensor, post: GMRFPosterior) -> dict[str, list[float]]:
    """The posterior's 5%, 50% and 95% quantiles of σ, ρ (µas) and F from the draws ``h`` (n, 3) of (log σ, log ρ,
    log F): how far the data moved them from their priors."""
    q = torch.tensor([0.05, 0.5, 0.95], dtype=h.dtype)
    names = ("sigma_log_intensity", "correlation_length_uas", "total_flux")
    scales = (1.0, post.fwd.fov_uas / post.npix, 1.0)
    return {name: [round(float(v) * s, 4) for v in torch.quantile(h[:, j].exp(), q)]
            for j, (name, s) in enumerate(zip(names, scales))}


def _collapsible(post: GMRFPosterior) -> bool:
    """Whether ε can be integrated out given (σ, ρ, F): the linear link (exactly on complex visibilities; on closures
    through their linearization, in :class:`_LinearizedMove`)."""
    return post.link == "linear"


def _run_collapsed(post: GMRFPosterior, ctx: Context, params: dict[str, Any], t0: float) -> Estimate:
    """The collapsed sampler (:mod:`.collapsed`): (log σ, log ρ, log F) by adaptive Metropolis on their marginal
    posterior, each chain started from an over-dispersed draw of the Laplace approximation; after every transition
    one exact draw of ε | θ, y per chain. Returns the same result and ``info`` keys as the HMC path."""
    from ..methods._metropolis import adaptive_metropolis
    from .collapsed import CollapsedGMRF

    chains, warm, draws = params["chains"], params["warmup"], params["iterations"]
    n = post.npix
    col = CollapsedGMRF(post)
    mode, laplace = col.mode(post.start()[-3:])
    gen = ctx.generator(53)
    # over-dispersed starts (2× the Laplace sd), so that split-R̂ can see a chain that has not forgotten its start
    chol0 = torch.linalg.cholesky(laplace)
    start = mode + 2.0 * torch.randn((chains, 3), generator=gen, dtype=torch.float64) @ chol0.T
    bad = ~torch.isfinite(col.neg_log_posterior(start)[0])
    start[bad] = mode
    images = torch.empty((chains, draws, n, n), dtype=torch.float32)
    hypers = torch.empty((chains, draws, 3), dtype=torch.float64)
    field_gen = ctx.generator(59)
    total = warm + draws

    def record(h, chol, k):
        with torch.no_grad():
            eps = col.draw_field(h, chol, field_gen)
            images[:, k - 1] = post.image(torch.cat([eps, h], -1)).float()
            hypers[:, k - 1] = h
        if k % 50 == 0 or k == draws:
            ctx.keep(images[:, :k].mean((0, 1)), iteration=warm + k)

    with torch.no_grad():
        _, run = adaptive_metropolis(col.neg_log_posterior, start, gen, warmup=warm, iterations=draws, cov=laplace,
                                     record=record, step=lambda i: ctx.step(i, total))
    flat = images.reshape(-1, n, n)
    mean, std = flat.mean(0), flat.std(0)
    pick = torch.linspace(0, draws - 1, max(1, math.ceil(params["n_samples"] / chains))).round().long()
    samples = images[:, pick].transpose(0, 1).reshape(-1, n, n)[: params["n_samples"]]
    if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
        raise ValueError("gmrf_hmc produced non-finite images; check the noise sigmas and the field of view.")
    per_chain = run["acceptance_per_chain"]
    info: dict[str, Any] = {
        "chains": chains, "warmup": warm, "iterations": draws, "std_from": "chain", "sampler": "collapsed",
        "acceptance": float(per_chain.mean()), "acceptance_per_chain": [round(float(a), 3) for a in per_chain],
        "acceptance_random_walk": run["acceptance_random_walk"],
        "acceptance_independence": run["acceptance_independence"],
        "hyperparameter_mode": [float(v) for v in mode], "data_dimension": col.d,
        "total_flux_prior": post.flux0, "wall_seconds": time.perf_counter() - t0, "data": "visibilities",
        "high_frequency_gain": post.high_frequency_gain,
    }
    if draws >= 4:
        info["mixing"] = mixing_summary(images.numpy())
        hyper = mixing_summary(hypers.numpy())
        info["mixing_hyperparameters"] = {"rhat_max": hyper["rhat_max"], "ess_min": hyper["ess_min"],
                                          "rhat": [round(float(r), 4) for r in split_rhat(hypers.numpy())],
                                          "ess": [round(float(e), 1) for e in effective_sample_size(hypers.numpy())]}
    h = hypers.reshape(-1, 3)
    info["sigma_log_intensity"] = float(h[:, 0].exp().median())
    info["correlation_length_uas"] = float(h[:, 1].exp().median()) * post.fwd.fov_uas / n
    info["total_flux"] = float(h[:, 2].exp().median())
    info["hyperparameter_intervals"] = _hyper_intervals(h, post)
    return Estimate(mean.to(ctx.device), std.to(ctx.device), samples.to(ctx.device), info)



class _LinearizedMove:
    """A move of θ = (log σ, log ρ, log F) for closures (linear link) that is not pinned by ε: the closure residuals
    linearized at an image u₀ make the model linear-Gaussian in ε given θ (:class:`.collapsed.CollapsedGMRF`), with exact
    draws ``ε = ε(θ, a)`` (Matheron's map of auxiliary normals a). On the extended target
    ``π(θ, a) ∝ p̃(θ | y) N(a; 0, I) w(θ, ε(θ, a))``, ``w = p(y | ε) / p̃(y | ε)`` (exact over linearized likelihood),
    whose (θ, ε) marginal is the exact posterior, one transition (1) draws a | θ, ε (Gaussian on the affine set
    ε(θ, a) = ε), (2) moves θ by random-walk Metropolis given a, ε following as ε(θ', a) (the data-constrained part refits
    to θ'). Both steps leave the extended target invariant (an auxiliary-variable / pseudo-marginal construction:
    Andrieu & Roberts, Ann. Stat. 37 (2009) 697); where the linearization holds, w ≈ 1 and θ moves as on its marginal.
    The linearization point and the proposal covariance are updated only in warm-up (:meth:`update`)."""

    def __init__(self, post: GMRFPosterior, mode: torch.Tensor, gen: torch.Generator, moves: int = 1):
        from ..methods._metropolis import _stable_cholesky
        from .collapsed import CollapsedGMRF

        self._chol = _stable_cholesky
        self.col = CollapsedGMRF(post)
        self.n2 = post.npix**2
        self.gen = gen
        self.moves = int(moves)
        self.col.linearize(self.col.unit_image(mode[-3:].unsqueeze(0), mode[: self.n2].unsqueeze(0))[0])
        _, cov = self.col.mode(mode[-3:].clone())
        # only (log σ, log ρ) are proposed: closures are free of F, whose conditional is its prior and which is drawn
        # exactly after every transition (a random walk in F would only lower the acceptance of σ and ρ)
        self.cov = cov[:2, :2]
        self.L = self._chol(self.cov)
        self.log_scale = math.log(2.38 / math.sqrt(2.0))

    def update(self, draws: torch.Tensor) -> None:
        """Warm-up: re-linearize at the mean unit image of parameter draws (n, d); the proposal covariance of
        (log σ, log ρ) from their draws (shrunk towards the previous one)."""
        with torch.no_grad():
            self.col.linearize(self.col.unit_image(draws[:, -3:], draws[:, : self.n2]).mean(0))
            hs = draws[:, -3:-1]
            self.cov = (len(hs) * torch.cov(hs.T) + 10.0 * self.cov) / (len(hs) + 10.0)
            self.L = self._chol(self.cov)

    def __call__(self, theta: torch.Tensor, adapt: bool) -> tuple[torch.Tensor, float]:
        """``moves`` transitions (fresh auxiliary normals each); the current state's marginal, Cholesky factor and
        weight are carried from one to the next. Returns the parameters and the mean acceptance probability."""
        col, n2, gen = self.col, self.n2, self.gen
        chains = theta.shape[0]
        h, eps = theta[:, -3:], theta[:, :n2]
        U, chol = col.neg_log_posterior(h)
        ok0 = torch.isfinite(U)
        eye = torch.eye(col.d, dtype=theta.dtype)
        chol = torch.where(ok0[:, None, None], chol, eye)
        current = U - col.log_weight(h, eps)
        rates = []
        for _ in range(self.moves):
            a = col.aux_given_field(h, chol, eps, gen)
            proposal = h.clone()
            proposal[:, :2] += math.exp(self.log_scale) * torch.randn((chains, 2), generator=gen,
                                                                      dtype=theta.dtype) @ self.L.T
            U_new, chol_new = col.neg_log_posterior(proposal)
            ok = torch.isfinite(U_new) & ok0
            chol_new = torch.where(ok[:, None, None], chol_new, eye)
            eps_new = col.field_of(proposal, chol_new, a)
            value = U_new - col.log_weight(proposal, eps_new)
            log_alpha = torch.nan_to_num(current - value, nan=-math.inf).clamp(max=0.0)
            take = (torch.log(torch.rand(chains, generator=gen, dtype=theta.dtype)) < log_alpha) & ok
            eps = torch.where(take[:, None], eps_new, eps)
            h = torch.where(take[:, None], proposal, h)
            chol = torch.where(take[:, None, None], chol_new, chol)
            current = torch.where(take, value, current)
            rate = float(torch.where(ok, log_alpha.exp(), torch.zeros_like(log_alpha)).mean())
            rates.append(rate)
            if adapt:  # Robbins–Monro towards acceptance 0.3
                self.log_scale = min(self.log_scale + 0.1 * (rate - 0.3), math.log(3.0))
        theta = theta.clone()
        theta[:, :n2], theta[:, -3:] = eps, h
        return theta, float(np.mean(rates))
