"""Hand-crafted regularizers ``R(x)``: the interface the variational solvers and the samplers use.

Every regularizer acts on the last ``ndim`` axes of a tensor (leading axes are a batch) and gives
its value, a proximal operator ``prox(x, t) = argmin_u ½‖u − x‖² + t R(u)`` (optionally restricted to
``lower ≤ u ≤ upper``) and the gradient of its Moreau envelope ``(x − prox(x, t)) / t``, which is
what Moreau–Yosida samplers (MYULA) need. Smooth regularizers add the exact gradient; non-smooth
analysis regularizers ``R(x) = Σ_g ‖(Lx)_g‖`` add the gradient of their Huber smoothing.
Register a new one by subclassing with a ``name``; :func:`get_regularizer` builds it by name.

References
----------
Beck & Teboulle, "Fast gradient-based algorithms for constrained total variation image denoising and
deblurring problems", IEEE TIP 18 (2009) 2419 (the dual projected-gradient prox used here);
Moreau, Bull. SMF 93 (1965) 273; Durmus, Moulines & Pereyra, SIAM J. Imaging Sci. 11 (2018) 473.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from .._registry import Registry, import_submodules
from ..operators.kernels import fista_momentum
from .denoisers import ProxDenoiser

__all__ = [
    "Regularizer",
    "SmoothRegularizer",
    "AnalysisRegularizer",
    "regularizer_names",
    "get_regularizer",
    "clip",
]

REGULARIZERS = Registry("regularizer", discover=import_submodules("napari_invimg.priors"))


def clip(x: torch.Tensor, lower: float | None, upper: float | None) -> torch.Tensor:
    """Projection onto the box ``lower ≤ x ≤ upper`` (``None`` = unbounded); complex tensors are not clipped."""
    if lower is None and upper is None:
        return x
    if x.is_complex():
        raise ValueError("Bounds (positivity) apply to real images only; switch positivity off for complex images.")
    return x.clamp(min=lower, max=upper)


class Regularizer(ABC):
    """``R(x)`` on the last ``ndim`` axes; ``value`` sums over any leading batch axes."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    #: True when ``grad`` is the exact gradient of ``value``.
    smooth: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            REGULARIZERS.add(cls.name, cls)

    def __init__(self, ndim: int = 2):
        if ndim not in (1, 2, 3):
            raise ValueError(f"A regularizer acts on 1, 2 or 3 image axes, got ndim={ndim}.")
        self.ndim = int(ndim)

    @abstractmethod
    def value(self, x: torch.Tensor) -> torch.Tensor:
        """``R(x)`` as a scalar tensor (``inf`` outside a constraint set)."""

    @abstractmethod
    def prox(self, x: torch.Tensor, t: float, lower: float | None = None, upper: float | None = None) -> torch.Tensor:
        """``argmin_u ½‖u − x‖² + t R(u)`` subject to ``lower ≤ u ≤ upper``."""

    def moreau_grad(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """Gradient of the Moreau envelope ``R_t(x) = min_u R(u) + ‖u − x‖²/2t``: ``(x − prox(x, t)) / t``."""
        return (x - self.prox(x, t)) / t

    def moreau_value(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """Moreau envelope ``R(p) + ‖p − x‖²/2t`` with ``p = prox(x, t)``."""
        p = self.prox(x, t)
        return self.value(p) + (p - x).abs().pow(2).sum() / (2 * t)

    def shrink(self, x: torch.Tensor, t: float, lower: float | None = None, upper: float | None = None) -> torch.Tensor:
        """One denoising pass at threshold ``t``: the prox (a one-pass estimator where a subclass has a better one)."""
        return self.prox(x, t, lower, upper)

    def as_denoiser(self, strength: float = 1.0) -> ProxDenoiser:
        """A :class:`~napari_invimg.priors.denoisers.Denoiser` ``D(x, σ) = prox_{strength·σ R}(x)``."""
        return ProxDenoiser(self, strength)


class SmoothRegularizer(Regularizer):
    """A differentiable ``R`` with an ``L``-Lipschitz gradient; prox by accelerated projected gradient."""

    smooth = True

    @abstractmethod
    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """``∇R(x)``."""

    @property
    @abstractmethod
    def lipschitz(self) -> float:
        """Lipschitz constant of ``∇R``."""

    def prox(self, x, t, lower=None, upper=None, iterations: int = 100, tol: float = 1e-5):
        """FISTA on ``½‖u − x‖² + t R(u)`` with the box projection (exact for a quadratic ``R`` in the limit)."""
        step = 1.0 / (1.0 + t * self.lipschitz)
        u = clip(x, lower, upper)
        v, k_prev = u, 1.0
        for _ in range(iterations):
            u_new = clip(v - step * (v - x + t * self.grad(v)), lower, upper)
            k = fista_momentum(k_prev)
            v = u_new + ((k_prev - 1) / k) * (u_new - u)
            change = float(torch.linalg.vector_norm(u_new - u)) / max(float(torch.linalg.vector_norm(u_new)), 1e-30)
            u, k_prev = u_new, k
            if change < tol:
                break
        return u


class AnalysisRegularizer(Regularizer):
    """``R(x) = Σ_g w_g ‖(Lx)_g‖`` for a linear analysis operator ``L`` and groups ``g`` of coefficients.

    A subclass gives ``analysis`` (``L``), ``synthesis`` (``Lᴴ``), ``coefficient_norm`` (the sum of group
    norms) and ``project_dual`` (projection onto the dual-norm ball ``{p : ‖p_g‖_* ≤ w_g}``), plus the
    bound ``lipschitz ≥ ‖L‖²``. Everything else follows:

    * ``prox``: the dual problem ``max_{p ∈ ball} −½‖x − t Lᴴp‖²`` by FISTA (Beck & Teboulle 2009),
      ``u = P_box(x − t Lᴴ p)``; the dual variable is kept between calls (warm start).
    * ``grad``: gradient of the Huber smoothing ``R_ε(x) = Σ_g h_ε((Lx)_g)``, ``Lᴴ P_ball(Lx / ε)``.
    """

    #: stopping tolerance and iteration cap of the dual iterations of ``prox``
    prox_iterations: int = 100
    prox_tol: float = 1e-4

    def __init__(self, ndim: int = 2, smoothing: float = 1e-2):
        super().__init__(ndim)
        if not smoothing > 0:
            raise ValueError("The Huber smoothing ε must be positive.")
        self.smoothing = float(smoothing)
        self._dual: torch.Tensor | None = None
        #: optional positive per-pixel weights ``w_k`` of the groups (spatially adaptive regularization),
        #: honored where :attr:`pixelwise` is True
        self.pixel_weights: torch.Tensor | None = None

    @property
    def pixelwise(self) -> bool:
        """True when the coefficient groups sit on the pixels, so ``pixel_weights`` apply."""
        return False

    @abstractmethod
    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """``L x``."""

    @abstractmethod
    def synthesis(self, p: torch.Tensor) -> torch.Tensor:
        """``Lᴴ p``."""

    @abstractmethod
    def coefficient_norm(self, c: torch.Tensor) -> torch.Tensor:
        """``Σ_g w_g ‖c_g‖`` as a scalar tensor."""

    @abstractmethod
    def project_dual(self, p: torch.Tensor) -> torch.Tensor:
        """Projection onto the dual ball ``{p : ‖p_g‖_* ≤ w_g}``."""

    @property
    @abstractmethod
    def lipschitz(self) -> float:
        """An upper bound of ``‖L‖²``."""

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.coefficient_norm(self.analysis(x))

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """Gradient of the Huber-smoothed ``R_ε`` (ε = ``smoothing``): ``Lᴴ P_ball(Lx / ε)``."""
        return self.synthesis(self.project_dual(self.analysis(x) / self.smoothing))

    def smoothed_value(self, x: torch.Tensor) -> torch.Tensor:
        """``R_ε(x) = <Lx, p> − ε/2 ‖p‖²`` with ``p = P_ball(Lx / ε)`` (the Moreau envelope of the norm)."""
        c = self.analysis(x)
        p = self.project_dual(c / self.smoothing)
        return (torch.real(c.conj() * p) if c.is_complex() else c * p).sum() - 0.5 * self.smoothing * p.abs().pow(2).sum()

    def prox(self, x, t, lower=None, upper=None, iterations: int | None = None, tol: float | None = None):
        if t <= 0:
            return clip(x, lower, upper)
        iterations = self.prox_iterations if iterations is None else iterations
        tol = self.prox_tol if tol is None else tol
        p = self._dual
        if p is None or p.shape[1:] != x.shape or p.dtype != x.dtype or p.device != x.device:
            p = torch.zeros_like(self.analysis(x))
        step = 1.0 / (t * self.lipschitz)
        q, k_prev, u_prev = p, 1.0, None
        for _ in range(iterations):
            u_q = clip(x - t * self.synthesis(q), lower, upper)
            p_new = self.project_dual(q + step * self.analysis(u_q))
            k = fista_momentum(k_prev)
            q = p_new + ((k_prev - 1) / k) * (p_new - p)
            p, k_prev = p_new, k
            if u_prev is not None:
                change = float(torch.linalg.vector_norm(u_q - u_prev)) / max(float(torch.linalg.vector_norm(u_q)), 1e-30)
                if change < tol:
                    break
            u_prev = u_q
        u = clip(x - t * self.synthesis(p), lower, upper)
        self._dual = p
        return u

    def reset(self) -> None:
        """Forget the warm-start dual variable of ``prox``."""
        self._dual = None


def regularizer_names() -> list[str]:
    """Names of the available regularizers."""
    return REGULARIZERS.names()


def get_regularizer(name: str, **kwargs) -> Regularizer:
    """Build a regularizer by name (``"tv"``, ``"wavelet"``, ``"hessian"``, ``"tikhonov"``, ...)."""
    return REGULARIZERS.get(name)(**kwargs)
