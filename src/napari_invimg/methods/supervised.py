"""Supervised reconstruction: networks trained on pairs of measurements and ground truth.

``care`` (Weigert et al., Content-aware image restoration, Nat. Methods 15 (2018) 1090): a U-Net maps the
measurement (or, for operators whose data are not images, the adjoint image ``Aᴴy``) to the image; it never uses
the operator at test time. ``unrolled`` (MoDL, Aggarwal, Mani & Jacob, IEEE TMI 38 (2019) 394): ``K`` shared CNN
steps alternating with conjugate-gradient data consistency through the operator it is given, trained end to end
for an operator family (blur with a range of PSF widths; Cartesian MRI masks of one kind and acceleration); or,
with ``start="wavelet"``/``"tv"``, ``K`` learned gradient steps that refine that classical reconstruction from a
zero-initialized last layer, so the untrained network is the classical result (Adler & Öktem 2017).

Both learn from pairs made by :func:`train_supervised`: acquired ``(low, high)`` pairs, or clean images pushed
through the forward model with noise drawn on the fly (random crops for shift-invariant operators). Training uses
only local generators, so a seeded training reproduces its weights bit for bit on the same device and threads.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._device import resolve_device
from ..errors import Cancelled
from ..nets.drunet import read_weights_file
from ..nets.unet import UNet, UnrolledNet, from_channels, init_weights, to_channels
from ..operators.base import Operator, from_spec
from ..operators.noise import NoiseModel
from ._perturb import perturb_operator
from .ensemble import sample_std
from .registry import (
    Context,
    Estimate,
    Method,
    Param,
    TileProfile,
    _accepts_status,
    get,
)

__all__ = [
    "DEFAULT_STEPS",
    "START_METHODS",
    "SUPERVISED_METHODS",
    "Care",
    "Unrolled",
    "classical_start",
    "load_supervised",
    "train_supervised",
    "training_schema",
]

FORMAT = "napari-invimg supervised 1"
SUPERVISED_METHODS = ("care", "unrolled")
#: default training steps: care 500 (18 min on 2 loaded CPU cores at 256², its validation PSNR flat from step 400:
#: benchmarks/RESULTS.md §13, second session); unrolled 400 (an estimate, not measured at 256²)
DEFAULT_STEPS = {"care": 500, "unrolled": 400}
#: percentiles of the input that map to 0 and 1 for the network (CARE's normalization)
PERCENTILES = (1.0, 99.8)


# -- normalization --------------------------------------------------------------------------------------------
def normalization(u: torch.Tensor) -> tuple[float, float]:
    """``(offset, scale)`` mapping the 1–99.8 percentile range of a real ``u`` to [0, 1]; complex: ``(0, p99.8 |u|)``."""
    flat = (u.abs() if u.is_complex() else u).detach().flatten().float().cpu()
    if flat.numel() > 2**20:
        flat = flat[:: flat.numel() // 2**20 + 1]
    if u.is_complex():
        hi = float(torch.quantile(flat, PERCENTILES[1] / 100))
        return 0.0, hi if hi > 0 and math.isfinite(hi) else 1.0
    lo, hi = (float(v) for v in torch.quantile(flat, torch.tensor(PERCENTILES) / 100))
    return lo, (hi - lo) if hi > lo else max(abs(hi), 1.0)


def _input_mode(A: Operator) -> str:
    """``measurement`` when the data are an image like ``x`` (denoising, deblurring), else ``adjoint`` (``Aᴴy``)."""
    same = tuple(A.in_shape) == tuple(A.out_shape) and not A.out_complex and not A.in_complex
    return "measurement" if same and A.shift_invariant else "adjoint"


def _plain(value: Any, limit: int = 4096) -> Any:
    """JSON-safe copy of a spec: small arrays as lists, large ones as their shape and dtype."""
    if isinstance(value, dict):
        return {str(k): _plain(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, limit) for v in value]
    if isinstance(value, np.ndarray):
        if value.size <= limit and not np.iscomplexobj(value):
            return value.tolist()
        return {"array_shape": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


# -- weights files ----------------------------------------------------------------------------------------------
def save_supervised(model: torch.nn.Module, path: str | Path, method: str, metadata: dict[str, Any]) -> Path:
    """Write ``model`` (float32) and plain ``metadata`` to ``path`` atomically (a temporary name, then a rename, by
    :func:`~napari_invimg.io._image.atomic_output`: an existing file is replaced only when it is a torch file)."""
    from ..io._image import atomic_output  # floor 1

    path = Path(path)
    _check_output(path, method)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    blob = {"format": FORMAT, "method": method, "config": dict(model.config), "state_dict": state,
            "metadata": json.loads(json.dumps(_plain(metadata)))}
    with atomic_output(path, kind="torch") as tmp:
        torch.save(blob, tmp)
    return path


def _check_output(path: Path, method: str) -> None:
    """An ``OSError`` naming the cause when weights cannot be written to ``path``: no folder, or ``path`` taken by a
    folder or a file of another kind (:class:`~napari_invimg.io.OutputExistsError`, also a ``ValueError``)."""
    if not path.parent.is_dir():
        raise OSError(f"Cannot save weights to {path}: the folder {path.parent} does not exist.")
    from ..io._image import OutputExistsError, check_replaceable  # floor 1

    if path.is_dir():  # an OSError and a ValueError, as every writer's refusal
        raise OutputExistsError(f"Cannot save weights to {path}: it is a folder; give a file name such as "
                                f"{path / (method + '.pt')}.")
    check_replaceable(path, "torch", True)  # before training: a file of another kind at ``path`` is never replaced


def _build_quietly(build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """``build()`` with torch's global generator restored afterwards: the layers' default initialization draws from
    it, and the weights are set afterwards anyway (from a seeded generator or a file), so no caller's random stream
    moves."""
    with torch.random.fork_rng(devices=[]):
        return build()


def load_supervised(path: str | Path, method: str | None = None, device: str | torch.device = "cpu"
                    ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The network of a weights file written by :func:`train_supervised` and its metadata."""
    if not str(path):
        raise ValueError(f"{method or 'This method'!r} needs trained weights: make them with "
                         f"ni.train_supervised({method or 'care'!r}, ...) and pass weights=<file>.")
    blob = read_weights_file(path, FORMAT, "supervised")
    kind = blob.get("method")
    if method is not None and kind != method:
        raise ValueError(f"{path} holds weights for {kind!r}, not {method!r}.")
    try:
        if kind not in SUPERVISED_METHODS:
            raise ValueError(f"unknown method {kind!r}")
        config = dict(blob["config"])
        model: torch.nn.Module = _build_quietly(lambda: UNet(**config) if kind == "care" else UnrolledNet(**config))
        model.load_state_dict(blob["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a missing field, a wrong config or tensor shape
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path} is a damaged supervised weights file ({detail}).") from None
    model.eval()
    return model.to(device), dict(blob.get("metadata", {}))


# -- training data ------------------------------------------------------------------------------------------------
def _as_images(items, what: str) -> list[np.ndarray]:
    items = [items] if isinstance(items, np.ndarray) else list(items)
    out = []
    for im in items:
        a = np.asarray(im)
        if a.dtype.kind not in "biufc" or a.ndim not in (2, 3):
            raise ValueError(f"The {what} must be numeric 2D images or 3D stacks; got {a.dtype} {a.shape}.")
        if not np.isfinite(a).all():
            raise ValueError(f"The {what} contain NaN or infinite values.")
        out.append(a.astype(np.complex64 if np.iscomplexobj(a) else np.float32))
    if not out:
        raise ValueError(f"No {what} were given.")
    return out


def _dihedral(t: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 rotations/flips of the last two axes (``k`` in 0..7); square crops keep their shape."""
    t = torch.rot90(t, k % 4, dims=(-2, -1))
    return t.flip(-1) if k >= 4 else t


def _undo_dihedral(t: torch.Tensor, k: int) -> torch.Tensor:
    t = t.flip(-1) if k >= 4 else t
    return torch.rot90(t, -(k % 4), dims=(-2, -1))


class _Crops:
    """Random crops at one location of several aligned arrays of one image (with a random dihedral transform)."""

    def __init__(self, patch: tuple[int, ...]):
        self.patch = patch

    def slices(self, shape: tuple[int, ...], g: torch.Generator) -> tuple[slice, ...]:
        out = []
        for n, p in zip(shape, self.patch):
            start = int(torch.randint(0, max(n - p, 0) + 1, (1,), generator=g))
            out.append(slice(start, start + min(p, n)))
        return tuple(out)


def _draw_seed(g: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=g))


class _CareData:
    """Batches ``(input, target)`` (``(B, C, *patch)``, normalized) for CARE from pairs or simulations."""

    def __init__(self, pairs, truth, A: Operator | None, noise: NoiseModel | None, patch: int, batch: int,
                 seed: int):
        self.batch = batch
        self.mode = "measurement"
        if pairs is not None:
            lows, highs = [], []
            for pair in pairs:
                if len(pair) != 2:
                    raise ValueError("Each pair must be (low quality, high quality).")
                low, high = _as_images([pair[0]], "low-quality images")[0], _as_images([pair[1]], "ground-truth images")[0]
                if low.shape != high.shape:
                    raise ValueError(f"A pair's images differ in shape: {low.shape} and {high.shape}.")
                lows.append(low)
                highs.append(high)
            if not lows:
                raise ValueError("No training pairs were given: pairs=[(low, high), ...] is empty.")
            self.kind = "acquired"
            self.images = [torch.from_numpy(h) for h in highs]
            self.inputs = [torch.from_numpy(lo) for lo in lows]
            self.norms = [normalization(t) for t in self.inputs]
            self.noise = None
        else:
            if A is None or noise is None:
                raise ValueError("Simulated pairs need the forward model (operator=) and the noise model (noise=).")
            truth = _as_images(truth, "ground-truth images")
            self.kind = "simulated"
            self.mode = _input_mode(A)
            self.A, self.noise = A, noise
            if self.mode == "measurement":
                if np.ndim(noise.sigma) != 0:
                    raise ValueError("Training on crops needs a scalar noise sigma, not a per-pixel map.")
                spec = A.spec()
                self.images, self.inputs, self.norms = [], [], []
                for i, x in enumerate(truth):
                    if x.ndim != A.ndim:
                        raise ValueError(f"The forward model is {A.ndim}D but a ground-truth image is {x.ndim}D.")
                    Ai = from_spec({**spec, "shape": list(x.shape)}) if "shape" in spec else A
                    with torch.no_grad():
                        z = Ai.apply(torch.from_numpy(x))
                    if noise.gain > 0:
                        z = z.clamp(min=0)
                    self.images.append(torch.from_numpy(x))
                    self.inputs.append(z)
                    self.norms.append(normalization(noise.sample(z, seed=seed + 7919 * (i + 1))))
            else:
                for x in truth:
                    if x.shape != tuple(A.in_shape):
                        raise ValueError(f"For a {A.name} forward model the ground-truth images must have its image "
                                         f"shape {tuple(A.in_shape)}; got {x.shape}.")
                self.images = [torch.from_numpy(x.astype(np.complex64) if A.in_complex else x) for x in truth]
        self.ndim = self.images[0].ndim
        if any(im.ndim != self.ndim for im in self.images):
            raise ValueError("The ground-truth images must all be 2D or all be 3D.")
        if len({t.is_complex() for t in self.images + getattr(self, "inputs", [])}) > 1:
            raise ValueError("The training images must be all real or all complex (a mix gives the network a varying "
                             "number of channels).")
        self.complex = bool(self.images[0].is_complex()) or (self.mode == "adjoint" and A.in_complex)
        lateral = min(min(im.shape[-2:]) for im in self.images)
        if self.mode == "measurement" and lateral < 8:
            raise ValueError(f"Training on crops needs images of at least 8 × 8 pixels; the smallest has a side of "
                             f"{lateral} pixels.")
        p = max(8, min(int(patch), lateral) // 8 * 8)
        self.patch = (p, p) if self.ndim == 2 else (min(16, min(im.shape[0] for im in self.images)), p, p)
        self.crops = _Crops(self.patch)

    @property
    def channels(self) -> int:
        return 2 if self.complex else 1

    def _crop_pair(self, i: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        sl = self.crops.slices(tuple(self.images[i].shape), g)
        u, x = self.inputs[i][sl], self.images[i][sl]
        if self.noise is not None:
            u = self.noise.sample(u, seed=_draw_seed(g))
        offset, scale = self.norms[i]
        k = int(torch.randint(0, 8, (1,), generator=g)) if self.patch[-1] == self.patch[-2] else 0
        return _dihedral((u - offset) / scale, k), _dihedral((x - offset) / scale, k)

    def _adjoint_pair(self, i: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[i]
        with torch.no_grad():
            y = self.noise.sample(self.A.apply(x), seed=_draw_seed(g))
            u = self.A.apply_adjoint(y)
        offset, scale = normalization(u)
        return (u - offset) / scale, (x - offset) / scale

    def sample(self, g: torch.Generator, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        n = n or self.batch
        idx = torch.randint(0, len(self.images), (n,), generator=g).tolist()
        pairs = [self._adjoint_pair(i, g) if self.mode == "adjoint" else self._crop_pair(i, g) for i in idx]
        u = torch.stack([p[0] for p in pairs])
        x = torch.stack([p[1] for p in pairs])
        return to_channels(u), to_channels(x)


class _UnrolledData:
    """Batches ``(y, x, A_k)`` for the unrolled network: an operator of the family per step, scaled data."""

    def __init__(self, truth, A: Operator, noise: NoiseModel, patch: int, batch: int, psf_range: float):
        if A is None or noise is None:
            raise ValueError("The unrolled network trains on pairs simulated through the forward model: give "
                             "operator= and noise= (the noise model of the data).")
        if not A.linear:
            raise ValueError("The unrolled network needs a linear forward model with an adjoint.")
        if truth is None:
            raise ValueError("The unrolled network trains on simulated pairs: give truth= (clean images).")
        self.images = [torch.from_numpy(x.astype(np.complex64) if A.in_complex else x.real.astype(np.float32))
                       for x in _as_images(truth, "ground-truth images")]
        self.A, self.noise, self.batch = A, noise, batch
        self.psf_range = float(psf_range)
        if not 0 <= self.psf_range < 1:
            raise ValueError("psf_range must lie in [0, 1): the PSF widths vary by ×(1 ± psf_range).")
        self.shift_invariant = A.shift_invariant and "shape" in A.spec()
        if self.shift_invariant:
            if np.ndim(noise.sigma) != 0:
                raise ValueError("Training on crops needs a scalar noise sigma, not a per-pixel map.")
            lateral = min(min(im.shape[-2:]) for im in self.images)
            p = max(8, min(int(patch), lateral) // 8 * 8)
            self.patch = (p,) * A.ndim if A.ndim == 2 else (min(16, min(im.shape[0] for im in self.images)), p, p)
        else:
            for x in self.images:
                if tuple(x.shape) != tuple(A.in_shape):
                    raise ValueError(f"For a {A.name} forward model the ground-truth images must have its image "
                                     f"shape {tuple(A.in_shape)}; got {tuple(x.shape)}.")
            self.patch = tuple(A.in_shape)
        self.crops = _Crops(self.patch)
        self.pool: list | None = None
        self.augment = False

    def operator(self, g: torch.Generator, nominal: bool = False) -> Operator:
        if self.shift_invariant:
            spec = self.A.spec()
            A = from_spec({**spec, "shape": list(self.patch)})
            if self.psf_range > 0 and not nominal and "psf" in spec:
                factor = 1 + self.psf_range * (2 * float(torch.rand(1, generator=g)) - 1)
                A = perturb_operator(A, "psf_scale", factor)
            return A
        if nominal or self.A.name != "CartesianMRI":
            return self.A
        return perturb_operator(self.A, "mask_seed", _draw_seed(g) % 100000)

    def prepare_starts(self, start: str, params: dict[str, Any], masks: int, g: torch.Generator,
                       tick: Callable[[int, int], None] | None = None, refresh: float = 0.0) -> None:
        """Fix a pool of ``masks`` operators of the family, each with every training image (a random crop for
        shift-invariant operators), its data and its classical reconstruction (``start`` with ``params``: too slow
        to run at every step); batches then come from this pool. ``refresh > 0``: the pool is instead ``masks``
        groups of ``batch`` random images with one operator each, and :meth:`refresh_pool` replaces the oldest group
        by a fresh one (new operator, images, noise and starts) after every ``batch / refresh`` training steps."""
        self.start, self.start_params = start, params
        self.refresh, self.credit = float(refresh), 0.0
        if not (math.isfinite(self.refresh) and self.refresh >= 0):
            raise ValueError("start_refresh must be a number ≥ 0 (fresh starts per training step).")
        if self.refresh > 0:
            groups = max(1, int(masks))
            self.pool = []
            for j in range(groups):
                self.pool.append(self._fresh_group(g))
                if tick is not None:
                    tick((j + 1) * self.batch, groups * self.batch)
            return
        pool, total = [], max(1, int(masks)) * len(self.images)
        for _ in range(max(1, int(masks))):
            A = self.operator(g)
            xs, ys, x0s = [], [], []
            for i in range(len(self.images)):
                x, y, x0 = self._with_start(self._image(i, g, self.augment), A, g)
                xs.append(x)
                ys.append(y)
                x0s.append(x0)
                if tick is not None:
                    tick(len(pool) * len(self.images) + len(xs), total)
            pool.append((A, torch.stack(xs), torch.stack(ys), torch.stack(x0s)))
        self.pool = pool

    def _fresh_group(self, g: torch.Generator):
        """One operator of the family with ``batch`` random (augmented) training images, their data and starts."""
        A = self.operator(g)
        idx = torch.randint(0, len(self.images), (self.batch,), generator=g).tolist()
        xs, ys, x0s = zip(*(self._with_start(self._image(i, g, self.augment), A, g) for i in idx))
        return A, torch.stack(xs), torch.stack(ys), torch.stack(x0s)

    def refresh_pool(self, g: torch.Generator) -> int:
        """After a training step: replace the oldest group of the pool by a fresh one once ``refresh`` per step has
        added up to a batch; returns the number of fresh starts computed."""
        if self.pool is None or not getattr(self, "refresh", 0):
            return 0
        self.credit += self.refresh
        made = 0
        while self.credit >= self.batch:
            self.pool.pop(0)
            self.pool.append(self._fresh_group(g))
            self.credit -= self.batch
            made += self.batch
        return made

    def _image(self, i: int, g: torch.Generator, augment: bool = False) -> torch.Tensor:
        if not self.shift_invariant:
            x = self.images[i]
            if augment:  # a left–right mirror half of the time; complex images: a random global phase
                if float(torch.rand(1, generator=g)) < 0.5:
                    x = x.flip(-1)
                if x.is_complex():
                    phi = 2 * math.pi * float(torch.rand(1, generator=g))
                    x = x * complex(math.cos(phi), math.sin(phi))
            return x
        x = self.images[i][self.crops.slices(tuple(self.images[i].shape), g)]
        return _dihedral(x, int(torch.randint(0, 8, (1,), generator=g)))

    def held_out(self, images: Sequence[np.ndarray], g: torch.Generator, per_batch: int = 2) -> list:
        """Validation batches from held-out clean ``images`` (whole images or one crop each), the nominal operator,
        one fixed noise draw each (and their starts when the network refines one)."""
        ims = [torch.from_numpy(x.astype(np.complex64) if self.A.in_complex else x.real.astype(np.float32))
               for x in _as_images(images, "validation images")]
        saved = self.images
        self.images = ims
        try:
            if not self.shift_invariant:
                for x in ims:
                    if tuple(x.shape) != tuple(self.A.in_shape):
                        raise ValueError(f"The validation images must have the forward model's image shape "
                                         f"{tuple(self.A.in_shape)}; got {tuple(x.shape)}.")
            A = self.operator(g, nominal=True)
            batches = []
            for first in range(0, len(ims), per_batch):
                idx = list(range(first, min(first + per_batch, len(ims))))
                if self.pool is not None:
                    x, y, x0 = (torch.stack(t) for t in zip(*(self._with_start(self._image(i, g), A, g) for i in idx)))
                else:
                    x = torch.stack([self._image(i, g) for i in idx])
                    with torch.no_grad():
                        z = A.apply(x)
                        if self.noise.gain > 0:
                            z = z.clamp(min=0)
                        y = self.noise.sample(z, seed=_draw_seed(g))
                    x0 = None
                with torch.no_grad():
                    scale = torch.tensor([unrolled_scale(A.apply_adjoint(y[j])) for j in range(len(idx))])
                shaped = [t / scale.reshape((-1,) + (1,) * (t.ndim - 1)) for t in (y, x)]
                batches.append((shaped[0], shaped[1], A) if x0 is None else
                               (shaped[0], shaped[1], A, x0 / scale.reshape((-1,) + (1,) * (x0.ndim - 1))))
        finally:
            self.images = saved
        return batches

    def _with_start(self, x: torch.Tensor, A: Operator, g: torch.Generator):
        with torch.no_grad():
            z = A.apply(x)
            if self.noise.gain > 0:
                z = z.clamp(min=0)
            y = self.noise.sample(z, seed=_draw_seed(g))
            x0 = classical_start(y, A, self.noise, self.start, self.start_params, x.device)
        return x, y, x0

    def sample_start(self, g: torch.Generator, n: int | None = None, nominal: bool = False):
        """``(y, x, A, x₀)`` scaled like :meth:`sample`: from the pool, or made afresh for the nominal operator
        (validation)."""
        n = n or self.batch
        if nominal:
            A = self.operator(g, nominal=True)
            idx = torch.randint(0, len(self.images), (n,), generator=g).tolist()
            x, y, x0 = (torch.stack(t) for t in zip(*(self._with_start(self._image(i, g), A, g) for i in idx)))
        else:
            A, xs, ys, x0s = self.pool[int(torch.randint(0, len(self.pool), (1,), generator=g))]
            idx = torch.randint(0, len(xs), (n,), generator=g)
            x, y, x0 = xs[idx], ys[idx], x0s[idx]
        with torch.no_grad():
            scale = torch.tensor([unrolled_scale(A.apply_adjoint(y[j])) for j in range(n)])
        return (y / scale.reshape((-1,) + (1,) * (y.ndim - 1)), x / scale.reshape((-1,) + (1,) * (x.ndim - 1)), A,
                x0 / scale.reshape((-1,) + (1,) * (x0.ndim - 1)))

    def sample(self, g: torch.Generator, n: int | None = None, nominal: bool = False):
        if self.pool is not None:
            return self.sample_start(g, n, nominal)
        n = n or self.batch
        A = self.operator(g, nominal)
        idx = torch.randint(0, len(self.images), (n,), generator=g).tolist()
        xs = []
        for i in idx:
            x = self.images[i][self.crops.slices(tuple(self.images[i].shape), g)] if self.shift_invariant \
                else self.images[i]
            if self.shift_invariant:
                x = _dihedral(x, int(torch.randint(0, 8, (1,), generator=g)))
            elif self.augment and not nominal:
                x = self._image(i, g, True)
            xs.append(x)
        x = torch.stack(xs)
        with torch.no_grad():
            z = A.apply(x)
            if self.noise.gain > 0:
                z = z.clamp(min=0)
            y = self.noise.sample(z, seed=_draw_seed(g))
            scale = torch.tensor([unrolled_scale(A.apply_adjoint(y[j])) for j in range(n)])
        return y / scale.reshape((-1,) + (1,) * (y.ndim - 1)), x / scale.reshape((-1,) + (1,) * (x.ndim - 1)), A


#: classical reconstructions the unrolled network can start from (``start=``), with their fixed settings
START_METHODS = ("cg", "wavelet", "tv")


def classical_start(y: torch.Tensor, A: Operator, noise: NoiseModel, start: str, params: dict[str, Any],
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """The classical reconstruction an unrolled network refines: the registered method ``start`` (``wavelet`` or
    ``tv``, its weight by the discrepancy principle) at its defaults updated by ``params``, seed 0."""
    if start not in START_METHODS[1:]:
        raise ValueError(f"The unrolled network starts from one of {START_METHODS}, not {start!r}.")
    cls = get(start)
    values = cls.validate(dict(params))
    return cls().run(y, A, noise, Context(torch.device(device), seed=0), **values).mean


def unrolled_scale(u: torch.Tensor) -> float:
    """The unrolled network's unit: the 99.8th percentile of ``|Aᴴy|``."""
    flat = u.detach().abs().flatten().float().cpu()
    if flat.numel() > 2**20:
        flat = flat[:: flat.numel() // 2**20 + 1]
    hi = float(torch.quantile(flat, PERCENTILES[1] / 100))
    return hi if hi > 0 and math.isfinite(hi) else 1.0


# -- training ---------------------------------------------------------------------------------------------------
def _check_count(name: str, value: Any, low: int) -> None:
    """A ``ValueError`` naming ``name`` unless ``value`` is ``None`` (the default) or a whole number ≥ ``low``."""
    if value is None:
        return
    whole = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not (whole or (isinstance(value, float) and value.is_integer())) or value < low:
        raise ValueError(f"{name} must be a whole number ≥ {low} (or None for the default), got {value!r}.")


def _check_depth(depth: int, patch: tuple[int, ...]) -> None:
    """The U-Net halves Y and X ``depth`` times (and doubles its channels each time): refuse a depth that pools the
    training crops below one pixel, before its ``width · 2^depth`` channels take the memory."""
    side = min(patch[-2:])
    if 2 ** int(depth) > side:
        raise ValueError(f"depth={depth} halves the {side}-pixel training crops {depth} times; use depth ≤ "
                         f"{max(int(math.log2(side)), 1)} (or larger images / patch).")


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b).abs() ** 2).mean())
    rng = float(b.abs().max() - (0 if b.is_complex() else b.min()))
    return 10 * math.log10(max(rng, 1e-12) ** 2 / max(mse, 1e-20))


def train_supervised(method: str, pairs: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
                     truth: np.ndarray | Sequence[np.ndarray] | None = None, operator: Operator | None = None,
                     noise: NoiseModel | None = None, steps: int | None = None, seed: int = 0,
                     out: str | os.PathLike = "care.pt",
                     progress: Callable[..., Any] | None = None, *, patch: int = 64, batch_size: int | None = None,
                     lr: float | None = None, width: int | None = None, depth: int | None = None,
                     iterations: int = 6, psf_range: float = 0.2, device: str | torch.device | None = None,
                     validation_every: int | None = None, start: str = "cg", start_params: dict[str, Any] | None = None,
                     start_pool: int = 6, start_refresh: float = 0.0, augment: bool = False,
                     validation_truth: Sequence[np.ndarray] | None = None, keep_best: bool = False,
                     weight_decay: float = 0.0) -> Path:
    """Train ``care`` or ``unrolled`` and write its weights to ``out`` (returned); use them with
    ``ni.reconstruct(y, A, method, weights=path)``.

    Pairs come either acquired, ``pairs=[(low, high), ...]`` (registered images of the same field; ``care`` only),
    or simulated: ``truth=[x, ...]`` clean images with ``operator`` and ``noise`` — ``y = A(x) + noise`` made on the
    fly, on random ``patch``-sized crops for shift-invariant operators (Identity, Blur), on whole images otherwise
    (their shape must be the operator's). ``unrolled`` trains for an operator family: PSF widths × U(1 ± psf_range)
    for a blur, new masks of the nominal mask's kind and acceleration for Cartesian MRI. ``steps=None``: the
    default that takes about 15–20 minutes on 2 CPU cores for care at 256². ``progress(step, total, preview, status=...)`` is called
    every step (``status``: the loss and, now and then, the validation PSNR); returning ``False`` stops training,
    writes the partial model (``metadata["cancelled"]``) and raises :class:`~napari_invimg.Cancelled` with
    ``partial`` = the path. The weights file records the operator, noise, normalization, steps and seed.

    ``unrolled`` with ``start="wavelet"`` (or ``"tv"``): learned gradient steps that refine that classical
    reconstruction (run with ``start_params``, e.g. ``{"wavelet": "haar"}``), their last layer zero at the start so
    the untrained network *is* the classical result; the starts are computed once for a pool of ``start_pool``
    operators of the family × the training images (the slow part before step 1). ``start="cg"``: MoDL.
    ``start_refresh=r > 0`` trades that fixed pool for a moving one: ``start_pool`` groups of ``batch_size`` random
    training images with one operator each, the oldest group replaced by a fresh one (new operator, images, noise
    and starts) as ``r`` fresh starts per step add up to a batch, so the network sees ``r × steps`` more pairs.

    ``augment`` (unrolled, whole-image operators such as MRI): each drawn image mirrored left–right half of the
    time and, if complex, turned by a random global phase. ``validation_truth``: held-out clean images for the
    validation PSNR (nominal operator, one fixed noise draw each) instead of draws from the training images;
    ``keep_best``: write the weights of the best validation PSNR (early stopping; ``metadata["best_step"]``).
    ``weight_decay``: decoupled weight decay (AdamW; Loshchilov & Hutter, ICLR 2019).
    """
    if method not in SUPERVISED_METHODS:
        raise ValueError(f"train_supervised trains {' or '.join(map(repr, SUPERVISED_METHODS))}, not {method!r}.")
    if (pairs is None) == (truth is None):
        raise ValueError("Give either acquired pairs=[(low, high), ...] or clean images truth=[...], not both.")
    if method == "unrolled" and pairs is not None:
        raise ValueError("The unrolled network learns through the forward model: give truth= images, operator= and "
                         "noise= (acquired pairs carry no operator).")
    if start not in START_METHODS:
        raise ValueError(f"start must be one of {START_METHODS}, got {start!r}.")
    if start != "cg" and method != "unrolled":
        raise ValueError("start= is the unrolled network's classical starting point; care has none.")
    if method != "unrolled" and (start_refresh or augment or validation_truth is not None):
        raise ValueError("start_refresh, augment and validation_truth are options of the unrolled network's training.")
    if keep_best and method == "unrolled" and validation_truth is None:
        raise ValueError("keep_best selects the weights by the validation PSNR on held-out images: give "
                         "validation_truth=[...] (images not in truth=).")
    if not (math.isfinite(float(weight_decay)) and weight_decay >= 0):
        raise ValueError("weight_decay must be a number ≥ 0.")
    if operator is not None and not isinstance(operator, Operator):
        raise ValueError(f"operator must be a napari_invimg operator, got {type(operator).__name__}.")
    if noise is not None and not isinstance(noise, NoiseModel):
        raise ValueError(f"noise must be a napari_invimg noise model, got {type(noise).__name__}.")
    steps = DEFAULT_STEPS[method] if steps is None else int(steps)
    if steps < 1:
        raise ValueError("steps must be at least 1.")
    for name, value, low in (("batch_size", batch_size, 1), ("width", width, 1), ("depth", depth, 1),
                             ("patch", patch, 8), ("iterations", iterations, 1), ("validation_every", validation_every, 1),
                             ("start_pool", start_pool, 1)):
        _check_count(name, value, low)
    if lr is not None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr (the learning rate) must be a finite number > 0, got {lr!r}.")
    out = Path(out)
    _check_output(out, method)
    dev = resolve_device(device)
    g = torch.Generator().manual_seed(int(seed))
    gval = torch.Generator().manual_seed(int(seed) + 1)
    if method == "care":
        data = _CareData(pairs, truth, operator, noise, patch, batch_size or 8, int(seed))
        _check_depth(depth or 3, data.patch)
        model: torch.nn.Module = _build_quietly(lambda: UNet(data.ndim, data.channels, data.channels, width or 32,
                                                             depth or 3))
    else:
        data = _UnrolledData(truth, operator, noise, patch, batch_size or 4, psf_range)
        _check_depth(depth or 2, data.patch)
        data.augment = bool(augment)
        model = _build_quietly(lambda: UnrolledNet(operator.ndim, bool(operator.in_complex), iterations, width or 24,
                                                    depth or 2, start=start, start_params=start_params))
    init_weights(model, g)
    if isinstance(model, UnrolledNet):
        model.zero_refinement()
    model.to(dev)
    wants_status = progress is not None and _accepts_status(progress)
    every = validation_every or max(1, min(50, steps // 20))
    opt = torch.optim.AdamW(model.parameters(), lr=lr or (1e-3 if method == "care" else 5e-4),
                            weight_decay=float(weight_decay))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * i / steps)))

    def predict(batch) -> tuple[torch.Tensor, torch.Tensor]:
        if method == "care":
            u, x = batch
            return model(u.to(dev)), x.to(dev)
        y, x, A = batch[:3]
        A.to(dev)
        x0 = batch[3].to(dev) if len(batch) > 3 else None
        return model(y.to(dev), A, x0), x.to(dev)

    def validate() -> tuple[float, np.ndarray]:
        model.eval()
        with torch.no_grad():
            scores, first = [], None
            for batch in val:
                pred, x = predict(batch)
                scores.append(_psnr(pred, x))
                if first is None:
                    img = pred[0] if method == "unrolled" else from_channels(pred, data.channels == 2)[0]
                    img = img.abs() if img.is_complex() else img
                    first = (img[img.shape[0] // 2] if img.ndim == 3 else img).float().cpu().numpy()
        model.train()
        return float(np.mean(scores)), first

    metadata: dict[str, Any] = {
        "method": method, "steps": steps, "seed": int(seed), "patch": list(data.patch),
        "batch_size": int(data.batch), "pairs": "acquired" if pairs is not None else "simulated",
        "input": getattr(data, "mode", "adjoint"), "normalization": {
            "care": f"input percentiles {PERCENTILES} -> [0, 1] (offset, scale) per image",
            "unrolled": "data and image divided by the 99.8th percentile of |Aᴴy|"}[method],
        "operator": _plain(operator.spec()) if operator is not None else None,
        "operator_type": operator.name if operator is not None else None,
        "operator_acceleration": float(operator.acceleration) if hasattr(operator, "acceleration") else None,
        "noise": _plain(noise.spec()) if noise is not None else None,
        "psf_range": float(psf_range) if method == "unrolled" else None, "ndim": data.images[0].ndim,
        "start": start, "start_params": dict(start_params or {}), "start_pool": int(start_pool) if start != "cg" else None,
        "start_refresh": float(start_refresh), "augment": bool(augment), "weight_decay": float(weight_decay),
        "validation": "held-out images" if validation_truth is not None else "training images", "keep_best": bool(keep_best),
        "complex": bool(getattr(data, "complex", operator is not None and operator.in_complex)),
    }
    if method == "unrolled" and start != "cg":
        started_prep = time.perf_counter()

        def tick(i: int, total: int) -> None:
            answer = progress(0, steps, None, status={}) if wants_status else progress(0, steps, None)
            if answer is False:
                raise Cancelled(f"{method} training cancelled while computing the {start} starts")

        try:
            data.prepare_starts(start, dict(start_params or {}), start_pool, g, tick if progress is not None else None,
                                refresh=start_refresh)
        except Cancelled as exc:  # the untrained network: the classical start itself
            metadata.update(cancelled=True, steps_done=0, seconds=time.perf_counter() - started_prep,
                            history={"loss": [], "val_psnr": [], "val_step": []})
            path = save_supervised(model, out, method, metadata)
            raise Cancelled(str(exc), partial=path) from None
    if validation_truth is not None:
        val = data.held_out(validation_truth, gval)
    else:
        val = [data.sample(gval, 2, **({"nominal": True} if method == "unrolled" else {})) for _ in range(2)]
    history: dict[str, list] = {"loss": [], "val_psnr": [], "val_step": []}
    best: dict[str, Any] = {"score": -math.inf, "step": 0, "state": None}

    def restore_best() -> None:
        if keep_best and best["state"] is not None:
            model.load_state_dict(best["state"])
            metadata.update(best_step=best["step"], best_val_psnr=best["score"])
    started = time.perf_counter()
    model.train()
    k = fresh = 0
    try:
        for k in range(1, steps + 1):
            batch = data.sample(g)
            pred, x = predict(batch)
            loss = ((pred - x).abs() ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise ValueError("Training diverged (non-finite loss); lower the learning rate.")
            history["loss"].append(value)
            preview = None
            status = {"loss": value}
            if k % every == 0 or k == steps:
                score, preview = validate()
                history["val_psnr"].append(score)
                history["val_step"].append(k)
                status["val_psnr"] = score
                if keep_best and score > best["score"]:
                    best.update(score=score, step=k,
                                state={n: t.detach().clone() for n, t in model.state_dict().items()})
            if method == "unrolled":
                fresh += data.refresh_pool(g)
            if progress is not None:
                answer = progress(k, steps, preview, status=status) if wants_status else progress(k, steps, preview)
                if answer is False:
                    raise Cancelled(f"{method} training cancelled")
    except Cancelled as exc:
        model.eval()
        restore_best()
        metadata.update(fresh_starts=fresh, cancelled=True, steps_done=k - 1 if not history["loss"] or len(history["loss"]) < k else k,
                        seconds=time.perf_counter() - started, history=history)
        path = save_supervised(model, out, method, metadata)
        raise Cancelled(str(exc) or f"{method} training cancelled", partial=path) from None
    model.eval()
    restore_best()
    metadata.update(fresh_starts=fresh, cancelled=False, steps_done=steps, seconds=time.perf_counter() - started, history=history)
    return save_supervised(model, out, method, metadata)


# -- the methods ---------------------------------------------------------------------------------------------------
def _training_param(name: str, kind: type, low: float | None = None, high: float | None = None,
                    choices: tuple | None = None, doc: str = "", log_scale: bool = False) -> Param:
    """A keyword of :func:`train_supervised` as a :class:`Param`; its default is the function's (one source)."""
    default = inspect.signature(train_supervised).parameters[name].default
    return Param(name, kind, default, low, high, choices, doc, log_scale)


_KEEP_BEST = _training_param("keep_best", bool, doc="write the weights of the best validation PSNR (early stopping)")
_WEIGHT_DECAY = _training_param("weight_decay", float, 0.0, None, doc="decoupled weight decay (AdamW)", log_scale=True)


def training_schema(method: str) -> list[dict[str, Any]]:
    """The method-specific keywords of :func:`train_supervised` for ``method`` (name, type, default, bounds, doc,
    as :func:`~napari_invimg.method_info`'s parameters), from the method class's ``training_params``; a ``list``
    parameter takes images (``validation_truth``)."""
    cls = get(method)
    return [p.describe() for p in getattr(cls, "training_params", ())]


WEIGHTS = Param("weights", str, "", doc="weights file from ni.train_supervised (the Train dock's supervised section)")


def _operator_matches(A: Operator, meta: dict[str, Any]) -> bool | None:
    """Whether ``A`` is the operator the network was trained for (PSF compared where both have one; a Cartesian MRI
    mask's acceleration within 10 %, the mask itself is not compared: unrolled trains on masks drawn anew)."""
    spec = meta.get("operator") or {}
    if not spec:
        return None
    if spec.get("type") != A.spec().get("type"):
        return False
    psf = spec.get("psf")
    mine = A.spec().get("psf")
    if isinstance(psf, list) and mine is not None:
        a = np.asarray(psf, dtype=np.float32)
        return bool(a.shape == np.shape(mine) and np.allclose(a, mine, atol=1e-6))
    trained, mine = meta.get("operator_acceleration"), getattr(A, "acceleration", None)
    if trained and mine is not None and not math.isclose(float(trained), float(mine), rel_tol=0.1):
        return False
    return True


class Care(Method):
    name = "care"
    label = "CARE (supervised U-Net)"
    description = (
        "x̂ = s·U_θ((u − o)/s) + o with u = y (or Aᴴy), (o, s) from the input's 1–99.8 percentiles and U_θ a U-Net "
        "trained on pairs (ni.train_supervised); mean and spread over the 8 flips/rotations (labeled ensemble)."
    )
    reference = "Weigert et al., Content-aware image restoration, Nat. Methods 15 (2018) 1090."
    params = (
        WEIGHTS,
        Param("offset", float, None, doc="input value mapped to 0 (empty: the input's 1st percentile)"),
        Param("scale", float, None, 0.0, None, doc="input range mapped to 1 (empty: from the input's percentiles)"),
    )
    #: train_supervised's keywords for care beyond the common ones (the Train dock shows them)
    training_params = (_KEEP_BEST, _WEIGHT_DECAY)
    returns_std = True
    uncertainty = "ensemble"
    needs_adjoint = False
    #: tiles like a local filter: the U-Net's receptive field as halo (tile_reach), tiles on its 8-pixel grid, the
    #: normalization fixed once from the pilot region (resolve_globals)
    tile_profile = TileProfile(0.0, 0, 400)

    @classmethod
    def tile_reach(cls, params: dict[str, Any]) -> tuple[int, int]:
        if not params.get("weights"):
            return 52, 8
        net, _ = load_supervised(params["weights"], "care")
        return int(net.receptive_field), int(net.factor)

    @classmethod
    def resolve_globals(cls, pilot, y, noise: NoiseModel, params: dict[str, Any], frames: int = 1) -> dict[str, Any]:
        if params.get("offset") is None or params.get("scale") is None:
            found = pilot(params).info
            params = {**params, **{k: found[k] for k in ("offset", "scale") if params.get(k) is None}}
        return params

    def run(self, y, A, noise, ctx: Context, weights: str, offset: float | None, scale: float | None) -> Estimate:
        net, meta = load_supervised(weights, "care", ctx.device)
        mode = meta.get("input", "measurement")
        if A.ndim != net.config["ndim"]:
            raise ValueError(f"These CARE weights are for {net.config['ndim']}D images; the data are {A.ndim}D.")
        if mode == "measurement":
            if tuple(y.shape) != tuple(A.in_shape) or y.is_complex():
                raise ValueError("These CARE weights map a measurement image to an image; this forward model's data "
                                 "are not an image of the same shape.")
            u = y
        else:
            if not A.linear:
                raise ValueError("These CARE weights take Aᴴy; this forward model has no adjoint.")
            u = A.apply_adjoint(y)
        if (net.config["in_channels"] == 2) != bool(u.is_complex()):
            raise ValueError("These CARE weights were trained on " + ("complex" if net.config["in_channels"] == 2
                                                                      else "real") + " images.")
        o, s = normalization(u)
        o = o if offset is None else float(offset)
        s = s if scale is None else float(scale)
        if not s > 0:
            raise ValueError("The normalization scale must be positive.")
        v = to_channels(((u - o) / s).unsqueeze(0))
        outs = []
        with torch.no_grad():
            for k in range(8):
                pred = _undo_dihedral(net(_dihedral(v, k)), k)
                outs.append(from_channels(pred, u.is_complex())[0] * s + o)
                ctx.keep(torch.stack(outs).mean(0))
                ctx.step(k + 1, 8, outs[-1])
        stack = torch.stack(outs)
        mean = stack.mean(0)
        std = sample_std(stack)
        return Estimate(mean, std=std, info={"offset": o, "scale": s, "training": _summary(meta),
                                             "operator_matches_training": _operator_matches(A, meta),
                                             "spread": "8 flips/rotations of the input (test-time augmentation)"})


def _summary(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: meta.get(k) for k in ("steps", "steps_done", "seed", "pairs", "operator_type", "cancelled", "input")}


class Unrolled(Method):
    name = "unrolled"
    label = "Unrolled network (MoDL)"
    description = (
        "x_{k+1} = argmin ‖A x − y‖² + λ‖x − D_θ(x_k)‖² (CG through A), K steps with one shared CNN D_θ, trained end "
        "to end on simulated pairs for an operator family (ni.train_supervised); uses the given A at test time. "
        "Weights trained with start=wavelet/tv instead refine that reconstruction: x ← x + R_θ(x, Aᴴ(Ax − y)), K times. "
        "Complex images: the mean of e^{−iφ}·net(e^{iφ}y) over `phases` global phases φ = 2πj/phases."
    )
    reference = "Aggarwal, Mani & Jacob, MoDL: model-based deep learning architecture for inverse problems, IEEE TMI 38 (2019) 394."
    params = (
        WEIGHTS,
        Param("phases", int, 4, 1, 16, doc="complex images: average over this many global phases of the data "
              "(a test-time ensemble; the phase of an MR image is arbitrary); real images: not used"),
    )
    #: train_supervised's keywords for unrolled beyond the common ones (the Train dock shows them)
    training_params = (
        _training_param("iterations", int, 1, 50, doc="unrolled steps K (one shared network)"),
        _training_param("psf_range", float, 0.0, 0.9, doc="blur: PSF widths drawn × U(1 ± psf_range)"),
        _training_param("start", str, choices=START_METHODS, doc="cg: MoDL; wavelet / tv: refine that classical "
                        "reconstruction (the untrained network is the classical result)"),
        _training_param("start_params", dict, doc="settings of the start method, e.g. {'wavelet': 'haar'} "
                        "(empty: its defaults)"),
        _training_param("start_pool", int, 1, 1000, doc="wavelet / tv start: operators in the pool of starts "
                        "(with start_refresh: groups of a batch)"),
        _training_param("start_refresh", float, 0.0, None, doc="wavelet / tv start: fresh starts per step "
                        "(0: a fixed pool)"),
        _training_param("augment", bool, doc="whole-image operators (MRI): random mirror and global phase"),
        _training_param("validation_truth", list, doc="held-out clean images for the validation PSNR"),
        _KEEP_BEST,
        _WEIGHT_DECAY,
    )
    returns_std = False
    uncertainty = None
    needs_adjoint = True

    def run(self, y, A, noise, ctx: Context, weights: str, phases: int = 4) -> Estimate:
        net, meta = load_supervised(weights, "unrolled", ctx.device)
        cfg = net.config
        if A.ndim != cfg["ndim"] or bool(A.in_complex) != cfg["complex_image"]:
            raise ValueError(f"These unrolled weights are for {cfg['ndim']}D {'complex' if cfg['complex_image'] else 'real'} "
                             f"images; this forward model has {A.ndim}D {'complex' if A.in_complex else 'real'} ones.")
        trained = meta.get("operator_type")
        if trained and trained != A.name:
            raise ValueError(f"These unrolled weights were trained through a {trained} forward model, not {A.name}.")
        x0 = None
        if cfg.get("start", "cg") != "cg":
            x0 = classical_start(y, A, noise, cfg["start"], cfg.get("start_params", {}), ctx.device)
        turns = max(1, int(phases)) if cfg["complex_image"] and y.is_complex() else 1
        with torch.no_grad():
            s = unrolled_scale(A.apply_adjoint(y))
            outs = []
            for j in range(turns):  # A is linear over ℂ: A(e^{iφ}x) = e^{iφ}A(x), the noise is circular
                turn = complex(math.cos(2 * math.pi * j / turns), math.sin(2 * math.pi * j / turns)) if turns > 1 else 1
                start = None if x0 is None else (x0 * turn / s).unsqueeze(0)
                outs.append(net((y * turn / s).unsqueeze(0), A, start)[0] * s / turn)
            x = torch.stack(outs).mean(0)
        ctx.keep(x)
        ctx.step(1, 1, x)
        return Estimate(x, info={"scale": s, "training": _summary(meta), "iterations": cfg["iterations"],
                                 "start": cfg.get("start", "cg"), "phases": turns,
                                 "operator_matches_training": _operator_matches(A, meta)})
