"""Replay a saved recipe on new data (floor 3): the same operator, noise, method, parameters and seed.

On the data the recipe was made from, the replay gives exactly the original result (same device and
thread count). Time-lapses and channel stacks (more leading axes than the operator has) are replayed
frame by frame; dask arrays (files larger than memory) run tile by tile (:mod:`napari_invimg.tiling`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from .api import reconstruct
from .io.recipe import load_recipe
from .operators.base import Operator, from_spec
from .operators.noise import from_spec as noise_from_spec
from .tiling import operator_for_shape
from .uncertainty import Reconstruction

__all__ = ["replay", "recipe_operator", "recipe_ndim"]


def recipe_ndim(spec: dict[str, Any]) -> int:
    """Number of image dimensions the recipe's operator works on."""
    spec = spec[0] if isinstance(spec, list) else spec
    return len(spec["shape"]) if "shape" in spec else from_spec(spec).ndim


def recipe_operator(spec: dict[str, Any], shape: tuple[int, ...]) -> Operator:
    """The recipe's operator on an image of ``shape`` (operators without a shape parameter must match)."""
    if "shape" in spec:
        return operator_for_shape(spec, shape)
    A = from_spec(spec)
    if tuple(A.in_shape) != tuple(shape):
        raise ValueError(f"The recipe's {A.name} operator works on images of shape {A.in_shape}, "
                         f"but the data's frames are {tuple(shape)}.")
    return A


def _usable(device: str | None) -> str | None:
    """The recipe's device where this machine has it, else ``None`` (the default device)."""
    if device is None:
        return None
    import torch

    kind = str(device).split(":")[0]
    ok = kind == "cpu" or (kind == "cuda" and torch.cuda.is_available()) or \
        (kind == "mps" and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available())
    return str(device) if ok else None


def _small_shape(spec: dict[str, Any], spatial: tuple[int, ...]) -> tuple[int, ...]:
    kernel = np.shape(spec["psf"]) if "psf" in spec else (1,) * len(spatial)
    return tuple(min(s, max(k, 32)) for s, k in zip(spatial, kernel))


def replay(recipe: dict[str, Any] | str | os.PathLike, data, *, progress: Callable | None = None,
           output: str | os.PathLike | None = None, pixel_size_um=None, axes: str | None = None,
           device=None, pilot: str | None = None) -> Reconstruction:
    """Run a recipe (a dict from :func:`~napari_invimg.io.load_recipe`, or a path) on ``data``.

    ``data``: numpy (in memory) or dask (tiled; ``output`` a ``.zarr`` path to compute and store now).
    ``progress(step, total, preview)`` as for :func:`~napari_invimg.reconstruct` (over all frames);
    ``pixel_size_um`` and ``axes`` describe the data for a tiled run's OME-Zarr output; ``pilot`` (``"frame"`` or
    ``"bounded"``, see :func:`~napari_invimg.tiling.reconstruct_tiled`) overrides the recipe's.
    """
    recipe = load_recipe(recipe)
    specs = recipe["operator"] if isinstance(recipe["operator"], list) else [recipe["operator"]]
    nd = recipe_ndim(specs[0])
    noise = None if str(recipe.get("noise_source", "given")).startswith("estimated") or "noise" not in recipe \
        else noise_from_spec(recipe["noise"])
    kwargs = dict(method=recipe["method"], noise=noise, seed=recipe.get("seed", 0),
                  device=device if device is not None else _usable(recipe.get("device")), **recipe.get("params", {}))
    if recipe.get("calibration"):
        kwargs["calibration"] = recipe["calibration"]["scale"]
    if data.ndim < nd:
        raise ValueError(f"The recipe's operator works on {nd}-D images; the data have {data.ndim} dimensions.")
    spatial = tuple(int(s) for s in data.shape[data.ndim - nd:])
    if type(data).__module__.startswith("dask"):
        tiling = recipe.get("tiling", {})
        ops = [recipe_operator(s, _small_shape(s, spatial)) for s in specs]
        return reconstruct(data, ops if len(ops) > 1 else ops[0], progress=progress, output=output,
                           pixel_size_um=pixel_size_um, axes=axes, tile_shape=tiling.get("tile_shape"),
                           halo=tiling.get("halo"), channel_axis=tiling.get("channel_axis"),
                           pilot=pilot or tiling.get("pilot", "frame"), **kwargs)
    data = np.asarray(data)
    if len(specs) > 1:
        raise ValueError("This recipe holds one operator per channel (a tiled run); replay it on a dask array.")
    A = recipe_operator(specs[0], spatial)
    if data.ndim == nd:
        return reconstruct(data, A, progress=progress, **kwargs)
    return _frames(data, A, nd, progress, kwargs)


def _frames(data: np.ndarray, A: Operator, nd: int, progress: Callable | None, kwargs: dict) -> Reconstruction:
    """Replay frame by frame over the leading axes and stack the results."""
    lead = data.shape[: data.ndim - nd]
    n = int(np.prod(lead))
    means, stds, info = [], [], {}
    for k, idx in enumerate(np.ndindex(*lead)):
        def frame_progress(i, total, preview, k=k):
            return None if progress is None else progress(k * total + i, n * total, preview)

        rec = reconstruct(data[idx], A, progress=frame_progress, **kwargs)
        means.append(rec.mean)
        stds.append(rec.std)
        info = rec.info
    mean = np.stack(means).reshape(data.shape)
    std = None if stds[0] is None else np.stack(stds).reshape(data.shape)
    return Reconstruction(mean=mean, std=std, info={**info, "frames": n})
