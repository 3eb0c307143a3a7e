"""Forward operators ``y = A(x)``: one base class that every operator extends.

Operators act on torch tensors whose trailing dimensions are ``in_shape`` (leading dimensions are a
batch, so a network can push several images through at once). The public ``forward`` / ``adjoint``
accept numpy as well and answer in kind: numpy in -> numpy out, torch in -> torch out.

``spec()`` returns plain values and numpy arrays; :func:`from_spec` rebuilds the operator, so a
reconstruction can be replayed from a saved recipe.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch

from .._device import to_tensor
from .._registry import Registry, domain_names
from ..validation import check_finite, check_shape
from .kernels import conjugate_gradient, power_iteration

__all__ = ["Operator", "LinearOperator", "from_spec", "operator_types", "check_finite"]

OPERATORS = Registry("operator type", lazy=domain_names("operator"))


class Operator(ABC):
    """A (possibly non-linear) forward model ``x -> A(x)``, differentiable in torch.

    Subclasses implement :meth:`_forward` on tensors and :meth:`_params` (the constructor's arguments,
    as plain values or numpy arrays). ``in_shape``/``out_shape`` are the trailing shapes;
    ``in_complex``/``out_complex`` say whether the image or the data are complex. Solvers call the
    tensor-level :meth:`apply` (and :meth:`LinearOperator.apply_adjoint`); :meth:`forward` is the checked
    numpy/torch front end.
    """

    linear: ClassVar[bool] = False
    #: True when the operator commutes with translations (tiling with halos is then exact up to the halo).
    shift_invariant: ClassVar[bool] = False
    in_complex: bool = False
    out_complex: bool = False
    #: why this operator's tensors leave the device (e.g. a CPU-only library), or None when it runs on any
    #: torch device end to end; :func:`napari_invimg.reconstruct` records it in ``info["host_round_trip"]``
    host_round_trip: str | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        OPERATORS.add(cls.__name__, cls)

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
        self.in_shape = check_shape(in_shape, f"image shape of {type(self).__name__}")
        self.out_shape = check_shape(out_shape, f"data shape of {type(self).__name__}")
        self.device = torch.device("cpu")

    # -- to be provided by subclasses -------------------------------------------------------------
    @abstractmethod
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A(x)`` on a tensor whose trailing dimensions are ``in_shape``."""

    @abstractmethod
    def _params(self) -> dict[str, Any]:
        """The constructor's arguments as plain values / numpy arrays."""

    def _tensors(self) -> dict[str, torch.Tensor]:
        """Attributes holding tensors that must follow :meth:`to`."""
        return {k: v for k, v in vars(self).items() if isinstance(v, torch.Tensor)}

    # -- public --------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def ndim(self) -> int:
        return len(self.in_shape)

    def n_measured(self) -> int:
        """How many values of one output ``A x`` are measurements: ``prod(out_shape)``, less those that are zero by
        construction (unsampled Cartesian k-space), which a data misfit per measurement must not count."""
        return math.prod(self.out_shape)

    def to(self, device: torch.device | str) -> Operator:
        """Move the operator's tensors to ``device`` (in place) and return it."""
        device = torch.device(device)
        for k, v in self._tensors().items():
            setattr(self, k, v.to(device))
        self.device = device
        return self

    def _prepare(self, x, shape: tuple[int, ...], complex_: bool, what: str):
        was_numpy = not isinstance(x, torch.Tensor)
        dtype = (np.dtype(x.dtype) if hasattr(x, "dtype") else np.asarray(x).dtype) if was_numpy else None
        if dtype is not None and dtype.kind not in "biufc":
            raise TypeError(f"{self.name} expects numeric {what}, got an array of dtype {dtype}.")
        t = to_tensor(x, device=self.device)
        if tuple(t.shape[t.ndim - len(shape):]) != shape or t.ndim < len(shape):
            raise ValueError(
                f"{self.name} expects {what} whose last dimensions are {shape}, got an array of shape {tuple(t.shape)}."
            )
        if complex_ and not t.is_complex():
            t = t.to(torch.complex128 if t.dtype == torch.float64 else torch.complex64)
        if not complex_ and t.is_complex():
            raise ValueError(f"{self.name} expects real {what}, got complex data; take the magnitude or real part first.")
        return t, was_numpy

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``A(x)`` on a tensor on the operator's device whose trailing dimensions are ``in_shape`` (no checks)."""
        return self._forward(x)

    def halo(self) -> tuple[int, ...]:
        """Overlap a tile needs on each side so that tiled and untiled results agree in its interior
        (zero by default: a pointwise operator)."""
        return (0,) * self.ndim

    def estimate_noise(self, y) -> float | None:
        """The noise standard deviation of ``y`` from where the data hold only noise, or ``None`` (the default)
        when the operator knows no such place (the caller then estimates it from the data)."""
        return None

    def forward(self, x):
        """``A(x)``: numpy in -> numpy out, torch in -> torch out."""
        t, was_numpy = self._prepare(x, self.in_shape, self.in_complex, "images")
        y = self._forward(t)
        return y.detach().cpu().numpy() if was_numpy else y

    __call__ = forward

    def spec(self) -> dict[str, Any]:
        """Plain description ``{"type": ClassName, **params}`` that :func:`from_spec` turns back into the operator."""
        return {"type": self.name, **self._params()}

    @classmethod
    def from_params(cls, **params) -> Operator:
        return cls(**params)

    def __repr__(self) -> str:
        return f"{self.name}(in_shape={self.in_shape}, out_shape={self.out_shape})"


class LinearOperator(Operator):
    """A linear forward model with its adjoint: ``<A x, y> = <x, Aᴴ y>``.

    Subclasses implement :meth:`_forward` and :meth:`_adjoint`. The base provides :meth:`normal`
    (``AᴴA``), :meth:`norm` (largest singular value, by power iteration) and :meth:`dagger`
    (least-squares pseudo-inverse by conjugate gradients).
    """

    linear: ClassVar[bool] = True

    @abstractmethod
    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``Aᴴ y`` on a tensor whose trailing dimensions are ``out_shape``."""

    def apply_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``Aᴴ y`` on a tensor on the operator's device whose trailing dimensions are ``out_shape`` (no checks)."""
        return self._adjoint(y)

    def adjoint(self, y):
        """``Aᴴ y``: numpy in -> numpy out, torch in -> torch out."""
        t, was_numpy = self._prepare(y, self.out_shape, self.out_complex, "data")
        x = self._adjoint(t)
        return x.detach().cpu().numpy() if was_numpy else x

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``AᴴA x`` on tensors (subclasses with a cheaper form override it)."""
        return self._adjoint(self._forward(x))

    def preconditioner(self) -> torch.Tensor | None:
        """Positive weights ``P`` on the measurements (broadcasting against ``y``) that make ``P^{1/2}A`` better
        conditioned than ``A``, for the solvers' data steps (e.g. the density compensation of non-Cartesian
        k-space); ``None`` (the default) for none. They speed solvers up and never change the problem solved."""
        return None

    #: the denoiser (a name of ``priors.denoiser_names()``) plug-and-play uses on this operator's images when the user
    #: names none, e.g. the MRI operators' ``"drunet_mri"`` (fine-tuned on MR magnitudes); ``None``: the general one
    preferred_denoiser: ClassVar[str | None] = None

    def plug_and_play_defaults(self) -> dict[str, Any]:
        """The annealed plug-and-play schemes' settings (PnP-ADMM, PnP-HQS) measured best on this operator's images,
        used where the user leaves them empty: ``start`` (the first estimate of ``start="auto"`` where Richardson–Lucy
        does not apply), ``sigma_start_noise`` (the first denoiser level as a multiple of the noise level, for an
        empty ``sigma_start``), ``sigma_end_noise`` (the last level as a multiple of the noise level; if absent
        0.5 after the Richardson–Lucy start, else 1),
        ``average`` (the number of last iterates averaged, for an empty ``average``) and ``lam`` (for an empty ``lam``).
        Empty (the default): the schemes' own defaults."""
        return {}

    def primal_dual_steps(self, regularizer: Any) -> dict[str, float]:
        """Keyword arguments ``step`` (the primal step τ), ``relaxation`` (ρ), ``data_share`` (and ``max_step``,
        ``growth_slack``, ``growth``) for the primal–dual solver with this ``regularizer`` where they were measured to
        converge faster than the defaults (τ = 0.05, ρ = 1, ½); the stopping tolerance is measured per reference step,
        so they change the path, not the stationarity at the stop. Empty (the default) for the plain iteration."""
        return {}

    def compact(self) -> tuple[LinearOperator, Callable[[torch.Tensor], torch.Tensor]]:
        """An equivalent operator whose output holds only the measured values, and the map that takes data of
        ``out_shape`` to its output (e.g. the sampled points of Cartesian k-space, the rest being zero by
        construction): solvers then do their elementwise data work on measurements only. The default is the
        operator itself and the identity."""
        return self, lambda y: y

    def compressed(self, y: torch.Tensor, sigma: float, energy: float | None = None,
                   min_share: float = 0.0) -> tuple[LinearOperator, torch.Tensor, dict[str, Any]]:
        """A smaller problem for white Gaussian noise of standard deviation ``sigma``: ``(U A, U y, info)`` with ``U`` a
        coisometry (``U Uᴴ = I``) onto the fewest channels of the data that keep ``energy`` of their signal energy
        (``None``: the operator's default; 1: all of it) and at least ``min_share`` of the measured values. The noise
        ``U n`` is white with the same σ, and ``‖y − Ax‖² = ‖U(y − Ax)‖² + ‖(I − UᴴU)(y − Ax)‖²``, whose second term
        holds only noise when the dropped channels carry no signal (then the two problems differ by a constant).
        ``info`` says what was kept (empty where the operator has nothing to compress). The default: the operator
        itself, the data and ``{}`` (the multi-coil MRI operators compress their coils)."""
        return self, y, {}

    def gram_preconditioner(self, scale: float, shift: float) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """A Hermitian positive definite approximation of ``(scale·AᴴA + shift·I)⁻¹`` on images, for
        preconditioned CG in data steps (e.g. a Fourier-domain inverse for a convolution); ``None`` (the
        default) where the operator has no cheap one. Only the number of CG steps depends on it."""
        return None

    def _random_image(self, generator: torch.Generator | None = None) -> torch.Tensor:
        dtype = torch.complex64 if self.in_complex else torch.float32
        return torch.randn(self.in_shape, dtype=dtype, generator=generator).to(self.device)

    def norm(self, iterations: int = 30, seed: int = 0) -> float:
        """Largest singular value ``‖A‖₂`` by power iteration on ``AᴴA`` (cached)."""
        cached = getattr(self, "_norm_cache", None)
        if cached is not None:
            return cached
        s = power_iteration(self.normal, self._random_image(torch.Generator().manual_seed(seed)), iterations)
        value = math.sqrt(max(s, 0.0)) * 1.01  # small safety margin: power iteration approaches from below
        self._norm_cache = value
        return value

    def weighted_norm2(self, weights: torch.Tensor, iterations: int = 20) -> float:
        """``‖P^{1/2}A‖²`` for measurement weights ``P`` by power iteration on ``AᴴPA`` (cached for these weights)."""
        cached = getattr(self, "_weighted_norm2_cache", None)
        if cached is not None and cached[0] is weights:
            return cached[1]
        s = power_iteration(lambda v: self._adjoint(weights * self._forward(v)),
                            self._random_image(torch.Generator().manual_seed(0)), iterations)
        value = 1.02 * s  # power iteration approaches from below
        self._weighted_norm2_cache = (weights, value)
        return value

    def dagger(self, y, iterations: int = 100, tol: float = 1e-6):
        """Least-squares solution ``argmin_x ‖A x − y‖²`` by conjugate gradients on the normal equations."""
        t, was_numpy = self._prepare(y, self.out_shape, self.out_complex, "data")
        with torch.no_grad():
            x = conjugate_gradient(self.normal, self._adjoint(t), iterations=iterations, tol=tol)
        return x.cpu().numpy() if was_numpy else x


def operator_types() -> dict[str, type[Operator]]:
    """All operator classes imported so far, by name (the MRI and black-hole ones once their module is loaded)."""
    return OPERATORS.loaded()


def from_spec(spec: dict[str, Any]) -> Operator:
    """Rebuild an operator from :meth:`Operator.spec`."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError("An operator spec is a dict with a 'type' key, as returned by Operator.spec().")
    params = dict(spec)
    cls = OPERATORS.get(params.pop("type"))
    try:
        return cls.from_params(**params)
    except (TypeError, KeyError) as exc:  # a missing or unknown parameter: name the operator and what it takes
        takes = ", ".join(p for p in inspect.signature(cls.__init__).parameters if p != "self")
        raise ValueError(f"The {cls.__name__} spec {sorted(params)} does not fit {cls.__name__}({takes}): "
                         f"{type(exc).__name__}: {exc}.") from None
