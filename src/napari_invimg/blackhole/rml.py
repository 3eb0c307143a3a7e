"""Regularized maximum likelihood (RML) imaging with the regularizers of the EHT imaging pipelines.

Minimize over the log-image (so the image stays positive), by L-BFGS-B (scipy's, as eht-imaging; the gradient
from torch, in closed form on closure data)::

    J(x) = Σ_d α_d χ²_d(x) + β_mem KL(x/F ‖ p) + β_tv TV(x/F) + β_tsv TSV(x/F) + β_l1 L1_p(x/F)
           + β_flux (Σx/F − 1)² + β_cm |centroid(x)|² / FWHM_p²

with reduced χ² data terms (complex visibilities; debiased visibility amplitudes and closure phases;
or closure phases and log closure amplitudes only, immune to station gains), ``p`` a Gaussian prior
image of the source's size and ``F`` the total (zero-baseline) flux. Several rounds restart from the
previous image blurred to the nominal resolution (Chael et al. 2016, ApJ 829, 11; Chael et al. 2018,
ApJ 857, 23; EHT Collaboration 2019, ApJL 875, L4, §6.2).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from ..methods.registry import Context, Estimate, Method, Param
from ..operators.base import Operator
from ..operators.noise import NoiseModel
from .arrays import RAD_PER_UAS
from .closures import closure_design, closure_phases, closure_sigmas
from .compare import nxcorr_aligned
from .operators import (
    Closures,
    Interferometer,
    gaussian_image,
    pixel_positions_rad,
    zero_baseline_flux,
)

__all__ = ["RML", "blur_image", "data_terms", "data_tolerance", "normalized_residuals", "select_start", "single_thread"]


#: precision of the optimization (float32 halves the cost of the DFT; L-BFGS converges the same here)
WORK_DTYPE = torch.float32



def resolve_total_flux(y: torch.Tensor, A: Operator, total_flux: float | None) -> float:
    """The image's total flux in Jy: ``total_flux`` when given, else the closures' own, else the zero-baseline
    visibility amplitude of the observation (or, without one, the largest |V|); refused unless positive."""
    if total_flux is None:
        if isinstance(A, Closures):
            total_flux = A.total_flux
        elif getattr(A, "obs", None) is not None:
            total_flux = zero_baseline_flux(A.obs.with_vis(y.detach().cpu().numpy()))
        else:
            total_flux = float(y.abs().max())
    if not total_flux > 0:
        raise ValueError("The total flux must be positive; give total_flux=… in Jy.")
    return float(total_flux)


@contextmanager
def single_thread():
    """Run torch on one thread: for these small matrices, thread hand-offs cost more than they give
    (a 4096-long dot product takes ~5 µs on one thread and ~0.5 ms on two busy cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sigma_of(noise: NoiseModel, n: int) -> np.ndarray:
    sigma = np.broadcast_to(np.asarray(noise.sigma, dtype=np.float64), (n,)).copy()
    if np.any(sigma <= 0) or not np.all(np.isfinite(sigma)):
        raise ValueError("rml needs a positive, finite Gaussian sigma for every datum (noise=Gaussian(obs.sigma)).")
    return sigma


class _ClosureFit:
    """Reduced χ² of the closure phases, ``mean 2(1 − cos(ψ_obs − ψ))/σ²``, and of the log closure amplitudes,
    ``mean (a_obs − a)²/σ²``, of images ``x`` (batches on leading axes), with their gradient in closed form:
    ``ψ = P arg V``, ``a = Q log|V|``, ``V = A x``, so ``∇ₓ = Aᴴ[(Pᵀg_ψ ⊙ i + Qᵀg_a) ⊙ V / |V|²]`` (Chael et al.
    2018, ApJ 857, 23, app. A). Phases and amplitudes in float64 (a faint visibility must not underflow); ψ is the
    plain sum of visibility phases (the cosine needs no branch)."""

    def __init__(self, y: torch.Tensor, A: Closures, sigma: np.ndarray):
        dev, f64 = y.device, torch.float64
        self.interferometer = A.interferometer
        k = A.n_phases
        sigma = torch.as_tensor(sigma, device=dev, dtype=f64)
        self.y_phase, self.y_amp = y[:k].to(f64), y[k:].to(f64)
        self.w_phase = 2.0 / sigma[:k] ** 2 / k
        self.w_amp = 1.0 / sigma[k:] ** 2 / max(A.n_amplitudes, 1)
        self.phase_design = A.phase_design.to(dev, f64)
        self.amplitude_design = 0.5 * A.amplitude_design.to(dev, f64)
        self._phase_t, self._amplitude_t = self.phase_design.T.contiguous(), self.amplitude_design.T.contiguous()
        self.separable = A.interferometer.transform == "dft"  # (Re V, Im V) without a complex round trip

    def _model(self, x: torch.Tensor):
        if self.separable:
            re, im = self.interferometer.forward_parts(x)
        else:
            v = self.interferometer.apply(x)
            re, im = v.real, v.imag
        re, im = re.to(torch.float64), im.to(torch.float64)
        power = re * re + im * im + 1e-300
        return re, im, power, torch.atan2(im, re) @ self._phase_t, torch.log(power) @ self._amplitude_t

    def chi2(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(closure-phase χ², log-closure-amplitude χ²) per image, differentiable."""
        _, _, _, psi, lca = self._model(x)
        return (((1 - torch.cos(self.y_phase - psi)) * self.w_phase).sum(-1),
                ((self.y_amp - lca) ** 2 * self.w_amp).sum(-1))

    @torch.no_grad()
    def chi2_and_gradient(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(closure-phase χ², log-closure-amplitude χ², ∇ₓ of their sum), per image."""
        re, im, power, psi, lca = self._model(x)
        d_phase, d_amp = self.y_phase - psi, self.y_amp - lca
        cp = ((1 - torch.cos(d_phase)) * self.w_phase).sum(-1)
        la = (d_amp * d_amp * self.w_amp).sum(-1)
        g_arg = (-torch.sin(d_phase) * self.w_phase) @ self.phase_design  # ∂/∂ arg V
        g_log = (-4.0 * d_amp * self.w_amp) @ self.amplitude_design  # ∂/∂ log|V| (the design holds the ½ of log|V|²)
        g_re, g_im = (re * g_log - im * g_arg) / power, (im * g_log + re * g_arg) / power
        if self.separable:
            g_x = self.interferometer.adjoint_parts(g_re.to(x.dtype), g_im.to(x.dtype))
        else:
            dtype = torch.complex64 if x.dtype == torch.float32 else torch.complex128
            g_x = self.interferometer.apply_adjoint(torch.complex(g_re, g_im).to(dtype))
        return cp.to(x.dtype), la.to(x.dtype), g_x.to(x.dtype)


def _once_per_image(fn: Callable[[torch.Tensor], Any]) -> Callable[[torch.Tensor], Any]:
    """``fn`` remembering its last argument: the data terms of one evaluation share one transform of ``x``."""
    last: list[Any] = [None, -1, None]

    def shared(x: torch.Tensor) -> Any:
        if last[0] is not x or last[1] != x._version:
            last[:] = [x, x._version, fn(x)]
        return last[2]

    return shared


#: the names of the two closure data terms
CLOSURE_TERMS = ("closure phase", "log closure amplitude")

DataTerm = tuple[str, Callable[[torch.Tensor], torch.Tensor], int]


def data_terms(y: torch.Tensor, A: Operator, noise: NoiseModel, data: str, systematic: float = 0.0,
               min_snr: float = 3.0) -> list[DataTerm]:
    """Reduced χ² terms ``(name, χ²(x), n)`` for data products ``data``: ``vis`` | ``amp_cphase`` |
    ``closures`` (``auto``: ``vis`` for an Interferometer, ``closures`` for Closures). ``χ²(x)`` is taken
    per image of a batch (over the last axis of the data); ``n`` is the number of real data, so that the
    Gaussian negative log-likelihood of the term is ``n/2 · χ²(x)``."""
    dev = y.device
    f64 = WORK_DTYPE
    if isinstance(A, Closures):
        if data not in ("auto", "closures"):
            raise ValueError(f"With the Closures operator only closure data can be fitted, not {data!r}; "
                             "use an Interferometer for visibilities or amplitudes.")
        chi2 = _once_per_image(_ClosureFit(y, A, _sigma_of(noise, A.out_shape[0])).chi2)
        return [(CLOSURE_TERMS[0], lambda x: chi2(x)[0].to(f64), A.n_phases),
                (CLOSURE_TERMS[1], lambda x: chi2(x)[1].to(f64), A.n_amplitudes)]
    if not isinstance(A, Interferometer):
        raise ValueError(f"rml images with the Interferometer or Closures operators, not {A.name}.")
    n = A.out_shape[0]
    sigma_np = _sigma_of(noise, n)
    vis_np = y.detach().cpu().numpy().astype(np.complex128)
    if systematic > 0:
        sigma_np = np.sqrt(sigma_np**2 + (systematic * np.abs(vis_np)) ** 2)
    sigma = torch.as_tensor(sigma_np, device=dev, dtype=f64)
    yc = y.to(torch.complex64 if f64 == torch.float32 else torch.complex128)
    if data in ("auto", "vis"):
        return [("visibility", lambda x: ((A.apply(x) - yc).abs() ** 2 / sigma**2).mean(-1) / 2, 2 * n)]
    if A.obs is None:
        raise ValueError("Closure quantities need station names per visibility: build the Interferometer from an "
                         "Observation (Interferometer(obs, ...)).")
    obs = A.obs.with_vis(vis_np, sigma_np)
    design = closure_design(obs, min_snr=min_snr)
    sig_p, sig_a = closure_sigmas(obs.vis, obs.sigma, design)
    cp_obs = torch.as_tensor(closure_phases(obs.vis, design), device=dev, dtype=f64)
    cp_design = torch.as_tensor(design.phase, device=dev, dtype=f64)
    sig_p = torch.as_tensor(sig_p, device=dev, dtype=f64)

    def cphase(x):
        v = A.apply(x).to(torch.complex128)
        psi = (torch.atan2(v.imag, v.real) @ cp_design.double().T).to(f64)
        return (2 * (1 - torch.cos(cp_obs - psi)) / sig_p**2).mean(-1)

    terms: list[DataTerm] = [("closure phase", cphase, design.n_phases)]
    if data == "amp_cphase":
        amp_obs = torch.as_tensor(np.sqrt(np.clip(np.abs(vis_np) ** 2 - sigma_np**2, 0, None)), device=dev, dtype=f64)
        terms.insert(0, ("visibility amplitude", lambda x: ((A.apply(x).abs() - amp_obs) ** 2 / sigma**2).mean(-1), n))
        return terms
    if data == "closures":
        lca_obs = torch.as_tensor(design.amplitude @ np.log(np.abs(vis_np)), device=dev, dtype=f64)
        ca_design = torch.as_tensor(design.amplitude, device=dev, dtype=f64)
        sig_a = torch.as_tensor(sig_a, device=dev, dtype=f64)

        def logcamp(x):
            v = A.apply(x).to(torch.complex128)
            lca = (0.5 * torch.log(v.real**2 + v.imag**2 + 1e-300) @ ca_design.double().T).to(f64)
            return ((lca - lca_obs) ** 2 / sig_a**2).mean(-1)

        terms.append(("log closure amplitude", logcamp, design.n_amplitudes))
        return terms
    raise ValueError(f"rml data must be 'auto', 'vis', 'amp_cphase' or 'closures', got {data!r}.")


def blur_image(x: torch.Tensor, fwhm_pixels: float) -> torch.Tensor:
    """Circular Gaussian blur (FWHM in pixels) by FFT convolution with zero padding."""
    if fwhm_pixels <= 0:
        return x
    n = x.shape[-1]
    m = 2 * n
    offsets = torch.fft.fftfreq(m, d=1.0 / m, device=x.device).to(x.dtype)  # 0, 1, …, −1: kernel centered at 0
    g = torch.exp(-0.5 * (offsets / (fwhm_pixels / (2 * np.sqrt(2 * np.log(2))))) ** 2)
    g = g / g.sum()
    kernel = torch.fft.rfft2(g[:, None] * g[None, :])
    return torch.fft.irfft2(torch.fft.rfft2(x, s=(m, m)) * kernel, s=(m, m))[..., :n, :n]


def normalized_residuals(x: np.ndarray, A: Operator, y: np.ndarray, sigma: np.ndarray) -> dict[str, np.ndarray]:
    """Normalized residuals of every data product of ``y`` for the image ``x``: complex visibilities
    (real and imaginary parts), amplitudes, closure phases (wrapped) and log closure amplitudes, each ÷ σ."""
    x = np.asarray(x, dtype=np.float32)
    if isinstance(A, Closures):
        k = A.n_phases
        r = (np.asarray(y) - A.forward(x)) / np.asarray(sigma)
        r[:k] = np.angle(np.exp(1j * r[:k] * np.asarray(sigma)[:k])) / np.asarray(sigma)[:k]
        return {"closure phase": r[:k], "log closure amplitude": r[k:]}
    model = A.forward(x).astype(np.complex128)
    y = np.asarray(y, dtype=np.complex128)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), y.shape)
    out = {"visibility": np.concatenate([(y - model).real, (y - model).imag]) / np.concatenate([sigma, sigma]),
           "visibility amplitude": (np.abs(y) - np.abs(model)) / sigma}
    if A.obs is not None:
        obs = A.obs.with_vis(y, sigma)
        design = closure_design(obs)
        sp, sa = closure_sigmas(y, sigma, design)
        out["closure phase"] = np.angle(np.exp(1j * (design.phase @ (np.angle(y) - np.angle(model))))) / sp
        out["log closure amplitude"] = design.amplitude @ (np.log(np.abs(y)) - np.log(np.abs(model))) / sa
    return out


normalised_residuals = normalized_residuals  # deprecated spelling (issue #17)


class RMLObjective:
    """``J(z)`` of the module docstring for the log-image ``z`` (batches allowed: leading axes), with the
    prior image, total flux and restart blur it needs; built once from the data and ``rml``'s parameters."""

    def __init__(self, y: torch.Tensor, A: Operator, noise: NoiseModel, *, data: str, prior_fwhm_uas: float,
                 total_flux: float | None, mem: float, tv: float, tsv: float, l1: float, flux: float, centroid: float,
                 blur_uas: float | None, systematic: float):
        fwd = A.interferometer if isinstance(A, Closures) else A
        npix, fov = fwd.npix, fwd.fov_uas
        dev, dtype = y.device, WORK_DTYPE
        self.terms = data_terms(y, A, noise, data, systematic)
        self.flux_total = resolve_total_flux(y, A, total_flux)
        self.npix, self.prior_fwhm_uas = npix, float(prior_fwhm_uas)
        prior = torch.as_tensor(gaussian_image(npix, fov, prior_fwhm_uas, 1.0), device=dev, dtype=dtype)
        self.prior = prior.clamp(min=1e-12)
        self.log_prior = torch.log(self.prior)
        self.prior_sum = float(self.prior.sum())
        self.l1_weight = 1.0 - self.prior / self.prior.max()
        self.xs, self.ys = (torch.as_tensor(p / RAD_PER_UAS, device=dev, dtype=dtype)
                            for p in pixel_positions_rad(npix, fov))
        res = fwd.obs.resolution_uas if fwd.obs is not None else prior_fwhm_uas / 2
        self.blur_pixels = (res if blur_uas is None else blur_uas) / (fov / npix)
        weights = {"mem": mem, "tv": tv, "tsv": tsv, "l1": l1, "flux": flux, "centroid": centroid}
        self.weights = {k: w for k, w in weights.items() if w > 0}
        self.z_max = float(np.log(self.flux_total)) + 30.0
        #: closure data: χ² and gradient in closed form (:meth:`value_and_gradient`), no autograd graph
        self.closure_fit = (_ClosureFit(y, A, _sigma_of(noise, A.out_shape[0]))
                            if isinstance(A, Closures) and [t[0] for t in self.terms] == list(CLOSURE_TERMS) else None)

    def regularizers(self, z: torch.Tensor, x: torch.Tensor, names=None) -> dict[str, torch.Tensor]:
        """Each regularizer of ``x = exp(z)`` (per image of a batch), before its weight (``names``: only those)."""
        names = set(self.weights) if names is None else set(names)
        q = x / self.flux_total
        image = (-2, -1)
        out: dict[str, torch.Tensor] = {}
        if "mem" in names:
            out["mem"] = (q * (z - float(np.log(self.flux_total)) - self.log_prior - 1) + self.prior).sum(image)
        if names & {"tv", "tsv"}:
            dx, dy = q[..., :, 1:] - q[..., :, :-1], q[..., 1:, :] - q[..., :-1, :]
            dx2, dy2 = dx * dx, dy * dy
            if "tv" in names:
                out["tv"] = torch.sqrt(dx2[..., :-1, :] + dy2[..., :, :-1] + 1e-16).sum(image)
            if "tsv" in names:
                out["tsv"] = (dx2.sum(image) + dy2.sum(image)) * (self.npix * self.npix)
        if "l1" in names:
            out["l1"] = (self.l1_weight * q).sum(image)
        if names & {"flux", "centroid"}:
            s = q.sum(image)
            if "flux" in names:
                out["flux"] = (s - 1.0) ** 2
            if "centroid" in names:
                out["centroid"] = (((q.sum(-2) * self.xs).sum(-1) / s) ** 2 + ((q.sum(-1) * self.ys).sum(-1) / s) ** 2) \
                    / self.prior_fwhm_uas**2
        return out

    @torch.no_grad()
    def penalty_and_gradient(self, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``Σ_k β_k R_k`` per image and its gradient with respect to ``z`` (closed form of :meth:`regularizers`)."""
        value, g_z, g_q = self._penalty_parts(z, x)
        return value, g_z + g_q * (x / self.flux_total)

    def _penalty_parts(self, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(Σ_k β_k R_k, ∂/∂z at fixed q, ∂/∂q)`` with ``q = x / F``: the gradient with respect to ``z`` is
        ``∂/∂z + q ⊙ ∂/∂q``. Few whole-image operations (each costs about as much as its arithmetic at 64²)."""
        w, n, f = self.weights, self.npix, self.flux_total
        q = x / f
        image = (-2, -1)
        value = torch.zeros(q.shape[:-2], dtype=q.dtype, device=q.device)
        g_q = torch.zeros_like(q)  # ∂/∂q of the terms that depend on z through q only
        g_z = torch.zeros_like(q)
        if "mem" in w:
            log_ratio = z - self.log_prior
            log_ratio -= float(np.log(f))
            value = value + w["mem"] * ((q * log_ratio).sum(image) - q.sum(image) + self.prior_sum)
            g_z = log_ratio.mul_(q).mul_(w["mem"])
        if "tv" in w or "tsv" in w:
            dx, dy = q[..., :, 1:] - q[..., :, :-1], q[..., 1:, :] - q[..., :-1, :]
            scale = w.get("tsv", 0.0) * n * n
            if "tsv" in w:
                value = value + scale * (torch.linalg.vecdot(dx.flatten(-2), dx.flatten(-2))
                                         + torch.linalg.vecdot(dy.flatten(-2), dy.flatten(-2)))
            g_dx, g_dy = dx * (2 * scale), dy * (2 * scale)
            if "tv" in w:
                dx_in, dy_in = dx[..., :-1, :], dy[..., :, :-1]
                t = torch.sqrt((dx_in * dx_in).addcmul_(dy_in, dy_in).add_(1e-16))
                value = value + w["tv"] * t.sum(image)
                t = torch.reciprocal_(t).mul_(w["tv"])
                g_dx[..., :-1, :].addcmul_(dx_in, t)
                g_dy[..., :, :-1].addcmul_(dy_in, t)
            g_q[..., :, 1:] += g_dx
            g_q[..., :, :-1] -= g_dx
            g_q[..., 1:, :] += g_dy
            g_q[..., :-1, :] -= g_dy
        if "l1" in w:
            value = value + w["l1"] * (self.l1_weight * q).sum(image)
            g_q += w["l1"] * self.l1_weight
        if "flux" in w or "centroid" in w:
            total = q.sum(image)
            constant = torch.zeros_like(total)
            if "flux" in w:
                value = value + w["flux"] * (total - 1.0) ** 2
                constant = constant + 2 * w["flux"] * (total - 1.0)
            if "centroid" in w:
                cx = (q.sum(-2) * self.xs).sum(-1) / total
                cy = (q.sum(-1) * self.ys).sum(-1) / total
                scale = w["centroid"] / self.prior_fwhm_uas**2
                value = value + scale * (cx * cx + cy * cy)
                # 2 s / total · (cx (xs − cx) + cy (ys − cy)): a row vector plus a column vector
                a = 2 * scale / total
                constant = constant - a * (cx * cx + cy * cy)
                row = (a * cx)[..., None] * self.xs  # (..., n): depends on the column
                column = (a * cy)[..., None] * self.ys  # (..., n): depends on the row
                g_q += (row + constant[..., None])[..., None, :] + column[..., :, None]
            else:
                g_q += constant[..., None, None]
        return value, g_z, g_q

    def value_and_gradient(self, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """``(J(z) per image, reduced χ² per data term, ∇_z Σ J)``: in closed form on closure data (no autograd
        graph: a third of the time at 32²), else by autograd."""
        if self.closure_fit is None:
            z = z.detach().requires_grad_(True)
            value, parts = self(z)
            value.sum().backward()
            return value.detach(), {k: v.detach() for k, v in parts.items()}, z.grad
        x = self.image(z)
        cp, la, g_x = self.closure_fit.chi2_and_gradient(x)
        penalty, g_z, g_q = self._penalty_parts(z, x)
        gradient = g_q.div_(self.flux_total).add_(g_x).mul_(x).add_(g_z)  # ∂/∂z + x ⊙ (∂/∂q / F + ∇ₓ χ²)
        return cp + la + penalty, dict(zip(CLOSURE_TERMS, (cp, la))), gradient.masked_fill_(z > self.z_max, 0.0)

    def image(self, z: torch.Tensor) -> torch.Tensor:
        """``x = exp(min(z, log F + 30))``: a trial step of the optimizer far beyond any image (a pixel e³⁰ times the
        total flux) gets a huge but finite ``J``, so the line search steps back instead of overflowing."""
        return torch.exp(z.clamp(max=self.z_max))

    def data_misfits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reduced χ² of every data term for ``x``."""
        return {name: fn(x) for name, fn, _ in self.terms}

    def penalty(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``Σ_k β_k R_k(x)``: the weighted regularizers."""
        regs = self.regularizers(z, x, self.weights)
        return sum(w * regs[k] for k, w in self.weights.items())

    def __call__(self, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(J(z), reduced χ² per data term)``."""
        x = self.image(z)
        parts = self.data_misfits(x)
        return sum(parts.values()) + self.penalty(z, x), parts

    def start(self) -> torch.Tensor:
        """The log of the prior image scaled to the total flux: the first round's starting point."""
        return torch.log(self.prior * self.flux_total)

    def restart(self, x: torch.Tensor) -> torch.Tensor:
        """The log of ``x`` blurred to the restart resolution and rescaled to the total flux."""
        start = blur_image(x, self.blur_pixels)
        start = torch.maximum(start, 1e-6 * start.amax((-2, -1), keepdim=True))
        return torch.log(start * (self.flux_total / start.sum((-2, -1), keepdim=True)))


def data_tolerance(objective: RMLObjective) -> float:
    """``√(Σ_d 2/n_d)``: the standard deviation of ``Σ_d χ²_d`` (reduced) under the noise at the true image. Two
    images whose ``J`` differ by less are not told apart by the data."""
    return float(np.sqrt(sum(2.0 / max(n, 1) for _, _, n in objective.terms)))


def select_start(images: torch.Tensor, values: torch.Tensor, tolerance: float) -> int:
    """The start to keep: the least ``J``, unless three or more starts lie within ``tolerance`` of it; then among
    those, the one whose image agrees best with theirs (largest summed aligned NXCORR, ties to the least ``J``).

    When the data cannot rank the starts (``J`` within the χ² noise), the least ``J`` is decided by the regularizers
    alone, and on closures those can prefer a start that moved a faint component's flux into a halo (RESULTS.md
    §7, 2026-12-07, helper ``rmldbl``); the image most starts agree on is then the safer one (the medoid)."""
    values = torch.where(torch.isfinite(values), values, torch.full_like(values, float("inf")))
    least = int(torch.argmin(values))
    near = [i for i in range(len(values)) if float(values[i]) <= float(values[least]) + tolerance]
    if len(near) < 3:
        return least
    pictures = [images[i].detach().cpu().double().numpy() for i in near]
    agreement = [sum(nxcorr_aligned(pictures[a], pictures[b]) for b in range(len(near)) if b != a)
                 for a in range(len(near))]
    return near[max(range(len(near)), key=lambda a: (round(agreement[a], 12), -float(values[near[a]])))]


def minimize(objective: RMLObjective, ctx: Context, iterations: int, rounds: int, start_jitter: float = 0.0,
             starts: int = 1, final_scale: float = 1.0) -> tuple[torch.Tensor, dict, int]:
    """:func:`_minimize` from ``starts`` starting images at once (one batch), keeping one (:func:`select_start`).

    The first start is the plain (or ``start_jitter``) prior image, the others the prior image times
    ``exp(0.1 ε)`` with their own ε. The kept image has the least ``J`` (data fit plus regularizers) at the end,
    unless three or more starts are within the χ² noise of it (:func:`data_tolerance`): then the one most like
    the others among those. The closure objective is multimodal (RESULTS.md §7): a few starts are the cheap
    guard against a poor local optimum, and as a batch they share the per-operation costs that dominate small
    images. The index of the kept start is logged as ``kept start``.

    The jitter breaks the point symmetry of the Gaussian start: the visibilities of a centro-symmetric image
    are real, its closure phases exactly 0 or π, and there the closure-phase term is stationary (a saddle
    that L-BFGS cannot leave when the data's closure phases are near π, as a ring's are)."""
    z0 = objective.start()
    if starts > 1 or start_jitter > 0:
        jitters = [start_jitter] + [max(start_jitter, 0.1)] * (starts - 1)
        z0 = torch.stack([z0 + j * ctx.randn(tuple(z0.shape), dtype=z0.dtype, offset=31 + 7 * s).to(z0.device)
                          for s, j in enumerate(jitters)])
    x, chi2, total_its, value = _minimize(objective, ctx, iterations, rounds, z0, final_scale=final_scale)
    if x.ndim == 2:
        ctx.log(**{"start objective": float(value), "kept start": 0})
        return x, {k: float(v) for k, v in chi2.items()}, total_its
    for v in value:
        ctx.log(**{"start objective": float(v)})
    best = select_start(x, value, data_tolerance(objective))
    ctx.log(**{"kept start": best})
    return x[best], {k: float(v[best]) for k, v in chi2.items()}, total_its


class _NonFinite(Exception):
    """The objective overflowed at a trial point: the round ends at the last accepted image."""


def _iteration_callback(objective: RMLObjective, ctx: Context, accepted: dict, r: int, chunk: int, total_steps: int,
                        progress: dict, as_tensor: Callable[[np.ndarray], torch.Tensor], shape: tuple[int, ...]):
    """scipy's per-iteration callback for round ``r`` of :func:`_minimize`: remembers the accepted point and, every
    ``chunk`` iterations, logs, keeps the best image of the batch and reports progress (scipy passes the
    ``OptimizeResult`` only to a callback whose one parameter is named ``intermediate_result``)."""

    def on_iteration(intermediate_result) -> None:
        accepted["z"], accepted["n"] = intermediate_result.x.copy(), accepted["n"] + 1
        if accepted["n"] % chunk == 0:
            progress["step"] += 1
            with torch.no_grad():
                z = as_tensor(intermediate_result.x)
                each, parts = objective(z)
                best = int(torch.argmin(each.reshape(-1)))  # the start with the least J so far
                current = objective.image(z).reshape(-1, *shape[-2:])[best]
            ctx.log(objective=float(intermediate_result.fun),
                    **{f"chi2 {k}": float(v.reshape(-1)[best]) for k, v in parts.items()})
            ctx.keep(current.float(), round=r)
            ctx.step(progress["step"], total_steps, current)

    return on_iteration


def _minimize(objective: RMLObjective, ctx: Context, iterations: int, rounds: int, z0: torch.Tensor,
              final_scale: float = 1.0) -> tuple[torch.Tensor, dict, int, torch.Tensor]:
    """``rounds`` of L-BFGS-B on ``J``, each from the previous image blurred (the EHT imaging loop), the first from
    the log-image ``z0`` (a batch of starts on leading axes: their ``J`` are summed, they share the steps);
    returns the images, their reduced χ² per data term, the number of iterations run and their ``J``.

    L-BFGS-B (scipy's, unbounded; Byrd, Lu, Nocedal & Zhu 1995, as eht-imaging) with the value and gradient of ``J``
    from torch (:meth:`RMLObjective.value_and_gradient`; :meth:`RMLObjective.image` keeps trial steps finite), for
    ``iterations`` per round (no convergence test: ``J`` still falls slowly at the end of a round, and over-fitting
    rounds lose NXCORR, RESULTS.md §7). ``final_scale``: the last of several rounds runs with the image
    regularizers' weights (:data:`SCALED_IN_FINAL_ROUND`) times this; its ``J`` (returned, and compared between starts)
    is then the one with those weights."""
    from scipy.optimize import minimize as scipy_minimize

    chunk = 20
    total_steps = rounds * int(np.ceil(iterations / chunk))
    memory = LBFGS_MEMORY["closures" if objective.closure_fit is not None else "other"]
    shape, dtype, device = tuple(z0.shape), z0.dtype, z0.device
    x = objective.image(z0)
    chi2: dict[str, float] = {}
    iterations_run = 0
    progress = {"step": 0}

    def as_tensor(flat: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(flat).to(device, dtype).reshape(shape)

    def value_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        each, _, gradient = objective.value_and_gradient(as_tensor(flat))
        ctx.evaluations += 1
        value, gradient = float(each.sum()), gradient.to(torch.float64).cpu().numpy().ravel()
        if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
            raise _NonFinite
        return value, gradient

    weights = dict(objective.weights)
    try:
        for r in range(rounds):
            if r > 0:
                z0 = objective.restart(x)
            if r == rounds - 1 and r > 0 and final_scale != 1.0:
                objective.weights = {k: w * (final_scale if k in SCALED_IN_FINAL_ROUND else 1.0)
                                     for k, w in weights.items()}
            accepted = {"z": z0.to(torch.float64).cpu().numpy().ravel(), "n": 0}

            on_iteration = _iteration_callback(objective, ctx, accepted, r, chunk, total_steps, progress, as_tensor,
                                               shape)

            try:
                result = scipy_minimize(value_and_gradient, accepted["z"], jac=True, method="L-BFGS-B",
                                        callback=on_iteration,
                                        options={"maxiter": iterations, "maxcor": memory, "ftol": 0.0, "gtol": 0.0,
                                                 "maxfun": 4 * iterations + 20})
                final = result.x
            except _NonFinite:  # a trial point overflowed: keep the last accepted image
                final = accepted["z"]
            iterations_run += accepted["n"]
            with torch.no_grad():
                z = as_tensor(np.asarray(final, dtype=np.float64))
                value, parts = objective(z)
                x = objective.image(z)
            chi2 = dict(parts)
    finally:
        objective.weights = weights
    return x, chi2, iterations_run, value


#: the regularizers whose weights ``final_scale`` multiplies in the last round (flux and centroid are constraints)
SCALED_IN_FINAL_ROUND = ("mem", "tv", "tsv", "l1")

#: rml's defaults on closure-only data (RESULTS.md §7, 2026-12-07): iterations per round at 32² pixels
#: and, from 2026-12-07 (helper ``rmlring``), the last round with the MEM/TV/TSV/L1 weights doubled (``final_scale``),
#: chosen on the random family of ``benchmarks/bench_rml_starts.py``, not on §7's models
CLOSURE_DEFAULTS = {"rounds": 3, "iterations": 150, "starts": 3, "final_scale": 2.0}


def closure_iterations(npix: int) -> int:
    """L-BFGS iterations per round on closure data: 150 at 32², in proportion to the image side above (the TSV
    term's curvature grows with it; at 64², 150 left the ring's log closure amplitudes at χ² 4, RESULTS.md §7)."""
    return round(CLOSURE_DEFAULTS["iterations"] * max(1.0, npix / 32))

#: L-BFGS-B's memory (correction pairs): on closure data scipy's default (eht-imaging's), on other data 20 (with 10
#: the visibility fits of the three bundled models ended at χ²ᵥ 1.7–2.6 instead of 1.5–2.2, RESULTS.md §7, 2026-12-07)
LBFGS_MEMORY = {"closures": 10, "other": 20}

#: rml's parameters, shared with the samplers of its posterior
RML_PARAMS = (
    Param("data", str, "auto", choices=("auto", "vis", "amp_cphase", "closures"),
          doc="data products fitted (auto: vis for an Interferometer, closures for Closures)"),
    Param("rounds", int, None, 1, 20,
          doc="imaging rounds, each from the blurred previous image (empty: 2 on visibilities, 3 on closures)"),
    Param("prior_fwhm_uas", float, 80.0, 1.0, 10000.0, doc="FWHM of the Gaussian prior and initial image (µas)"),
    Param("total_flux", float, None, 0.0, None, doc="total flux in Jy (empty: from the shortest baselines)"),
    Param("mem", float, 0.1, 0.0, None, doc="weight of the relative entropy to the prior", log_scale=True),
    Param("tv", float, 0.05, 0.0, None, doc="weight of the total variation", log_scale=True),
    Param("tsv", float, 0.05, 0.0, None, doc="weight of the total squared variation", log_scale=True),
    Param("l1", float, 0.0, 0.0, None, doc="weight of the prior-weighted L1 norm", log_scale=True),
    Param("flux", float, 1.0, 0.0, None, doc="weight of the total-flux constraint", log_scale=True),
    Param("centroid", float, 100.0, 0.0, None, doc="weight of the centroid-at-center constraint", log_scale=True),
    Param("blur_uas", float, None, 0.0, 1000.0, doc="restart blur FWHM in µas (empty: nominal resolution)"),
    Param("systematic", float, 0.0, 0.0, 1.0, doc="fractional systematic error added to visibility sigmas"),
    Param("starts", int, None, 1, 32,
          doc="starting images run as one batch, the one with the least objective kept, or when three or more are "
              "within the χ² noise of it, the one most like those (empty: 1 on visibilities, 3 on closures, whose "
              "objective is multimodal)"),
    Param("final_scale", float, None, 0.0, 10.0,
          doc="the last of several rounds with the MEM/TV/TSV/L1 weights times this (empty: 1 on visibilities, 2 on "
              "closures, where a smoother last round is the better image)"),
    Param("start_jitter", float, 0.0, 0.0, 2.0,
          doc="std of a random log-perturbation of the starting image (0: the prior image itself); to probe how much "
              "the image depends on the start"),
)

_OBJECTIVE_KEYS = ("data", "prior_fwhm_uas", "total_flux", "mem", "tv", "tsv", "l1", "flux", "centroid", "blur_uas",
                   "systematic")


class RML(Method):
    name = "rml"
    label = "Regularized maximum likelihood (EHT)"
    description = (
        "argmin_x Σ α χ²(data) + β_mem KL(x‖prior) + β_tv TV + β_tsv TSV + β_l1 L1 + flux + centroid, x = exp(z) > 0, "
        "by L-BFGS-B; rounds restart from the blurred previous image. Data: visibilities, amplitudes + closure "
        "phases, or closure quantities only (3 starts as one batch, the least objective kept unless three are within "
        "the χ² noise of it, then the one most like the others; the last round with doubled MEM/TV/TSV weights)."
    )
    reference = ("Chael et al. 2016, ApJ 829, 11; Chael et al. 2018, ApJ 857, 23; EHT Collaboration 2019, "
                 "ApJL 875, L4 (Paper IV).")
    needs_adjoint = False
    operators = ("Interferometer", "Closures")
    complex_images = False
    domain = "blackhole"
    params = (RML_PARAMS[0], Param("iterations", int, None, 1, 20000,
                                   doc="L-BFGS iterations per round (empty: 500 on visibilities; on closures 150 at 32², "
                                       "in proportion to the image side above)"),
              ) + RML_PARAMS[1:]

    def run(self, y, A, noise, ctx: Context, **params) -> Estimate:
        # closure-only data: three starts of 3 rounds × 150 iterations, as one batch, the last round twice as
        # regularized (RESULTS.md §7, 2026-12-07)
        closures_only = isinstance(A, Closures) or params["data"] == "closures"
        rounds = params["rounds"] or (CLOSURE_DEFAULTS["rounds"] if closures_only else 2)
        npix = (A.interferometer if isinstance(A, Closures) else A).npix
        iterations = params["iterations"] or (closure_iterations(npix) if closures_only else 500)
        starts = params["starts"] or (CLOSURE_DEFAULTS["starts"] if closures_only else 1)
        final_scale = params["final_scale"]
        if final_scale is None:
            final_scale = CLOSURE_DEFAULTS["final_scale"] if closures_only else 1.0
        with single_thread():
            objective = RMLObjective(y, A, noise, **{k: params[k] for k in _OBJECTIVE_KEYS})
            x, chi2, iterations_run = minimize(objective, ctx, iterations, rounds, params["start_jitter"], starts,
                                               final_scale=final_scale)
        kept, objectives = int(ctx.history["kept start"][-1]), list(ctx.history["start objective"][-starts:])
        return Estimate(x.float(), info={"iterations": iterations_run, "rounds": rounds, "starts": starts,
                                         "final_scale": final_scale, "kept_start": kept,
                                         "objective": objectives[kept], "start_objectives": objectives,
                                         "total_flux": objective.flux_total, "reduced_chi2": chi2,
                                         "data": [name for name, _, _ in objective.terms],
                                         "image_flux": float(x.sum())})
