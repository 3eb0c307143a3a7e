"""The one registry of reconstruction methods.

A method is one class: subclass :class:`Method`, set ``name`` and its parameter schema, implement
:meth:`Method.run`. Defining the class registers it; the widgets, the scripting API and the
benchmarks all read this registry, so nothing else needs editing.
"""

from __future__ import annotations

import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from .._registry import Registry, domain_names, import_submodules
from ..errors import Cancelled
from ..operators.base import Operator
from ..operators.noise import NoiseModel
from ..validation import check_seed

__all__ = ["Param", "Method", "Context", "Estimate", "TileProfile", "get", "available", "info", "ITERATIONS",
           "run_first_estimate"]

METHODS = Registry("method", discover=import_submodules("napari_invimg.methods"), lazy=domain_names("method"))


#: the words a boolean parameter reads (any case)
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Param:
    """One parameter of a method: name, type, default (``None`` = chosen automatically), bounds, help.

    ``operators``: the operator kinds (class names) the parameter acts on, ``None`` = every one; a form hides the
    parameter for other forward models (e.g. MRI coil compression on a deconvolution), and the API accepts it there
    but records a value other than the default in ``info["ignored_params"]``, with a warning
    (:meth:`Method.ignored_params`).
    """

    name: str
    type: type
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    doc: str = ""
    log_scale: bool = False
    operators: tuple[str, ...] | None = None

    def applies_to(self, operator_kind: str | Operator | type[Operator]) -> bool:
        """Whether the parameter acts on a forward model: a class name, or an operator or operator class (then a base
        class's name counts too: a subclass of ``CartesianMRI`` is one)."""
        if self.operators is None:
            return True
        if isinstance(operator_kind, str):
            return operator_kind in self.operators
        kind = operator_kind if isinstance(operator_kind, type) else type(operator_kind)
        return any(c.__name__ in self.operators for c in kind.__mro__)

    def coerce(self, value: Any) -> Any:
        if value is None:
            if self.default is None:
                return None
            raise ValueError(f"Parameter {self.name!r} needs a value.")
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(f"Parameter {self.name!r} must be one of {list(self.choices)}, got {value!r}.")
            return value
        try:
            if self.type is bool:
                if isinstance(value, str):
                    word = value.strip().lower()
                    if word not in _TRUE + _FALSE:
                        raise ValueError
                    value = word in _TRUE
                elif not isinstance(value, (bool, np.bool_)) and value not in (0, 1):
                    raise ValueError  # 2, 0.5 or NaN is no yes or no
                v = bool(value)
            elif self.type is int:
                if isinstance(value, float) and not float(value).is_integer():
                    raise ValueError
                v = int(value)
            elif self.type is float:
                v = float(value)
            elif self.type is tuple:  # a sequence of numbers
                v = tuple(float(a) for a in value)
                if not all(np.isfinite(v)):
                    raise ValueError
            else:
                v = self.type(value)
        except (TypeError, ValueError):
            raise ValueError(f"Parameter {self.name!r} must be a {self.type.__name__}, got {value!r}.") from None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if not np.isfinite(v):
                raise ValueError(f"Parameter {self.name!r} must be finite.")
            if self.low is not None and v < self.low:
                raise ValueError(f"Parameter {self.name!r} must be ≥ {self.low}, got {v}.")
            if self.high is not None and v > self.high:
                raise ValueError(f"Parameter {self.name!r} must be ≤ {self.high}, got {v}.")
        return v

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.__name__,
            "default": self.default,
            "bounds": (self.low, self.high),
            "choices": list(self.choices) if self.choices else None,
            "doc": self.doc,
            "log_scale": self.log_scale,
            "operators": list(self.operators) if self.operators else None,
        }


def ITERATIONS(default: int, high: int = 100000) -> Param:
    """The ``iterations`` parameter every iterative method accepts (an upper bound where it stops itself)."""
    return Param("iterations", int, default, 1, high, doc="maximum number of iterations")


@dataclass
class Estimate:
    """What a method returns: tensors on the method's device plus method-specific ``info``."""

    mean: torch.Tensor
    std: torch.Tensor | None = None
    samples: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _accepts_status(fn: Callable[..., Any]) -> bool:
    """Whether a progress callback takes a ``status`` keyword (the plain ``(step, total, preview)`` form does not)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "status" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


class Context:
    """Per-run services for a method: device, seeded randomness, progress/cancel, history, partial results."""

    def __init__(
        self,
        device: torch.device,
        seed: int | None = 0,
        progress: Callable[..., Any] | None = None,
    ):
        self.device = device
        self.seed = check_seed(seed)  # None: a fresh seed (the API records it in info["seed"])
        self._progress = progress
        #: a callback that takes ``status=`` also receives the latest logged values (loss, misfit, ...)
        self._wants_status = progress is not None and _accepts_status(progress)
        self.history: dict[str, list] = {}
        self.partial: Estimate | None = None
        self.evaluations = 0
        self.started = time.perf_counter()
        #: previews are multiplied by this (the data scale a ``unit_range`` method runs in)
        self.output_scale = 1.0
        #: steps reported before the run's own: those its first estimates took (:meth:`child`)
        self._lead = 0

    @property
    def watched(self) -> bool:
        """Whether a front end reads the logged values while the run goes on (a convergence plot): compute costly
        running diagnostics (e.g. a sampler's running R̂) only then."""
        return self._wants_status

    def generator(self, offset: int = 0, device: torch.device | str | None = None) -> torch.Generator:
        """A torch generator seeded from the run's seed (``offset`` for independent streams), on the run's device
        (or ``device``). Methods draw only from these: never from torch's or numpy's global generators."""
        dev = torch.device(device) if device is not None else self.device
        dev = dev if dev.type in ("cpu", "cuda") else torch.device("cpu")
        g = torch.Generator(device=dev)
        g.manual_seed((self.seed * 1000003 + offset) % 2**64)
        return g

    def rng(self, offset: int = 0) -> np.random.Generator:
        """A numpy generator seeded from the run's seed (``offset`` for independent streams)."""
        return np.random.default_rng([self.seed, offset])

    def randn(self, shape, dtype=torch.float32, offset: int = 0) -> torch.Tensor:
        g = self.generator(offset)
        return torch.randn(tuple(shape), generator=g, dtype=dtype, device=g.device).to(self.device)

    def log(self, **values: float) -> None:
        for k, v in values.items():
            self.history.setdefault(k, []).append(float(v))

    def keep(self, mean: torch.Tensor, std: torch.Tensor | None = None, samples: torch.Tensor | None = None,
             **info: Any) -> None:
        """Remember the best result so far: a cancelled run returns it."""
        self.partial = Estimate(mean.detach(), None if std is None else std.detach(),
                                None if samples is None else samples.detach(), dict(info))

    def step(self, i: int, total: int, preview: torch.Tensor | None = None) -> None:
        """Report progress (step ``i`` of ``total``); raises :class:`Cancelled` when the callback says stop. After
        first estimates (:meth:`child`) the callback sees step ``lead + i`` of ``lead + total``: the bar goes on."""
        if self._progress is None:
            return
        pv = None
        if preview is not None:
            pv = preview.detach()
            pv = (pv.abs() if pv.is_complex() else pv).float().cpu().numpy()
            if self.output_scale != 1.0:
                pv = pv * self.output_scale
        self._emit(self._lead + int(i), self._lead + int(total), pv)

    def _emit(self, i: int, total: int, pv: np.ndarray | None) -> None:
        """Call the progress callback (a preview already in the caller's units); :class:`Cancelled` on ``False``."""
        if self._wants_status:
            status = {k: v[-1] for k, v in self.history.items() if v}
            answer = self._progress(int(i), int(total), pv, status=status)
        else:
            answer = self._progress(int(i), int(total), pv)
        if answer is False:
            raise Cancelled()

    def child(self, share: float, then: int, seed: int | None = None, shared_history: bool = False) -> Context:
        """A context for a sub-step of this run, e.g. a first estimate by another method: the same device, seed and
        output scale; its progress fills ``share`` of this run's bar before the ``then`` steps this run reports itself
        (which then count from there), its previews show, and a cancel stops it and this run (:class:`Cancelled`).
        Its partial result and evaluation count stay its own, and so does its history unless ``shared_history`` (then
        it logs into this run's history, which a convergence plot reads live). ``seed``: the child's own seed (e.g. one
        per ensemble member) instead of this run's; this run's seed is left as it is."""
        sub = Context(self.device, self.seed if seed is None else seed)
        sub.output_scale = self.output_scale
        if shared_history:
            sub.history = self.history
        if self._progress is None:
            return sub
        then = max(int(then), 1)
        start = self._lead
        steps = max(1, round(then * share / max(1.0 - share, 1e-3)))
        self._lead = start + steps

        def forward(i: int, total: int, preview: np.ndarray | None = None) -> None:
            done = start + round(steps * min(max(i, 0), total) / max(total, 1))
            self._emit(done, start + steps + then, preview)

        sub._progress = forward
        return sub


@dataclass(frozen=True)
class TileProfile:
    """How a local method runs tile by tile on a dask array (:mod:`napari_invimg.tiling`): the halo is
    ``halo_factor`` × the operator's halo + ``min_halo`` pixels (+ :meth:`Method.tile_reach`); ``work_arrays``
    tile-sized float32 arrays are held at once."""

    halo_factor: float
    min_halo: int
    work_arrays: int


class Method(ABC):
    """One reconstruction algorithm. Subclasses set the class attributes and implement :meth:`run`."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    description: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    #: True when the method returns a standard deviation (and samples where ``n_samples`` applies).
    returns_std: ClassVar[bool] = False
    #: "posterior", "ensemble" or None
    uncertainty: ClassVar[str | None] = None
    #: True when the method needs ``A.adjoint`` (linear operators only).
    needs_adjoint: ClassVar[bool] = True
    #: operator class names the method supports; ``None`` means any operator.
    operators: ClassVar[tuple[str, ...] | None] = None
    #: whether complex images (MRI) are handled
    complex_images: ClassVar[bool] = True
    #: floor-3 front ends may hide methods that only make sense in a domain module
    domain: ClassVar[str] = "imaging"
    #: set once the method is verified to give its untiled result tile by tile (the result at a pixel depends
    #: only on data within the halo); ``None``: not local, it does not run on dask arrays
    tile_profile: ClassVar[TileProfile | None] = None
    #: True when the method's prior works on images scaled to ≈[0, 1] (learned denoisers): the API then divides
    #: the data and the noise by their robust maximum (``info["data_scale"]``) and multiplies the result back,
    #: so that the result does not depend on the data's units (see :meth:`runs_in_unit_range`)
    unit_range: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            METHODS.add(cls.name, cls)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {p.name: p.default for p in cls.params}

    @classmethod
    def validate(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults, coerce types and check bounds; unknown names are an error."""
        known = {p.name: p for p in cls.params}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ValueError(
                f"Method {cls.name!r} has no parameter {', '.join(map(repr, unknown))}; it accepts {sorted(known)}."
            )
        return {name: p.coerce(params.get(name, p.default)) for name, p in known.items()}

    @classmethod
    def ignored_params(cls, A: Operator | type[Operator], params: dict[str, Any]) -> dict[str, str]:
        """``{name: why}`` for the parameters in ``params`` given a value other than their default that do not act on
        ``A`` (:attr:`Param.operators`): the run accepts them and changes nothing with them."""
        kind = A.__name__ if isinstance(A, type) else A.name
        return {p.name: f"{p.name}={params[p.name]!r} does not act on {kind} (only on {', '.join(p.operators)}); "
                        "it was ignored"
                for p in cls.params
                if p.name in params and params[p.name] != p.default and not p.applies_to(A)}

    @classmethod
    def runs_in_unit_range(cls, params: dict[str, Any]) -> bool:
        """Whether this run (validated ``params``) works on images scaled to ≈[0, 1]: :attr:`unit_range`."""
        return cls.unit_range

    @classmethod
    def supports(cls, A: Operator | type[Operator]) -> str | None:
        """``None`` if the method can use ``A`` (an operator or an operator class); else the reason it cannot."""
        name = A.__name__ if isinstance(A, type) else A.name
        if cls.needs_adjoint and not A.linear:
            return f"{cls.name!r} needs a linear operator with an adjoint; {name} is non-linear."
        if cls.operators is not None and name not in cls.operators:
            return f"{cls.name!r} works with {', '.join(cls.operators)}, not {name}."
        if A.in_complex and not cls.complex_images:
            return f"{cls.name!r} reconstructs real images only; {name} has complex images."
        return None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "label": cls.label or cls.name,
            "description": cls.description,
            "parameters": [p.describe() for p in cls.params],
            "returns_std": cls.returns_std,
            "uncertainty": cls.uncertainty,
            "needs_adjoint": cls.needs_adjoint,
            "operators": list(cls.operators) if cls.operators else "any",
            "reference": cls.reference,
            "domain": cls.domain,
        }

    @classmethod
    def tile_params(cls, A: Operator, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` for a tiled run on ``A``; ``ValueError`` where they are not verified to tile."""
        return params

    @classmethod
    def tile_halo_factor(cls, params: dict[str, Any]) -> float:
        """The operator's halo times this is the tile halo (before :meth:`tile_reach`); the profile's, unless a
        parameter widens how far a tile border's error travels."""
        return cls.tile_profile.halo_factor

    @classmethod
    def tile_reach(cls, params: dict[str, Any]) -> tuple[int, int]:
        """(extra halo in pixels, grid the tiles must start on along the last two axes) beyond the operator's."""
        return 0, 1

    @classmethod
    def resolve_globals(cls, pilot: Callable[[dict[str, Any]], Any], y, noise: NoiseModel, params: dict[str, Any],
                        frames: int = 1) -> dict[str, Any]:
        """``params`` with the choices the method makes from the whole image fixed, so that every tile solves one
        problem: ``pilot(params)`` reconstructs the largest central region that fits a worker (the whole image
        when it fits) of the first of ``frames`` images (time points, channels) and ``y`` is the whole data (lazy;
        reductions such as ``float(y.min())`` compute)."""
        return params

    @abstractmethod
    def run(self, y: torch.Tensor, A: Operator, noise: NoiseModel, ctx: Context, **params: Any) -> Estimate:
        """Reconstruct from ``y`` (a tensor on ``ctx.device``); ``params`` are validated."""


def available() -> list[str]:
    """Names of all registered methods (those of the domain modules without importing them)."""
    return METHODS.names()


def get(name: str) -> type[Method]:
    """The method class registered as ``name``."""
    return METHODS.get(name)


def run_first_estimate(name: str, y: torch.Tensor, A: Operator, noise: NoiseModel, ctx: Context, share: float,
                       then: int, **params: Any) -> Estimate:
    """The registered method ``name`` at its defaults (updated by ``params``) run on ``y`` as the first part of the run
    ``ctx`` serves (a first estimate another method starts from): in a :meth:`Context.child` of ``ctx``, so that the
    user's cancel stops it and the progress bar moves through ``share`` of the run before its own ``then`` steps."""
    cls = get(name)
    return cls().run(y, A, noise, ctx.child(share, then), **cls.validate(params))


def info(name: str) -> dict[str, Any]:
    return get(name).describe()
