"""Classical reconstructions: Wiener filtering, Richardson–Lucy, Tikhonov by conjugate gradients."""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np
import torch

from ..operators.base import Operator
from ..operators.blur import Blur, transfer_function
from ..operators.kernels import conjugate_gradient, discrepancy_search
from ..operators.noise import Gaussian, NoiseModel
from ..priors.differences import laplacian
from ..validation import data_scale
from .registry import ITERATIONS, Context, Estimate, Method, Param, TileProfile

__all__ = ["Wiener", "RichardsonLucy", "TikhonovCG", "effective_sigma2"]


def effective_sigma2(noise: NoiseModel, y: torch.Tensor) -> float:
    """Mean noise variance of the data ``y`` (Gaussian approximation of any camera model)."""
    z = y.real if y.is_complex() else y
    return float(noise.variance(z).mean())


def _grid_frequencies2(shape: tuple[int, ...], device) -> torch.Tensor:
    """``Σ_i 4 sin²(π f_i)``: the symbol of the discrete negative Laplacian on an rfft grid."""
    freqs = [torch.fft.fftfreq(n, device=device) for n in shape[:-1]] + [torch.fft.rfftfreq(shape[-1], device=device)]
    grids = torch.meshgrid(*freqs, indexing="ij")
    return sum(4 * torch.sin(torch.pi * g) ** 2 for g in grids)


class Wiener(Method):
    name = "wiener"
    label = "Wiener filter"
    description = (
        "Regularized inverse filter x̂ = F⁻¹[Ĥ* Ŷ / (|Ĥ|² + λ R)] with R = 1 or |∇|²; λ from the discrepancy "
        "principle on the (estimated) noise level unless given. One FFT pass: instant."
    )
    reference = "Wiener, Extrapolation, Interpolation and Smoothing of Stationary Time Series, MIT (1949); Morozov (1966)."
    operators = ("Identity", "Blur")
    complex_images = False
    params = (
        Param("regularizer", str, "gradient", choices=("gradient", "identity"), doc="penalty on |∇x|² or |x|²"),
        Param("lam", float, None, 0.0, None, doc="regularization weight (empty: discrepancy principle)", log_scale=True),
        Param("tau", float, 1.0, 0.1, 10.0, doc="discrepancy target (misfit per pixel) for the automatic λ"),
    )

    def run(self, y, A: Operator, noise, ctx: Context, regularizer: str, lam: float | None, tau: float) -> Estimate:
        grid, H, pad, crop = A.circulant()
        dims = tuple(range(-A.ndim, 0))
        Y = torch.fft.rfftn(pad(y), s=grid, dim=dims)  # the data extended outside the field of view
        R = _grid_frequencies2(grid, y.device) if regularizer == "gradient" else torch.ones((), device=y.device)
        H2, HY = H.abs() ** 2, H.conj() * Y
        scale = float(H2.max()) / max(float(R.max()), 1e-12)

        def solve(lmb: float) -> torch.Tensor:
            return torch.fft.irfftn(HY / (H2 + lmb * scale * R), s=grid, dim=dims)

        def misfit(lmb: float) -> float:
            # residual of the circulant model on the padded grid, inside the field of view: monotone in λ
            fit = torch.fft.irfftn(H * torch.fft.rfftn(solve(lmb), dim=dims), s=grid, dim=dims)
            return gauss.misfit(y, crop(fit))

        gauss = Gaussian(effective_sigma2(noise, y) ** 0.5)
        with torch.no_grad():
            if lam is None:
                lam = discrepancy_search(misfit, target=tau)
                how = "discrepancy principle"
            else:
                how = "given"
            x = crop(solve(lam))
        ctx.step(1, 1, x)
        return Estimate(x, info={"lam": lam * scale, "lam_relative": lam, "lam_choice": how, "iterations": 1})


class RichardsonLucy(Method):
    name = "richardson_lucy"
    label = "Richardson–Lucy"
    description = (
        "Poisson maximum likelihood x ← x · Aᵀ(y / Ax) / Aᵀ1, accelerated by Biggs–Andrews vector extrapolation and "
        "optionally over-relaxed first steps (relaxation = 2: the correction squared in the first 3 iterations); "
        "the result is the extrapolated point v = x + α (x − x_prev) after the last iteration. Stops itself when the "
        "Poisson deviance (or χ² for Gaussian noise) at that point reaches the noise level. With a "
        "reflect blur whose PSF is symmetric about its centre the blur is diagonal in the cosine transform (two "
        "image-size transforms per convolution); otherwise, with a reflect or zero blur, the object is estimated on "
        "the padded FFT grid (the surroundings of the field of view are unknowns), two FFT convolutions per iteration."
    )
    reference = (
        "Richardson, JOSA 62 (1972) 55; Lucy, AJ 79 (1974) 745; Biggs & Andrews, Appl. Opt. 36 (1997) 1766; "
        "Bertero et al., Inverse Problems 26 (2010) 105004 (discrepancy principle for Poisson data); "
        "Lanteri, Roche, Cuevas & Aime, Signal Process. 81 (2001) 945 (relaxed multiplicative steps); "
        "Bertero & Boccacci, A&A 437 (2005) 369 (boundary effects); Ng, Chan & Tang, SIAM J. Sci. Comput. 21 "
        "(1999) 851 (reflective boundary and the cosine transform)."
    )
    operators = ("Identity", "Blur", "Downsampling", "Inpainting")
    complex_images = False

    @classmethod
    def applies(cls, y, A) -> bool:
        """Whether Richardson–Lucy can give a first estimate for ``y = A(x)``: real data and image, an operator it
        supports, data of the operator's shape (the check PnP and diffusion make before starting from it)."""
        return (not y.is_complex() and not A.in_complex and A.name in cls.operators
                and tuple(y.shape) == tuple(A.out_shape))

    params = (
        ITERATIONS(200),
        Param("acceleration", bool, True, doc="Biggs–Andrews acceleration"),
        Param("stop", str, "discrepancy", choices=("discrepancy", "none"), doc="stop when the data are fitted to the noise"),
        Param("tau", float, 1.0, 0.1, 10.0, doc="discrepancy target (misfit per pixel)"),
        Param("offset", float, None, 0.0, None,
              doc="background added to data and model (empty: the noise model's shift σ²/g; without one, what lifts "
                  "the data's minimum to zero)"),
        Param("relaxation", float, 1.0, 1.0, 2.0,
              doc="exponent ω of the first steps x ← x · (Aᵀ(y/Ax)/Aᵀ1)^ω (over-relaxed RL; 1: plain RL). 2 reaches the "
                  "best PSNR in fewer iterations at low counts but stops 0.6–1.3 dB lower on smooth images "
                  "(benchmarks/RESULTS.md §1)"),
        Param("relaxed_iterations", int, 3, 0, 20, doc="how many first iterations take the relaxed step"),
        Param("extrapolation", tuple, None,
              doc="Biggs–Andrews weights α₁, α₂, … (empty: computed each iteration from the whole image; a tiled run "
                  "fixes them on its pilot); a weight beyond the iterations extrapolates the result"),
        Param("object_domain", str, "auto", choices=("auto", "padded", "boundary"),
              doc="blur with reflect/zero boundary: the object on the field of view with the operator's boundary "
                  "(boundary; fast by the cosine transform for reflect and a symmetric PSF) or on the padded FFT grid "
                  "(padded); auto: the cosine transform for a 3D reflect blur with a symmetric PSF, else the padded "
                  "grid (in 2D the padded grid's multithreaded FFTs are faster on 2 cores: benchmarks/RESULTS.md §1)"),
    )
    #: the result at a pixel depends on data within the PSF's reach times the iterations (benchmarks/bench_tiling.py)
    tile_profile = TileProfile(3.0, 0, 16)

    @classmethod
    def tile_halo_factor(cls, params: dict[str, Any]) -> float:
        """3, or ``RELAXED_HALO_FACTOR`` with over-relaxed first steps, which amplify a tile border's error (with 3
        tiled and untiled results differed by 2–6e-3 of the data's range; tests/test_tiling.py)."""
        relaxed = float(params.get("relaxation", 1.0)) != 1.0 and int(params.get("relaxed_iterations", 3)) > 0
        return RELAXED_HALO_FACTOR if relaxed else cls.tile_profile.halo_factor

    @staticmethod
    def offset_for(y_min: float, noise: NoiseModel) -> float:
        """Background added to data and model (shifted Poisson).

        Poisson–Gaussian noise: the noise model's own shift ``σ²/g`` (Snyder, Hammoud & White, JOSA A 10 (1993)
        1014), data below ``−σ²/g`` counting as zero — so RL maximizes the noise model's likelihood exactly (its
        deviance clips the shifted data at zero too). Otherwise (pure Poisson, Gaussian): what makes the data (least
        value ``y_min``) non-negative. (Until 2026-12-07 the Poisson–Gaussian offset was also raised to ``−y_min``: one
        read-noise outlier then set a background 3–5× the noise model's at ~100 photons, which slowed RL's multiplicative
        steps by about one iteration and lowered its best PSNR; benchmarks/RESULTS.md §1.)"""
        c = noise.sigma_scalar**2 / noise.gain if noise.gain > 0 else 0.0
        if c > 0:
            return c
        return -y_min * (1 + 1e-6) if y_min < 0 else 0.0  # relative: no floor in the data's units

    @classmethod
    def resolve_globals(cls, pilot, y, noise: NoiseModel, params: dict[str, Any], frames: int = 1) -> dict[str, Any]:
        """The offset from the global minimum; the stopping iteration and the extrapolation weights (scalars
        from the whole image each iteration) from the pilot, which tiles then replay. Several frames cannot share
        one frame's weights: they run without acceleration (the pilot then finds the later stopping iteration)."""
        params = dict(params)
        if params["offset"] is None:
            params["offset"] = cls.offset_for(float(y.min()), noise)
        if frames > 1 and params["extrapolation"] is None:
            params["acceleration"] = False
        accelerated = params["acceleration"] and params["extrapolation"] is None
        if params["stop"] == "discrepancy" or accelerated:
            info = pilot(params).info
            k = int(info["iterations"])
            # a discrepancy stop at iteration k returns v_k, the point extrapolated after iteration k − 1
            n = max(k - 1, 1) if str(info.get("stopped", "")).startswith("discrepancy") else k
            params.update(iterations=n, stop="none")
            if accelerated:  # the weights of n iterations and the result's (the weight after the last iteration)
                params["extrapolation"] = (tuple(float(a) for a in info["history"]["alpha"][:n])
                                           + (float(info["result_weight"]),))
        return params

    def run(self, y, A, noise, ctx: Context, iterations: int, acceleration: bool, stop: str, tau: float,
            offset: float | None, extrapolation: tuple[float, ...] | None,
            object_domain: str = "auto", relaxation: float = 1.0, relaxed_iterations: int = 3) -> Estimate:
        relax = (float(relaxation), int(relaxed_iterations))  # bounds [1, 2] checked by the Param
        with torch.no_grad():
            c = offset
            if c is None:  # the noise model's shift σ²/g; the data's minimum (a pass) only where it has none
                c = self.offset_for(0.0, noise) or self.offset_for(float(y.min()), noise)
            yc = torch.add(y, c).clamp_(min=0)
            tiny = 1e-12 * data_scale(yc)  # floors relative to the data: the result does not depend on their units
            shared_offset = noise.gain > 0 and c == noise._shift()
            fits = isinstance(A, Blur) and not y.is_complex() and y.shape == A.out_shape
            grid = None
            cosine = fits and (object_domain == "boundary" or (object_domain == "auto" and len(A._dims) >= 3))
            if cosine and _ReflectDCT.applies(A):
                grid = _ReflectDCT(A, yc)  # the operator's own reflect model, diagonal in the cosine transform
            elif fits and (object_domain in ("auto", "padded") or A.boundary == "circular"):
                grid = _BlurGrid(A, yc)
            if grid is not None:
                x, k, reason, alpha = grid.iterate(yc, y, c, noise, shared_offset, ctx, iterations, acceleration,
                                                   stop, tau, extrapolation, tiny=tiny, relax=relax)
                return Estimate(x, info={"iterations": k, "stopped": reason, "offset": c, "result_weight": alpha,
                                         "object_domain": grid.note})
            inv_norm = A.apply_adjoint(torch.ones_like(y)).clamp_(min=1e-12).reciprocal_()
            x = torch.full(A.in_shape, float(yc.mean()), device=y.device).clamp(min=1e6 * tiny)
            point = x
            g_prev = g_prev2 = None
            alpha, reason, k = 0.0, "iterations", 0
            for k in range(1, iterations + 1):
                model = torch.add(A.apply(point), c).clamp_(min=tiny)
                ratio = torch.div(yc, model)
                # the deviance from the ratio is the noise model's own when the offsets agree
                misfit = noise.deviance(yc, model, ratio) if shared_offset else noise.misfit(y, model - c)
                ctx.log(misfit=misfit, alpha=alpha)
                if stop == "discrepancy" and misfit <= tau and k > 1:
                    reason = f"discrepancy {misfit:.3g} ≤ {tau:g}"
                    break  # the result: the point whose data fit reached the noise level
                x_new = _relaxed(A.apply_adjoint(ratio).mul_(inv_norm), k, relax).mul_(point)
                if acceleration and extrapolation is None:
                    g_prev2, g_prev = g_prev, x_new - point
                x_prev, x = x, x_new
                # Biggs–Andrews extrapolation of the next iteration, v = x + α (x − x_prev): the result if none follows
                measured = (_flat_dot(g_prev, g_prev2) / max(_flat_dot(g_prev2, g_prev2), 1e-30)
                            if acceleration and g_prev2 is not None else None)
                alpha = _extrapolation_weight(k + 1, extrapolation, acceleration, relax, measured)
                point = torch.lerp(x_prev, x, 1.0 + alpha).clamp_(min=tiny) if alpha > 0 else x
                ctx.keep(point, iteration=k)
                ctx.step(k, iterations, point)
        return Estimate(point, info={"iterations": k, "stopped": reason, "offset": c, "result_weight": alpha,
                                 "object_domain": "the operator's domain"})


def _relaxed(correction: torch.Tensor, k: int, relax: tuple[float, int]) -> torch.Tensor:
    """The RL correction ``r = Aᵀ(y/Ax)/Aᵀ1`` raised in place to the relaxation exponent ``ω`` in the first iterations.

    Over-relaxed multiplicative step ``x ← x · r^ω``, ``1 ≤ ω ≤ 2`` (Lanteri, Roche, Cuevas & Aime, Signal Process. 81
    (2001) 945): in the first iterations, far from the fit, it takes the long steps plain RL needs several iterations
    for. ``r`` is clamped at zero first (the FFT convolution's rounding can leave −1e-8 where the data are zero), so the
    power is defined. Chosen on validation images (benchmarks/RESULTS.md §1): ω = 2 for 3 iterations."""
    omega, count = relax
    if k > count or omega == 1.0:
        return correction
    if omega == 2.0:
        return correction.clamp_(min=0).square_()
    return correction.clamp_(min=0).pow_(omega)


#: RL's tile halo factor with over-relaxed first steps (3 without)
RELAXED_HALO_FACTOR = 4.5

#: Biggs–Andrews weight of the first plain step after the over-relaxed ones (chosen on validation images, §1)
WEIGHT_AFTER_RELAXATION = 0.5


def _weight_after_relaxation(k: int, relax: tuple[float, int]) -> float | None:
    """The extrapolation weight in iterations ``1 … n + 1`` of an over-relaxed start (``n = relax[1]`` steps with
    ``ω = relax[0] ≠ 1``): none during the relaxed steps, whose successive steps alternate in sign (an ω = 2 step
    overshoots, the next corrects it) so the measured weight ⟨g_k, g_{k−1}⟩/‖g_{k−1}‖² is clipped to zero; then a fixed
    ``WEIGHT_AFTER_RELAXATION`` along ``x_n − x_{n−1}`` on the first plain step. ``None`` outside such a start (plain
    RL, or iteration > n + 1): the measured weights apply."""
    omega, count = relax
    if omega == 1.0 or count <= 0 or k > count + 1:
        return None
    return WEIGHT_AFTER_RELAXATION if k == count + 1 else 0.0


def _extrapolation_weight(k: int, extrapolation: tuple[float, ...] | None, acceleration: bool,
                          relax: tuple[float, int], measured: float | None) -> float:
    """The Biggs–Andrews weight α of iteration ``k`` (``v_k = x_{k−1} + α (x_{k−1} − x_{k−2})``; Biggs & Andrews,
    Appl. Opt. 36 (1997) 1766): the fixed ``extrapolation[k − 1]`` of a tiled run's pilot (0 past them), else the
    over-relaxed start's (:func:`_weight_after_relaxation`), else the ``measured`` ⟨g_{k−1}, g_{k−2}⟩/‖g_{k−2}‖²
    clipped to [0, 0.95] (0 without acceleration or before two steps)."""
    if extrapolation is not None:
        return extrapolation[k - 1] if k <= len(extrapolation) else 0.0
    if not acceleration:
        return 0.0
    relaxed = _weight_after_relaxation(k, relax)
    if relaxed is not None:
        return relaxed
    return 0.0 if measured is None else min(max(measured, 0.0), 0.95)


def _flat_dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a.reshape(-1), b.reshape(-1)))


#: per-operator set-up of RL (the padded grid's normalization, OTFs and support per device and dtype, the cosine
#: transform's eigenvalues), computed once per operator: a Blur does not change after construction
_SETUP: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cached(A: Blur, key, make):
    entry = _SETUP.setdefault(A, {})
    if key not in entry:
        entry[key] = make(A)
    return entry[key]


def _window_normalization(A: Blur, grid: tuple[int, ...] | None = None) -> np.ndarray:
    """``Aᴴ 1`` on the padded grid for the model ``A x = C F⁻¹ Ĥ F x`` (crop ``C`` to the field of view), exactly.

    ``(Aᴴ 1)(i) = Σ_u h(u) Π_d 1[(i_d + u_d − k_d) mod G_d ∈ window_d]`` with the PSF ``h`` centred at ``k = K // 2``:
    the window is a box, so the sum is a contraction of the PSF with one 0/1 matrix per axis (``G_d × K_d``), done by
    BLAS in float64 — a few times cheaper than the FFT convolution of the window's indicator (3D 96×288², PSF 31³:
    0.05 s against 0.18 s) and free of its rounding.
    """
    psf = A.psf_array.astype(np.float64)
    d = psf.ndim
    masks = []
    for size, k, before, n in zip(A.grid if grid is None else grid, psf.shape, A.before, A.in_shape):
        offset = (np.arange(size)[:, None] + np.arange(k)[None, :] - k // 2) % size - before
        masks.append(((offset >= 0) & (offset < n)).astype(np.float64))
    grid_axes, psf_axes = "abcdefgh"[:d], "ABCDEFGH"[:d]
    subscripts = ",".join(g + p for g, p in zip(grid_axes, psf_axes)) + f",{psf_axes}->{grid_axes}"
    return np.einsum(subscripts, *masks, psf, optimize=True)


def _even_smooth7(n: int) -> int:
    """The least even length ``≥ n`` whose prime factors are 2, 3, 5 and 7 only."""
    m = n + n % 2
    while True:
        r = m
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 2


def _rl_grid(A: Blur) -> tuple[int, ...]:
    """RL's padded grid: per axis the shorter of the operator's grid (2·3·5-smooth, scipy's ``next_fast_len``) and the
    least even 2·3·5·7-smooth length ``≥ n + k − 1``. Any grid ``≥ n + k − 1`` gives the same model (the object's
    support reaches ``k // 2`` beyond the field of view; nothing wraps into the window), and MKL's real FFTs of
    560² took 0.45–0.9× the time of the operator's 576² (512² / 31², 1–2 threads, loaded machine; benchmarks/RESULTS.md §1)."""
    if A.boundary == "circular":
        return tuple(A.grid)
    return tuple(min(g, _even_smooth7(n + k - 1)) for g, n, k in zip(A.grid, A.in_shape, A.psf_array.shape))


def _grid_otf(A: Blur, grid: tuple[int, ...]) -> torch.Tensor:
    """The PSF's transfer function on ``grid`` (rfft layout, the PSF centred on the origin), as the operator's own."""
    if tuple(grid) == tuple(A.grid):
        return A.otf
    return transfer_function(A.psf_array, grid)


def _grid_tensors(A: Blur, grid: tuple[int, ...], device: torch.device, dtype: torch.dtype):
    """RL's padded grid's OTF, its conjugate, ``1/Aᴴ1`` (zero off the support) and the support's indicator (both
    ``None`` for a circular blur, where ``Aᴴ1 = 1``)."""
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    otf = _grid_otf(A, grid).to(device=device, dtype=cdtype)
    otf_conj = otf.conj().resolve_conj()
    if A.boundary == "circular":
        return otf, otf_conj, None, None
    norm = torch.from_numpy(_cached(A, ("window", grid), lambda op: _window_normalization(op, grid)))
    norm = norm.to(device=device, dtype=dtype)
    support = norm > 1e-6 * float(norm.max())
    inv_norm = norm.clamp_(min=1e-12).reciprocal_().mul_(support)
    return otf, otf_conj, inv_norm, support.to(dtype)


class _BlurGrid:
    """Richardson–Lucy for a :class:`Blur` with the object estimated on the operator's padded FFT grid.

    Model (Bertero & Boccacci 2005): the object ``x`` lives on the extended grid, the data on the measured
    window, ``A x = C F⁻¹ Ĥ F x`` with the crop ``C``; the RL step ``x ← x · Aᴴ(y/Ax) / Aᴴ1`` then costs exactly
    two real FFT convolutions on one grid and a few in-place passes over preallocated buffers, with no mirror
    gathers. Pixels whose normalization ``Aᴴ1`` is below 1e-6 of its maximum (the grid's rounding margin,
    beyond the PSF's reach) see no data and stay zero. The data are modelled without a boundary assumption:
    the mirrored (reflect) or dark (zero) surroundings are special cases of the estimated object outside the
    field of view. The circular boundary keeps its periodic model (the grid is the image). The result is the
    field of view.

    Reference: Bertero & Boccacci, A&A 437 (2005) 369.
    """

    def __init__(self, A: Blur, yc: torch.Tensor):
        dtype = yc.dtype if yc.dtype in (torch.float32, torch.float64) else torch.float32
        device = yc.device
        self.grid, self.dims, self.dtype = _rl_grid(A), A._dims, dtype
        self.size = math.prod(self.grid)
        self.circular = A.boundary == "circular"
        self.window = (Ellipsis,) + tuple(slice(b, b + n) for b, n in zip(A.before, A.in_shape))
        self.ratio_grid = torch.zeros(self.grid, dtype=dtype, device=device)  # y / Ax on the window, 0 outside
        # read-only per-operator tensors, cached per device and dtype (a 2D set-up cost ~2 ms, a fifth of an iteration)
        self.otf, self.otf_conj, self.inv_norm, self.support = _cached(
            A, ("grid", self.grid, str(device), dtype), lambda op: _grid_tensors(op, self.grid, device, dtype))
        if self.circular:
            self.note = "the image (periodic boundary)"
        else:
            self.note = (f"the padded grid {tuple(self.grid)}: the object beyond the field of view is estimated "
                         "too (Bertero & Boccacci 2005); the result is the field of view")

    def _conv(self, x: torch.Tensor, otf: torch.Tensor, constant: float = 0.0) -> torch.Tensor:
        """``F⁻¹ (Ĥ F x) + constant``: the constant enters as ``constant · N`` on the zero frequency, for free."""
        # fresh outputs: ``out=`` on the FFTs costs an extra copy on CPU
        spectrum = torch.fft.rfftn(x, dim=self.dims).mul_(otf)
        if constant:  # the zero frequency is the first element (one add, no indexing copies)
            spectrum.view(-1)[:1].add_(constant * self.size)
        return torch.fft.irfftn(spectrum, s=self.grid, dim=self.dims)

    def _total(self, model: torch.Tensor) -> float:
        """``Σ (A x + c)`` over the field of view for the model just computed by ``_conv``."""
        return float(model.sum())

    def iterate(self, yc, y, c, noise, shared_offset, ctx, iterations, acceleration, stop, tau, extrapolation=None,
                tiny: float | None = None, relax: tuple[float, int] = (1.0, 0)):
        """The RL loop (Biggs–Andrews accelerated); returns (field of view of the result, iterations, reason, the
        result's extrapolation weight).

        The result is the extrapolated point ``v = x_n + α (x_n − x_{n−1})`` after the last iteration ``n`` (one ``lerp``,
        with the weight the next iteration would use: the accelerated method's estimate, worth about one more
        iteration before the PSNR peak), or, on a discrepancy stop at iteration ``k``, ``v_k`` — the point whose data
        fit reached the noise level (RL evaluates the fit only at these points; until 2026-12-08 it returned
        ``x_{k−1}``, 0.07–0.49 dB lower on 28 of 29 images, benchmarks/RESULTS.md §1). Without extrapolation ``v = x_n``.

        The first iteration's point is flat, so its model is known without the forward convolution. Besides the two
        FFT convolutions an iteration makes ~10 elementwise passes: the extrapolation (lerp, floor),
        on the field of view the floor of the model, the ratio, the deviance (a ``log`` of a contiguous array, a dot
        product, a sum), then the update (two products), the step ``g = x_new − point`` and both Biggs–Andrews dot
        products at once (one matrix–vector product over the last two steps, while ``g`` is fresh in cache).
        Stage by stage: ``benchmarks/bench_rl_stages.py``, benchmarks/RESULTS.md §1.
        """
        window = self.window
        if tiny is None:  # floors relative to the data: the result does not depend on their units
            tiny = 1e-12 * data_scale(yc)
        # data floored at ``tiny``: y/Ax > 0, so the deviance's log needs no clamp (a change of 1e-12 of the scale);
        # in place: ``run`` hands over its own shifted copy of the data
        yc = yc.clamp_(min=tiny)
        start = max(float(yc.mean()), 1e6 * tiny)
        x = (torch.full(self.grid, start, dtype=self.dtype, device=yc.device) if self.support is None
             else self.support * start)
        x_prev = x
        measure = acceleration and extrapolation is None  # the weights come from the iterates' differences
        # the last two RL steps g = x_new − point, as the rows of one buffer
        steps = torch.empty((2, self.size), dtype=self.dtype, device=yc.device) if measure else None
        step_norm = None  # ⟨g_{k−1}, g_{k−1}⟩
        next_alpha = None  # ⟨g_k, g_{k−1}⟩ / ⟨g_{k−1}, g_{k−1}⟩
        ratio = self.ratio_grid[window]
        # the ratio for the deviance's log: contiguous (torch's log of a strided view, the padded grid's window, is
        # not vectorized: ~3× slower at 512²), copied into the grid's window, then its log taken in place
        ratio_log = ratio if ratio.is_contiguous() else torch.empty_like(yc)
        n = yc.numel()
        # the noise model's deviance needs its own shift s: data y + s against the model A x + c − δ, δ = c − s
        poisson = noise.gain > 0
        shared_log = poisson and shared_offset  # the deviance's log is that of the RL ratio
        # a separate buffer for the log (and the first iteration's flat model) unless the log can overwrite the
        # contiguous copy of the ratio (one buffer of the data's size less: fewer first-touch page faults)
        log_buf = None if shared_log and ratio_log is not ratio else torch.empty_like(yc)
        if poisson and not shared_offset:
            delta = c - noise._shift()
            counts = (y + noise._shift()).clamp(min=0)
            # log(b / a) = log((A x + c − δ) · (1/a)) by one fused multiply–add: b/a ≈ 1, no cancellation; where
            # a = 0 the factor is 1 and the term 0 · log b vanishes
            inv_counts = torch.where(counts > 0, counts, 1.0).reciprocal_()
            shift_term = inv_counts * (-(c - noise._shift()))
            # the model A x + c is floored at tiny + δ⁺ (A x ≥ 0 up to rounding): the shifted model stays ≥ tiny
            floor = tiny + max(delta, 0.0)
        else:
            delta, counts, inv_counts, shift_term, floor = 0.0, yc, None, None, tiny
        counts_sum = float(counts.sum())
        counts_flat = counts.reshape(-1)
        log_flat = (ratio_log if log_buf is None else log_buf).reshape(-1)
        # the first iteration's point is flat: A x is flat on the field of view (its value times the PSF's sum, up to
        # the support's 1e-6 tail), so that iteration needs no forward convolution
        flat_model = max(start * float(self.otf.reshape(-1)[0].real) + c, floor)
        reason, k, alpha, point = "iterations", 0, 0.0, x
        for k in range(1, iterations + 1):
            # ``point``: the Biggs–Andrews point v_k of this iteration (x at the flat start), extrapolated at the end
            # of the previous one
            if k == 1 and point is x:  # a flat model: the scalar itself where only the ratio and its log need it
                model = flat_model if log_buf is None else log_buf.fill_(flat_model)  # (log_buf: written after)
                model_total = n * flat_model
            else:
                model = self._conv(point, self.otf, c)[window].clamp_(min=floor)  # A x + c, a view of the grid
                model_total = None
            torch.div(yc, model, out=ratio_log if shared_log else ratio)
            if poisson:
                # mean Poisson deviance (2/g) Σ[a log(a/b) − a + b] / n of the shifted data a and model b by a
                # vectorized log, a dot product and a sum (xlogy is ~3× slower)
                fitted_sum = (self._total(model) if model_total is None else model_total) - n * delta  # Σ b
                if shared_log:  # the RL ratio is a / b
                    if ratio_log is not ratio:
                        ratio.copy_(ratio_log)
                    torch.log(ratio_log, out=log_flat.view(ratio_log.shape))
                    ylogr = float(torch.dot(counts_flat, log_flat))
                else:  # Σ a log(a / b) = −Σ a log(b / a) with b / a = (A x + c) / a − δ / a
                    torch.addcmul(shift_term, model, inv_counts, out=log_buf).log_()
                    ylogr = -float(torch.dot(counts_flat, log_flat))
                misfit = 2 * (ylogr - counts_sum + fitted_sum) / (noise.gain * n)
            else:
                misfit = noise.misfit(y, model - c)
            ctx.log(misfit=misfit, alpha=alpha)
            if stop == "discrepancy" and misfit <= tau and k > 1:
                reason = f"discrepancy {misfit:.3g} ≤ {tau:g}"
                break  # the result: the point whose data fit reached the noise level (no RL step from it)
            # the forward model is not read again: its buffer is released before the adjoint convolution allocates
            # (fewer grid-sized buffers alive at once: fewer first-touch page faults and cache misses per call)
            model = None
            x_new = self._conv(self.ratio_grid, self.otf_conj)
            if self.inv_norm is not None:
                x_new.mul_(self.inv_norm)
            x_new = _relaxed(x_new, k, relax).mul_(point)
            if measure:
                row = k % 2  # g_k replaces g_{k−2}
                g = steps[row]
                torch.sub(x_new, point, out=g.view(x_new.shape))  # (point may be a strided view)
                products = torch.mv(steps, g).tolist()  # ⟨g_k, g_k⟩ and ⟨g_{k−1}, g_k⟩
                if step_norm is not None:
                    next_alpha = products[1 - row] / max(step_norm, 1e-30)
                step_norm = products[row]
            x_prev, x = x, x_new
            # the next iteration's point v = x + α (x − x_prev), extrapolated now: the result if none follows
            alpha = _extrapolation_weight(k + 1, extrapolation, acceleration, relax, next_alpha)
            if alpha > 0:  # in place over x_{k−1} (or the point, when that was x_{k−1}), which is not read again
                point = x_prev.lerp_(x, 1.0 + alpha).clamp_(min=tiny)
            else:
                point = x
            field = point[window]
            ctx.keep(field, iteration=k)
            ctx.step(k, iterations, field)
        return point[window].contiguous(), k, reason, alpha


def _symmetric_odd(psf: np.ndarray) -> bool:
    """Whether a PSF has an odd size on every axis and is even about its centre on every axis separately."""
    return all(k % 2 for k in psf.shape) and all(np.array_equal(psf, np.flip(psf, ax)) for ax in range(psf.ndim))


def _cosine_eigenvalues(A: Blur, periods: tuple[int, ...] | None = None) -> np.ndarray:
    """``λ(k) = Σ_u h(u) Π_d cos(π k_d u_d / N_d)``: the eigenvalues of the reflect blur of a symmetric PSF ``h``
    (offsets ``u`` from its centre) in the DCT-II basis of the image ``N`` (Ng, Chan & Tang 1999), by one contraction
    with a cosine matrix per axis (BLAS, float64). ``periods``: the frequencies ``k_d`` to evaluate per axis (default
    ``0 … N_d − 1``; the rfft layout of the mirrored image ``2N`` for the FFT route)."""
    psf = A.psf_array.astype(np.float64)
    d = psf.ndim
    counts = periods if periods is not None else A.in_shape
    mats = [np.cos(np.pi * np.arange(m)[:, None] * (np.arange(k) - k // 2)[None, :] / n)
            for m, k, n in zip(counts, psf.shape, A.in_shape)]
    grid_axes, psf_axes = "abcdefgh"[:d], "ABCDEFGH"[:d]
    subscripts = ",".join(g + p for g, p in zip(grid_axes, psf_axes)) + f",{psf_axes}->{grid_axes}"
    return np.einsum(subscripts, *mats, psf, optimize=True)


def _host_transforms(device: torch.device) -> bool:
    """Whether RL's cosine transforms run in scipy (CPU tensors, shared memory) rather than as mirrored FFTs."""
    return device.type == "cpu"


class _ReflectDCT(_BlurGrid):
    """Richardson–Lucy for a reflect :class:`Blur` whose PSF is symmetric about its centre: the operator's own model.

    With the half-sample mirrored surroundings and ``h(u) = h(−u)`` on every axis, the blur is diagonal in the
    DCT-II basis of the image: ``A x = C⁻¹ Λ C x`` with ``λ`` from :func:`_cosine_eigenvalues` (Ng, Chan & Tang,
    SIAM J. Sci. Comput. 21 (1999) 851). So ``A`` is symmetric, ``Aᵀ1 = A1 = 1`` (no normalization pass), each
    convolution is a forward and an inverse cosine transform of the image's size (no padded grid, no gathers), and
    ``Σ A x = λ₀ Σ x`` is read off the transform's first coefficient. On the CPU the transforms are scipy's (pocketfft);
    on other devices the same product is an FFT of the image mirrored to ``2N`` per axis. Same iterates as the
    gather-based reflect loop up to float32 rounding.
    """

    @staticmethod
    def applies(A: Blur) -> bool:
        return A.boundary == "reflect" and _symmetric_odd(A.psf_array)

    def __init__(self, A: Blur, yc: torch.Tensor):
        dtype = yc.dtype if yc.dtype in (torch.float32, torch.float64) else torch.float32
        device = yc.device
        self.grid, self.dims, self.dtype = tuple(A.in_shape), A._dims, dtype
        self.size = math.prod(self.grid)
        self.circular = False
        self.window = (Ellipsis,)
        self.inv_norm = self.support = None  # Aᵀ1 = A1 = 1: the PSF sums to 1
        self.ratio_grid = torch.zeros(self.grid, dtype=dtype, device=device)
        self.host = _host_transforms(device)
        d = len(self.grid)
        self.halves = 2.0 ** d  # Σ over the image of the inverse transform of Z is Z₀ / 2^d (both routes)
        self.dc = float(math.prod(2 * n for n in self.grid))  # a constant c is c · Π 2N_d on the first coefficient
        if self.host:
            import scipy.fft  # local: scipy loads with the first RL run, not with the package

            self._fft = scipy.fft
            self.workers = max(torch.get_num_threads(), 1)
            lam = _cached(A, "cosine", _cosine_eigenvalues)
            self.note = "the image with the operator's reflect boundary (cosine transform)"
        else:
            self.mirror = tuple(2 * n for n in self.grid)
            periods = tuple(2 * n for n in self.grid[:-1]) + (self.grid[-1] + 1,)
            lam = _cached(A, "cosine_fft", lambda op: _cosine_eigenvalues(op, periods))
            self.note = "the image with the operator's reflect boundary (mirrored FFT)"
        self.otf = self.otf_conj = torch.from_numpy(lam).to(device=device, dtype=dtype)
        self.last_total = 0.0

    def _conv(self, x: torch.Tensor, otf: torch.Tensor, constant: float = 0.0) -> torch.Tensor:
        """``C⁻¹ (λ · C x) + constant`` (the constant on the first coefficient); records ``Σ`` of the result."""
        if self.host:
            fft = self._fft
            spectrum = torch.from_numpy(fft.dctn(x.numpy(), type=2, workers=self.workers)).mul_(otf)
            if constant:
                spectrum.view(-1)[:1].add_(constant * self.dc)
            self.last_total = float(spectrum.view(-1)[0]) / self.halves
            return torch.from_numpy(fft.idctn(spectrum.numpy(), type=2, overwrite_x=True, workers=self.workers))
        mirrored = x
        for dim in self.dims:
            mirrored = torch.cat([mirrored, mirrored.flip(dim)], dim=dim)
        spectrum = torch.fft.rfftn(mirrored, dim=self.dims).mul_(otf)
        if constant:
            spectrum.view(-1)[:1].add_(constant * self.dc)
        self.last_total = float(spectrum.view(-1)[0].real) / self.halves
        out = torch.fft.irfftn(spectrum, s=self.mirror, dim=self.dims)
        return out[(Ellipsis,) + tuple(slice(0, n) for n in self.grid)].contiguous()

    def _total(self, model: torch.Tensor) -> float:
        # before the model's floor, which moves it by at most n · floor (the floor is 1e-12 of the data's scale)
        return self.last_total


class TikhonovCG(Method):
    name = "tikhonov_cg"
    label = "Tikhonov (CG)"
    description = (
        "argmin ‖Ax − y‖²/2σ² + λ/2 ‖Lx‖², L = I or ∇, solved by conjugate gradients on the normal equations; "
        "λ from the discrepancy principle unless given."
    )
    reference = "Tikhonov, Soviet Math. Dokl. 4 (1963) 1035; Hestenes & Stiefel, J. Res. NBS 49 (1952) 409."
    params = (
        ITERATIONS(100),
        Param("regularizer", str, "gradient", choices=("gradient", "identity"), doc="L = ∇ or I"),
        Param("lam", float, None, 0.0, None, doc="regularization weight (empty: discrepancy principle)", log_scale=True),
        Param("tau", float, 1.0, 0.1, 10.0, doc="discrepancy target (misfit per pixel) for the automatic λ"),
    )

    def run(self, y, A, noise, ctx: Context, iterations: int, regularizer: str, lam: float | None, tau: float) -> Estimate:
        unit = data_scale(y)  # solve in units where the data are O(1): float32 sums neither overflow nor underflow
        y, noise = y / unit, noise.scaled(1.0 / unit)
        s2 = effective_sigma2(noise, y)
        nd = A.ndim
        L = (lambda x: laplacian(x, nd)) if regularizer == "gradient" else (lambda x: x)
        b = A.apply_adjoint(y) / s2
        scale = A.norm() ** 2 / s2  # λ is relative to ‖AᴴA‖/σ²
        state: dict[str, Any] = {"x": None}

        def solve(lmb: float, its: int) -> torch.Tensor:
            x = conjugate_gradient(lambda v: A.normal(v) / s2 + lmb * scale * L(v), b, state["x"], its, tol=1e-5)
            state["x"] = x
            return x

        with torch.no_grad():
            if lam is None:
                lam = discrepancy_search(lambda l: noise.misfit(y, A.apply(solve(l, 30))), target=tau,
                                         low=1e-7, high=10.0, steps=12)
                how = "discrepancy principle"
            else:
                how = "given"
            count = {"k": 0}

            def report(k, x):
                count["k"] = k + 1
                ctx.step(k + 1, iterations, x * unit)

            x = conjugate_gradient(lambda v: A.normal(v) / s2 + lam * scale * L(v), b, state["x"], iterations,
                                   tol=1e-6, callback=report)
        return Estimate(x * unit, info={"lam": lam * scale / unit**2, "lam_relative": lam, "lam_choice": how,
                                        "iterations": count["k"]})
