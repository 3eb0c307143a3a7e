"""The GMRF raster model of :mod:`.posterior` on complex visibilities with the field integrated out.

With the linear link the image is ``x = F m + F σ M P K_ρ ε`` (``M = diag(m)``, ``P f = f − 1·mᵀf/Σm`` the flux-free
projection, ``K_ρ`` the symmetric GMRF filter, ε ~ N(0, I)): given θ = (log σ, log ρ, log F) it is linear in ε, and the
visibilities ``y = R x + ν`` (``R`` the real [Re; Im] DFT, ν ~ N(0, S²)) are linear-Gaussian. Whitened by S:

    ỹ = F a + B_θ ε + ν̃,   a = S⁻¹R m,   B_θ = F σ G K_ρ,   G = S⁻¹ R M P,   ν̃ ~ N(0, I)
    p(θ | y) ∝ p(θ) N(ỹ; F a, Σ_θ),   Σ_θ = I + F²σ² G K_ρ² Gᵀ   (n_data × n_data, one Cholesky per θ)
    ε | θ, y ~ N(B_θᵀ Σ_θ⁻¹ (ỹ − F a), I − B_θᵀ Σ_θ⁻¹ B_θ)

``G K_ρ² Gᵀ = Re(Ĝ diag(w·s_ρ) Ĝᴴ)`` with Ĝ the unitary 2-D real FFT of G's rows, ``s_ρ`` the GMRF spectrum and ``w``
the rfft column multiplicities; frequencies at which Ĝ has no energy (below 1e-14 of the largest) are dropped.
ε is drawn exactly by Matheron's rule / pathwise conditioning (Hoffman & Ribak, ApJ 380 (1991) L5; Wilson et al.,
ICML 2020): ``ε = ε₀ + B_θᵀ Σ_θ⁻¹ (ỹ − F a − B_θ ε₀ − ν₀)`` with ε₀ ~ N(0, I), ν₀ ~ N(0, I) — the data-space (Woodbury)
form, with the Cholesky factor of Σ_θ the marginal density already needed. This is the collapsed sampler for
latent Gaussian models (Rue & Held, Gaussian Markov Random Fields, Chapman & Hall 2005, §4.1; Rue, Martino & Chopin,
JRSS B 71 (2009) 319); θ moves by adaptive Metropolis (:mod:`napari_invimg.methods._metropolis`).

Closure quantities do not depend on F and are not linear in the image: :meth:`CollapsedGMRF.linearize` replaces their
whitened residuals of the unit-flux image ``u = x/F`` by ``r₀ + J (u − u₀)`` (so ``a = 0`` and ``B_θ = σ G K_ρ`` with
``G = J M P``), and :meth:`CollapsedGMRF.log_weight` is the exact minus the linearized log-likelihood, with which the
sampler in :mod:`.posterior` corrects the linearized model to the exact posterior.
"""

from __future__ import annotations

import math

import torch

from .operators import Interferometer

__all__ = ["CollapsedGMRF"]


class CollapsedGMRF:
    """The marginal posterior of θ = (log σ, log ρ, log F) and the exact conditional of ε for a
    :class:`~napari_invimg.blackhole.posterior.GMRFPosterior` with the linear link on visibilities."""

    def __init__(self, post, energy_floor: float = 1e-14):
        if post.link != "linear":
            raise ValueError("The field can be integrated out only with the linear link.")
        self.post = post
        n = post.npix
        self.npix, self.n2 = n, n * n
        self.energy_floor = float(energy_floor)
        self.mv = post.m.reshape(-1).to(torch.float64)
        self.av = post.a.reshape(-1).to(torch.float64)  # the field's amplitude (= m unless given apart)
        self.log_flux0 = math.log(post.flux0)
        #: whether the data scale with the total flux F (visibilities) or not (closures: scale-free)
        self.flux_scales = not post.closures
        if post.closures:
            self.linearize(post.m)
            return
        dt = torch.float64
        if post.matrix is not None:
            R = post.matrix.T.to(dt)
        else:  # the NUFFT operator: the exact DFT matrix of the same (u, v)
            fwd = post.fwd
            R = Interferometer(u=fwd.u, v=fwd.v, npix=n, fov_uas=fwd.fov_uas, transform="dft").real_matrix(dt)
        S = post.sigma_ri.to(dt)
        self._set_model(R / S[:, None], post.y_ri.to(dt) / S, (R @ self.mv) / S)

    def _set_model(self, J: torch.Tensor, y: torch.Tensor, a: torch.Tensor) -> None:
        """The whitened linear model ``r = F a + F σ G K_ρ ε − ỹ`` with ``G = J M P`` from the whitened Jacobian ``J``
        (data, N²) of the residuals with respect to the image, and the Fourier factor Q of G."""
        n, av = self.npix, self.av
        Ja = J @ av
        self.G = J * av - Ja[:, None] * av[None, :] / av.sum()  # J A P  (data, N²), A = diag(a) (a = m by default)
        self.a, self.y = a, y
        d = self.G.shape[0]
        self.d = d
        Gh = torch.fft.rfft2(self.G.reshape(d, n, n), norm="ortho").reshape(d, -1)
        Q = torch.cat([Gh.real, Gh.imag], 1)
        energy = (Q * Q).sum(0)
        keep = energy > self.energy_floor * float(energy.max())
        self.Q = Q[:, keep].contiguous()
        self.columns = torch.cat([torch.arange(Gh.shape[1]), torch.arange(Gh.shape[1])])[keep]
        self.eye = torch.eye(d, dtype=torch.float64)

    def linearize(self, u0: torch.Tensor) -> None:
        """Closures: the whitened residuals of the unit-flux image ``u = m ⊙ (1 + σ P K_ρ ε)`` linearized at ``u0``,
        ``r(u) ≈ r₀ + J (u − u₀)`` (closure quantities do not depend on F): ``ỹ = J (u₀ − m) − r₀``, ``a = 0``."""
        n = self.npix
        u0 = torch.as_tensor(u0, dtype=torch.float64).reshape(-1).detach()
        r0 = self.post.residuals_of_image(u0.reshape(1, n, n))[0].detach()
        with torch.enable_grad():
            copies = u0.unsqueeze(0).repeat(r0.shape[0], 1).requires_grad_(True)
            r = self.post.residuals_of_image(copies.reshape(-1, n, n))
            (J,) = torch.autograd.grad(r.diagonal().sum(), copies)
        if not (torch.isfinite(J).all() and torch.isfinite(r0).all()):
            raise ValueError("The closure quantities are not differentiable at the linearization image.")
        self.J, self.r0, self.u0 = J.detach(), r0, u0
        self._set_model(self.J, self.J @ (u0 - self.mv) - r0, torch.zeros_like(r0))

    def unit_image(self, hyper: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``u = m ⊙ (1 + σ P K_ρ ε)`` (…, N²), the image of unit flux."""
        h = hyper.clone()
        h[..., 2] = 0.0
        n = self.npix
        return self.post.image(torch.cat([eps, h], -1)).reshape(*eps.shape[:-1], n * n)

    def log_weight(self, hyper: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Closures: ``log p(y | u) − log p̃(y | u)``, the exact log-likelihood minus its linearization (per chain);
        the importance weight that turns draws of the linearized model into an exact Metropolis–Hastings move."""
        u = self.unit_image(hyper, eps)
        r = self.post.residuals_of_image(u.reshape(*u.shape[:-1], self.npix, self.npix))
        r_lin = self.r0 + (u - self.u0) @ self.J.T
        value = 0.5 * ((r_lin * r_lin).sum(-1) - (r * r).sum(-1))
        return torch.nan_to_num(value, nan=-math.inf)

    def _scale(self, hyper: torch.Tensor) -> torch.Tensor:
        """The field's amplitude in the whitened data: F σ (visibilities) or σ (closures)."""
        return torch.exp(hyper[..., 0] + hyper[..., 2]) if self.flux_scales else torch.exp(hyper[..., 0])

    def _offset(self, hyper: torch.Tensor) -> torch.Tensor:
        """``ỹ − F a`` (chains, data)."""
        return self.y - torch.exp(hyper[..., 2])[..., None] * self.a if self.flux_scales else self.y.expand(
            *hyper.shape[:-1], -1)

    def data_covariance(self, log_rho: torch.Tensor) -> torch.Tensor:
        """``G K_ρ² Gᵀ`` (…, data, data) for log ρ of shape (…)."""
        spec, weights = self.post._spectrum(log_rho)
        sw = (spec * weights).reshape(*spec.shape[:-2], -1)[..., self.columns]
        half = self.Q * sw.sqrt()[..., None, :]
        return half @ half.transpose(-1, -2)

    def neg_log_posterior(self, hyper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``−log p(θ | y)`` up to a constant for θ (chains, 3), and the Cholesky factors of Σ_θ (chains, d, d);
        ``inf`` where Σ_θ is not numerically positive definite."""
        log_sigma, log_rho, log_flux = hyper.unbind(-1)
        scale2 = self._scale(hyper) ** 2
        cov = self.eye + scale2[..., None, None] * self.data_covariance(log_rho)
        chol, info = torch.linalg.cholesky_ex(cov)
        r = self._offset(hyper)
        z = torch.linalg.solve_triangular(chol, r.unsqueeze(-1), upper=False).squeeze(-1)
        value = 0.5 * (z * z).sum(-1) + torch.log(chol.diagonal(dim1=-2, dim2=-1)).sum(-1)
        value = value + 0.5 * (log_sigma**2 + (log_rho - self.post.rho0) ** 2
                               + ((log_flux - self.log_flux0) / self.post.flux_sd) ** 2)
        value = torch.where(info == 0, value, torch.full_like(value, math.inf))
        return value, chol

    def _apply_B(self, eps: torch.Tensor, hyper: torch.Tensor) -> torch.Tensor:
        """``B_θ ε`` for ε (chains, N²)."""
        n = self.npix
        scale = self._scale(hyper)
        f = self.post.field(eps.reshape(*eps.shape[:-1], n, n), hyper[..., 1]).reshape(*eps.shape[:-1], -1)
        return scale[..., None] * (f @ self.G.T)

    def _apply_Bt(self, z: torch.Tensor, hyper: torch.Tensor) -> torch.Tensor:
        """``B_θᵀ z`` for z (chains, data) (K_ρ is symmetric)."""
        n = self.npix
        scale = self._scale(hyper)
        g = (z @ self.G).reshape(*z.shape[:-1], n, n)
        return scale[..., None] * self.post.field(g, hyper[..., 1]).reshape(*z.shape[:-1], -1)

    def conditional_mean(self, hyper: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
        """``E[ε | θ, y] = B_θᵀ Σ_θ⁻¹ (ỹ − F a)``."""
        r = self._offset(hyper)
        return self._apply_Bt(torch.cholesky_solve(r.unsqueeze(-1), chol).squeeze(-1), hyper)

    def field_of(self, hyper: torch.Tensor, chol: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        """Matheron's map from auxiliary standard normals ``aux = [ε₀ (N²), ν₀ (data)]`` (chains, N² + data) to
        ``ε = ε₀ + B_θᵀ Σ_θ⁻¹ (ỹ − F a − B_θ ε₀ − ν₀)``: a draw of ε | θ, y for aux ~ N(0, I); linear in aux,
        differentiable."""
        eps0, nu0 = aux[..., : self.n2], aux[..., self.n2:]
        r = self._offset(hyper) - self._apply_B(eps0, hyper) - nu0
        return eps0 + self._apply_Bt(torch.cholesky_solve(r.unsqueeze(-1), chol).squeeze(-1), hyper)

    def aux_given_field(self, hyper: torch.Tensor, chol: torch.Tensor, eps: torch.Tensor,
                        gen: torch.Generator) -> torch.Tensor:
        """A draw of the auxiliary normals a ~ N(0, I) conditioned on :meth:`field_of` ``(θ, a) = ε`` (chains, N² + data):
        ``a = a* + Tᵀ Λ̃ (ε − ε(θ, a*))`` with ``ε(θ, a) = μ̃ + T a``, ``T = [I − BᵀΣ⁻¹B, −BᵀΣ⁻¹]``, ``T Tᵀ = Λ̃⁻¹``,
        ``Λ̃ = I + BᵀB`` (the conditioning of a Gaussian on a linear constraint)."""
        a_star = torch.randn((*hyper.shape[:-1], self.n2 + self.d), generator=gen, dtype=hyper.dtype)
        delta = eps - self.field_of(hyper, chol, a_star)
        lam = delta + self._apply_Bt(self._apply_B(delta, hyper), hyper)
        s = torch.cholesky_solve(self._apply_B(lam, hyper).unsqueeze(-1), chol).squeeze(-1)
        return a_star + torch.cat([lam - self._apply_Bt(s, hyper), -s], -1)

    def draw_field(self, hyper: torch.Tensor, chol: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """One exact draw of ε | θ, y per chain (chains, N²), by pathwise conditioning (module docstring)."""
        shape = hyper.shape[:-1]
        aux = torch.randn((*shape, self.n2 + self.d), generator=gen, dtype=hyper.dtype)
        return self.field_of(hyper, chol, aux)

    def mode(self, start: torch.Tensor, iterations: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
        """The mode of p(θ | y) by L-BFGS from ``start`` (3,), and the Laplace covariance there (the inverse Hessian;
        a diagonal 0.1² where the Hessian is not positive definite)."""
        theta = start.clone().to(torch.float64).requires_grad_(True)
        opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=iterations, history_size=10, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-7, tolerance_change=1e-12)

        def objective(t):
            return self.neg_log_posterior(t.unsqueeze(0))[0][0]

        def closure():
            opt.zero_grad()
            value = objective(theta)
            value.backward()
            return value

        opt.step(closure)
        best = theta.detach()
        if not torch.isfinite(objective(best)):
            best = start.clone().to(torch.float64)
        hess = torch.autograd.functional.hessian(objective, best)
        hess = 0.5 * (hess + hess.T)
        evals = torch.linalg.eigvalsh(hess)
        if bool(torch.isfinite(hess).all()) and float(evals.min()) > 0:
            cov = torch.linalg.inv(hess)
        else:
            cov = torch.eye(3, dtype=torch.float64) * 0.01
        return best, cov
