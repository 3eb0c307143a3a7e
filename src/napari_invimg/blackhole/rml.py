"""Regularized maximum likelihood (RML) imaging with the regularizers of the EHT imaging pipelines.

Minimize over the log-image (so the image stays positive), by L-BFGS in torch::

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

import numpy as np
import torch

from ..methods.registry import Context, Estimate, Method, Param
from ..operators.base import Operator
from ..operators.noise import NoiseModel
from .arrays import RAD_PER_UAS
from .closures import closure_design, closure_phases, closure_sigmas
from .operators import Closures, Interferometer, gaussian_image, pixel_positions_rad, zero_baseline_flux

__all__ = ["RML", "data_terms", "blur_image", "normalized_residuals", "single_thread"]


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
        sigma = torch.as_tensor(_sigma_of(noise, A.out_shape[0]), device=dev, dtype=f64)
        yd = y.to(f64)
        k = A.n_phases
        fwd = A.interferometer

        def closures(x):
            return A.closures_of(fwd.apply(x))

        return [
            ("closure phase", lambda x: (2 * (1 - torch.cos(yd[:k] - closures(x)[..., :k])) / sigma[:k] ** 2).mean(-1), k),
            ("log closure amplitude", lambda x: ((yd[k:] - closures(x)[..., k:]) ** 2 / sigma[k:] ** 2).mean(-1),
             A.n_amplitudes),
        ]
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
        self.l1_weight = 1.0 - self.prior / self.prior.max()
        self.xs, self.ys = (torch.as_tensor(p / RAD_PER_UAS, device=dev, dtype=dtype)
                            for p in pixel_positions_rad(npix, fov))
        res = fwd.obs.resolution_uas if fwd.obs is not None else prior_fwhm_uas / 2
        self.blur_pixels = (res if blur_uas is None else blur_uas) / (fov / npix)
        weights = {"mem": mem, "tv": tv, "tsv": tsv, "l1": l1, "flux": flux, "centroid": centroid}
        self.weights = {k: w for k, w in weights.items() if w > 0}

    def regularizers(self, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each regularizer of ``x = exp(z)`` (per image of a batch), before its weight."""
        q = x / self.flux_total
        dx, dy = q[..., :, 1:] - q[..., :, :-1], q[..., 1:, :] - q[..., :-1, :]
        s = q.sum((-2, -1))
        image = (-2, -1)
        return {
            "mem": (q * (z - float(np.log(self.flux_total)) - self.log_prior) - q + self.prior).sum(image),
            "tv": torch.sqrt(dx[..., :-1, :] ** 2 + dy[..., :, :-1] ** 2 + 1e-16).sum(image),
            "tsv": ((dx**2).sum(image) + (dy**2).sum(image)) * self.npix * self.npix,
            "l1": (self.l1_weight * q).sum(image),
            "flux": (s - 1.0) ** 2,
            "centroid": (((q.sum(-2) * self.xs).sum(-1) / s) ** 2 + ((q.sum(-1) * self.ys).sum(-1) / s) ** 2)
            / self.prior_fwhm_uas**2,
        }

    def data_misfits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reduced χ² of every data term for ``x``."""
        return {name: fn(x) for name, fn, _ in self.terms}

    def penalty(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``Σ_k β_k R_k(x)``: the weighted regularizers."""
        regs = self.regularizers(z, x)
        return sum(w * regs[k] for k, w in self.weights.items())

    def __call__(self, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(J(z), reduced χ² per data term)``."""
        x = torch.exp(z)
        parts = self.data_misfits(x)
        return sum(parts.values()) + self.penalty(z, x), parts

    def start(self) -> torch.Tensor:
        """The log of the prior image scaled to the total flux: the first round's starting point."""
        return torch.log(self.prior * self.flux_total)

    def restart(self, x: torch.Tensor) -> torch.Tensor:
        """The log of ``x`` blurred to the restart resolution and rescaled to the total flux."""
        start = blur_image(x, self.blur_pixels)
        start = start.clamp(min=1e-6 * float(start.max()))
        return torch.log(start * (self.flux_total / float(start.sum())))


def minimize(objective: RMLObjective, ctx: Context, iterations: int, rounds: int, start_jitter: float = 0.0,
             starts: int = 1) -> tuple[torch.Tensor, dict, int]:
    """:func:`_minimize` from ``starts`` starting images, keeping the best fit.

    With ``starts`` > 1 each start runs the first ``⌈rounds/2⌉`` rounds (the first from the plain or
    ``start_jitter`` start, the others from the prior image times ``exp(0.1 ε)`` with their own ε); the one whose data fit best
    (smallest ``Σ_d n_d χ²_d``) goes on for the remaining rounds. The closure objective is multimodal (RESULTS.md
    §7): a few starts screened by their fit is the cheap guard against a poor local optimum."""
    if starts <= 1:
        return _minimize(objective, ctx, iterations, rounds, start_jitter)
    screen = max(1, (rounds + 1) // 2)
    sizes = {name: n for name, _, n in objective.terms}
    best = None
    total_its = 0
    for s in range(starts):
        jitter = start_jitter if s == 0 else max(start_jitter, 0.1)
        x, chi2, its = _minimize(objective, ctx, iterations, screen, jitter, offset=31 + 7 * s)
        total_its += its
        fit = sum(sizes[k] * v for k, v in chi2.items())
        ctx.log(**{"start fit": fit})
        if np.isfinite(fit) and (best is None or fit < best[0]):
            best = (fit, x, chi2)
    _, x, chi2 = best
    if rounds > screen:
        x, chi2, its = _minimize(objective, ctx, iterations, rounds - screen, 0.0, x_start=x)
        total_its += its
    return x, chi2, total_its


def _minimize(objective: RMLObjective, ctx: Context, iterations: int, rounds: int, start_jitter: float = 0.0,
              offset: int = 31, x_start: torch.Tensor | None = None) -> tuple[torch.Tensor, dict, int]:
    """``rounds`` of L-BFGS on ``J``, each from the previous image blurred (the EHT imaging loop), the first from
    the prior image times ``exp(start_jitter · ε)``, ε ~ N(0, 1) per pixel; returns the image, its reduced χ²
    per data term and the number of iterations run.

    The jitter breaks the point symmetry of the Gaussian start: the visibilities of a centro-symmetric image
    are real, its closure phases exactly 0 or π, and there the closure-phase term is stationary (a saddle
    that L-BFGS cannot leave when the data's closure phases are near π, as a ring's are)."""
    chunk = 20
    total_steps = rounds * int(np.ceil(iterations / chunk))
    step = 0
    z0 = objective.start() if x_start is None else objective.restart(x_start)
    if start_jitter > 0:
        z0 = z0 + start_jitter * ctx.randn(tuple(z0.shape), dtype=z0.dtype, offset=offset).to(z0.device)
    x = torch.exp(z0)
    chi2: dict[str, float] = {}
    iterations_run = 0
    for r in range(rounds):
        if r > 0:
            z0 = objective.restart(x)
        z = z0.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([z], lr=1.0, max_iter=chunk, history_size=20, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-10, tolerance_change=1e-14)

        def closure():
            opt.zero_grad()
            value, _ = objective(z)
            value.backward()
            ctx.evaluations += 1
            return value

        done = 0
        while done < iterations:
            opt.param_groups[0]["max_iter"] = min(chunk, iterations - done)
            with torch.no_grad():
                before = float(objective(z)[0])
            last = z.detach().clone()
            opt.step(closure)
            done += opt.param_groups[0]["max_iter"]
            iterations_run += opt.param_groups[0]["max_iter"]
            step += 1
            with torch.no_grad():
                value, parts = objective(z)
                if not torch.isfinite(value):  # a line search overflowed exp(z): keep the last finite image
                    z.copy_(last)
                    value, parts = objective(z)
                    done = iterations
                x = torch.exp(z).detach()
            ctx.log(objective=float(value), **{f"chi2 {k}": float(v) for k, v in parts.items()})
            ctx.keep(x.float(), round=r)
            ctx.step(step, total_steps, x)
            if abs(before - float(value)) <= 1e-9 * max(abs(before), 1e-30):
                break
        chi2 = {k: float(v) for k, v in parts.items()}
    return x, chi2, iterations_run


#: rml's parameters, shared with the samplers of its posterior
RML_PARAMS = (
    Param("data", str, "auto", choices=("auto", "vis", "amp_cphase", "closures"),
          doc="data products fitted (auto: vis for an Interferometer, closures for Closures)"),
    Param("rounds", int, None, 1, 20,
          doc="imaging rounds, each from the blurred previous image (empty: 2 on visibilities, 4 on closures)"),
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
    Param("starts", int, 1, 1, 32,
          doc="starts screened over the first half of the rounds; the best-fitting one finishes (closures: multimodal)"),
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
        "by L-BFGS; rounds restart from the blurred previous image. Data: visibilities, amplitudes + closure "
        "phases, or closure quantities only."
    )
    reference = ("Chael et al. 2016, ApJ 829, 11; Chael et al. 2018, ApJ 857, 23; EHT Collaboration 2019, "
                 "ApJL 875, L4 (Paper IV).")
    needs_adjoint = False
    operators = ("Interferometer", "Closures")
    complex_images = False
    domain = "blackhole"
    params = (RML_PARAMS[0], Param("iterations", int, None, 1, 20000,
                                   doc="L-BFGS iterations per round (empty: 500 on visibilities, 300 on closures)"),
              ) + RML_PARAMS[1:]

    def run(self, y, A, noise, ctx: Context, **params) -> Estimate:
        # closure-only data: more, shorter rounds (4 × 300 beat 2 × 500 on all three bundled models, RESULTS.md §7)
        closures_only = isinstance(A, Closures) or params["data"] == "closures"
        rounds = params["rounds"] or (4 if closures_only else 2)
        iterations = params["iterations"] or (300 if closures_only else 500)
        with single_thread():
            objective = RMLObjective(y, A, noise, **{k: params[k] for k in _OBJECTIVE_KEYS})
            x, chi2, iterations_run = minimize(objective, ctx, iterations, rounds, params["start_jitter"],
                                               params["starts"])
        return Estimate(x.float(), info={"iterations": iterations_run, "rounds": rounds,
                                         "total_flux": objective.flux_total, "reduced_chi2": chi2,
                                         "data": [name for name, _, _ in objective.terms],
                                         "image_flux": float(x.sum())})
