"""Tiled reconstruction of arrays larger than memory, on dask (threads, or the active distributed Client).

For a shift-invariant operator (Identity, Blur) and a local method, the result at a pixel depends on the
data within a finite neighborhood. Each tile is therefore reconstructed in memory together with a halo
of neighboring data (``dask.array.map_overlap``) and the halo is cut away again: tiled and untiled
results agree up to the influence that leaks across the halo, which decays with its width. At the
array's outer edge no halo is added and each tile's own operator applies the untiled boundary (reflect,
zero), so edge tiles see exactly what the untiled operator sees.

A method tiles when its class declares a ``tile_profile`` (:class:`~napari_invimg.methods.registry.TileProfile`);
this module names no method. The choices a method makes from the whole image (the noise level, the iteration where
Richardson–Lucy stops and its extrapolation weights, its background offset, a plug-and-play scale) are fixed once by
the method's ``resolve_globals`` hook on a pilot run — over the whole frame when it fits a worker (the tiled result
then equals the untiled one), else over the largest central region within the memory budget (:func:`memory_budget`)
— and passed to every tile, so the tiles solve one problem and the result's ``info`` holds
everything needed to replay it. Tiles run with one torch thread each — the parallelism is across tiles — which also
makes the result bit-identical on the threaded scheduler and on a ``dask.distributed`` cluster. The tiles in
flight together hold at most 3/4 of the untiled run's working memory, and so does the pilot with
``pilot="bounded"`` (benchmarks/RESULTS.md §8).

Reference: Rocklin, *Dask: parallel computation with blocked algorithms and task scheduling*, SciPy 2015.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._device import resolve_device
from .core import calibrated, check_call, note_ignored, provenance, reconstruct_array
from .errors import Cancelled
from .methods import registry
from .methods.registry import TileProfile
from .operators.base import Operator, from_spec
from .operators.noise import NoiseModel, estimate
from .operators.noise import from_spec as noise_from_spec
from .uncertainty import Reconstruction
from .validation import check_noise, check_seed

__all__ = ["reconstruct_tiled", "TileProfile", "TilePlan", "plan_tiles", "pilot_choices", "execute_tiles", "tile_halo",
           "choose_tile_shape", "operator_for_shape", "active_client", "tileable_methods", "memory_budget", "padded_bytes"]


def _profile(cls: type[registry.Method]) -> TileProfile:
    if cls.tile_profile is None:
        raise ValueError(f"{cls.name!r} is not a local method, so it cannot run tile by tile; use one of "
                         f"{', '.join(tileable_methods())} on a dask array, or load the data into memory (np.asarray).")
    return cls.tile_profile


def tileable_methods() -> list[str]:
    """Registered methods that can run tile by tile on a dask array."""
    return [n for n in registry.available() if registry.get(n).tile_profile is not None]


def _on_grid(n: int, grid: int) -> int:
    return -(-n // grid) * grid


def tile_halo(A: Operator, method: str, params: dict[str, Any] | None = None) -> tuple[int, ...]:
    """Default halo per spatial axis for ``method`` on ``A``: the operator's halo times the method's factor plus a
    fixed margin and the method's own reach (e.g. a denoiser's receptive field, on its grid along the last two axes)."""
    cls = registry.get(method)
    profile = _profile(cls)
    checked = cls.tile_params(A, params or {})
    field, grid = cls.tile_reach(checked)
    extra = profile.min_halo + field
    factor = cls.tile_halo_factor(checked)
    halo = [int(math.ceil(factor * h)) + extra for h in A.halo()]
    return tuple(_on_grid(h, grid) if i >= A.ndim - 2 else h for i, h in enumerate(halo))


def operator_for_shape(spec: dict[str, Any], shape: Sequence[int]) -> Operator:
    """Rebuild an operator from its spec on another image shape (a tile)."""
    if "shape" not in spec:
        raise ValueError(f"A {spec.get('type')} operator has no shape parameter, so it cannot be tiled.")
    return from_spec({**spec, "shape": [int(s) for s in shape]})


def active_client():
    """The active ``dask.distributed`` Client, or ``None`` (then the threaded scheduler runs the tiles)."""
    try:
        from distributed import get_client
    except ImportError:
        return None
    try:
        return get_client()
    except ValueError:
        return None


def _workers(client) -> tuple[int, float]:
    """Number of parallel tile slots and memory per slot (bytes)."""
    import psutil

    if client is not None:
        info = client.scheduler_info(n_workers=-1)["workers"] if _accepts_n_workers(client) \
            else client.scheduler_info()["workers"]
        slots = sum(w.get("nthreads", 1) for w in info.values()) or 1
        limits = [w.get("memory_limit") or 0 for w in info.values()]
        per_worker = min(limits) if limits and min(limits) > 0 else psutil.virtual_memory().available / max(len(info), 1)
        per_slot = per_worker / max(max(w.get("nthreads", 1) for w in info.values()), 1)
        return slots, 0.6 * per_slot
    slots = os.cpu_count() or 1
    return slots, 0.5 * psutil.virtual_memory().available / slots


def _accepts_n_workers(client) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def choose_tile_shape(spatial_shape: Sequence[int], halo: Sequence[int], bytes_per_voxel: float,
                      memory_bytes: float, min_tiles: int = 1, strict: bool = True) -> tuple[int, ...]:
    """Largest tile (halving the longest axis) whose padded size × ``bytes_per_voxel`` fits
    ``memory_bytes``, with at least ``min_tiles`` tiles when the axes allow it; never thinner than its halo.
    When even the smallest tile does not fit, raise (``strict``) or return that smallest tile."""
    tile = [int(s) for s in spatial_shape]
    floor = [max(2 * h, 16) for h in halo]

    def padded(t):
        return padded_bytes(t, halo, bytes_per_voxel, spatial_shape)

    def n_tiles(t):
        return int(np.prod([math.ceil(s / ti) for s, ti in zip(spatial_shape, t)]))

    while padded(tile) > memory_bytes or n_tiles(tile) < min_tiles:
        # halve the axis with the most tiles-worth of room, lateral axes first on ties
        candidates = [i for i in range(len(tile)) if tile[i] // 2 >= floor[i]]
        if not candidates:
            if padded(tile) > memory_bytes and strict:
                raise ValueError(f"Even the smallest tile {tuple(tile)} with halo {tuple(halo)} needs "
                                 f"{padded(tile) / 2**30:.2f} GiB, more than the {memory_bytes / 2**30:.2f} GiB "
                                 f"available per worker; free memory or give a smaller halo.")
            break
        i = max(candidates, key=lambda j: (tile[j] / max(halo[j], 1), j))
        tile[i] = (tile[i] + 1) // 2
    return tuple(tile)


#: tiles in flight (and the pilot region) hold at most this fraction of the untiled run's working memory
UNTILED_FRACTION = 0.75


def padded_bytes(tile: Sequence[int], halo: Sequence[int], bytes_per_voxel: float,
                 shape: Sequence[int] | None = None) -> float:
    """Working memory of one tile with its halo on both sides (no longer than the array's ``shape``):
    voxels × ``bytes_per_voxel``."""
    shape = shape if shape is not None else [t + 2 * h for t, h in zip(tile, halo)]
    return float(np.prod([min(t + 2 * h, n) for t, h, n in zip(tile, halo, shape)])) * bytes_per_voxel


def memory_budget(spatial_shape: Sequence[int], bytes_per_voxel: float, slots: int, per_slot: float) -> float:
    """Bytes that the tiles in flight may hold together: what the slots allow, and at most
    :data:`UNTILED_FRACTION` of the untiled run's working memory (one frame × ``bytes_per_voxel``), so that a
    tiled run never peaks above an untiled one of the same frame."""
    untiled = float(np.prod([int(s) for s in spatial_shape])) * bytes_per_voxel
    return min(slots * per_slot, UNTILED_FRACTION * untiled)


def _regular_chunk(n: int, tile: int, depth: int, grid: int = 1) -> int:
    """A chunk size near ``tile``, a multiple of ``grid`` (or ``n``), whose last (remainder) chunk is at least
    ``depth`` long."""
    tile = min(max(tile, depth, 1), n)
    for t in list(range(tile, max(tile // 2, depth, 1) - 1, -1)) + list(range(tile + 1, n + 1)):
        rem = n % t
        if (rem == 0 or rem >= depth) and (t % grid == 0 or t == n):
            return t
    return n


def _as_operators(A, y_shape: tuple[int, ...], channel_axis: int | None) -> tuple[list[Operator], int | None]:
    ops = list(A) if isinstance(A, (list, tuple)) else [A]
    if not ops or not all(isinstance(a, Operator) for a in ops):
        raise ValueError("A must be a napari_invimg operator (or one operator per channel).")
    nd = ops[0].ndim
    if any(a.ndim != nd for a in ops):
        raise ValueError("The per-channel operators must all have the same number of dimensions.")
    for a in ops:
        if not a.shift_invariant:
            raise ValueError(f"Tiled processing needs a shift-invariant operator (Identity, Blur); {a.name} is not. "
                             "Load the data into memory (np.asarray) to reconstruct it in one piece.")
    n_lead = len(y_shape) - nd
    if n_lead < 0:
        raise ValueError(f"The data have {len(y_shape)} dimensions but the operator works on {nd}.")
    if len(ops) == 1:
        return ops, None
    if channel_axis is None:
        matches = [i for i in range(n_lead) if y_shape[i] == len(ops)]
        if not matches:
            raise ValueError(f"{len(ops)} operators were given (one per channel) but no leading axis of the data "
                             f"{y_shape} has that length.")
        channel_axis = matches[-1]
    if not 0 <= channel_axis < n_lead or y_shape[channel_axis] != len(ops):
        raise ValueError(f"channel_axis={channel_axis} must be a leading axis of length {len(ops)}.")
    return ops, channel_axis


def _full_spec(A: Operator, shape: Sequence[int]) -> dict[str, Any]:
    spec = A.spec()
    if "shape" in spec:
        spec["shape"] = [int(s) for s in shape]
    return spec


def _tile_seed(seed: int | None, location: Sequence[int]) -> int | None:
    if seed is None:
        return None
    return int(np.random.SeedSequence([int(seed), *map(int, location)]).generate_state(1)[0] % (2**31 - 1))


def _out_dtype(with_std: bool) -> np.dtype:
    return np.dtype([("mean", "f4"), ("std", "f4")]) if with_std else np.dtype("f4")


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or ``None`` (macOS, Windows, musl)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Give the memory a finished tile freed back to the system. glibc keeps freed blocks in one arena per thread,
    so tiles solved on several threads would otherwise add up to more resident memory than the untiled run
    (RL 32×512×512: 1.37× the untiled peak without, 0.86× with one arena; benchmarks/RESULTS.md §8)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _solve_block(block: np.ndarray, block_info=None, *, specs: list[dict], spatial: int, channel_axis: int | None,
                 method: str, noise_spec: dict, seed: int | None, device, params: dict, with_std: bool,
                 tile_seeds: bool) -> np.ndarray:
    """Reconstruct every frame of one padded tile in memory (runs on a dask worker or thread)."""
    torch.set_num_threads(1)
    location = tuple(block_info[0]["chunk-location"]) if block_info else (0,) * block.ndim
    n_lead = block.ndim - spatial
    noise = noise_from_spec(noise_spec)
    out = np.empty(block.shape, dtype=_out_dtype(with_std))
    for idx in np.ndindex(*block.shape[:n_lead]):
        frame_index = tuple(location[i] + idx[i] for i in range(n_lead))  # leading chunks are 1 long
        spec = specs[frame_index[channel_axis]] if channel_axis is not None else specs[0]
        A = operator_for_shape(spec, block.shape[n_lead:])
        rec = reconstruct_array(np.asarray(block[idx], dtype=np.float32), A, method, noise,
                          seed=_tile_seed(seed, location) if tile_seeds else seed, device=device, **params)
        if with_std:
            out["mean"][idx] = rec.mean
            out["std"][idx] = rec.std
        else:
            out[idx] = rec.mean
        del rec
        release_free_memory()
    return out


# -- plan, pilot, execute ----------------------------------------------------------------------------
def _central_region(shape: Sequence[int], n_lead: int, tile: Sequence[int], halo: Sequence[int]
                    ) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """(padded, core) slices of the tile at the center of the array (first frame of leading axes)."""
    padded, core = [slice(0, 1)] * n_lead, [slice(0, 1)] * n_lead
    for n, t, h in zip(shape[n_lead:], tile, halo):
        start = max((n - t) // 2, 0)
        stop = min(start + t, n)
        padded.append(slice(max(start - h, 0), min(stop + h, n)))
        core.append(slice(start, stop))
    return tuple(padded), tuple(core)


# -- execution with progress and cancel -------------------------------------------------------------
def _write_block(block: np.ndarray, block_info=None, *, path: str, with_std: bool) -> np.ndarray:
    """Write one finished tile into the (temporary) Zarr store; fails if the store was removed (cancel)."""
    import zarr

    region = tuple(slice(a, b) for a, b in block_info[0]["array-location"])
    if with_std:
        zarr.open_array(f"{path}/0", mode="r+")[region] = block["mean"]
        zarr.open_array(f"{path}/std/0", mode="r+")[region] = block["std"]
    else:
        zarr.open_array(f"{path}/0", mode="r+")[region] = block
    return np.ones((1,) * block.ndim, dtype=np.int8)


def _run_tiles(tasks: list, client, progress: Callable | None, in_flight: int = 1) -> None:
    """Compute the per-tile write tasks, at most ``in_flight`` at once (each tile is written to the store as it
    finishes and then dropped), reporting ``progress(done, total, None)``; ``False`` cancels."""
    total = len(tasks)
    in_flight = max(1, int(in_flight))

    def report(done: int) -> None:
        if progress is not None and progress(done, total, None) is False:
            raise Cancelled("tiled reconstruction cancelled")

    report(0)
    if client is not None:
        from distributed import as_completed

        queue = iter(tasks)
        futures = client.compute([t for _, t in zip(range(in_flight), queue)])
        running = as_completed(futures)
        try:
            for done, fut in enumerate(running, start=1):
                fut.result()
                fut.release()
                report(done)
                following = next(queue, None)
                if following is not None:
                    running.add(client.compute(following))
        except BaseException:
            client.cancel(list(running.futures))
            raise
        return
    import dask

    queue = iter(tasks)
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        pending = {pool.submit(dask.compute, t, scheduler="sync") for _, t in zip(range(in_flight), queue)}
        done = 0
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    f.result()
                    done += 1
                    report(done)
                    following = next(queue, None)
                    if following is not None:
                        pending.add(pool.submit(dask.compute, following, scheduler="sync"))
        except BaseException:
            for f in pending:
                f.cancel()
            raise  # leaving the with-block waits for the tiles already running


@dataclass
class TilePlan:
    """Where the tiles lie: per-channel operators and specs, spatial tile shape and halo, the denoiser grid, the
    pilot region, the scheduler and how many tiles may be in memory at once (``in_flight``)."""

    ops: list[Operator]
    specs: list[dict[str, Any]]
    channel_axis: int | None
    n_lead: int
    tile: tuple[int, ...]
    depth: tuple[int, ...]
    pilot_tile: tuple[int, ...]
    with_std: bool
    client: Any
    in_flight: int = 1

    @property
    def spatial(self) -> int:
        return len(self.tile)


def plan_tiles(y, A, cls: type[registry.Method], params: dict[str, Any], tile_shape: Sequence[int] | None = None,
               halo: int | Sequence[int] | None = None, channel_axis: int | None = None,
               tile_memory_bytes: float | None = None, pilot: str = "frame") -> tuple[TilePlan, dict[str, Any]]:
    """Check the problem tiles, choose tile shape, halo and pilot region; returns the plan and the method's
    parameters checked for tiles (:meth:`~napari_invimg.methods.registry.Method.tile_params`).

    ``pilot="frame"``: the global choices come from the whole frame when one untiled frame fits a worker's memory
    (the tiled result is then the untiled one's, to the tiles' rounding), else from the largest central region
    within the memory budget; ``pilot="bounded"``: always the region within the budget (a tiled run then never peaks
    above an untiled one, at the price of global choices made on part of the image)."""
    if pilot not in ("frame", "bounded"):
        raise ValueError(f"pilot must be 'frame' or 'bounded', got {pilot!r}.")
    profile = _profile(cls)
    ops, channel_axis = _as_operators(A, tuple(y.shape), channel_axis)
    spatial = ops[0].ndim
    n_lead = y.ndim - spatial
    spatial_shape = tuple(int(s) for s in y.shape[n_lead:])
    for a in ops:
        reason = cls.supports(a)
        if reason:
            raise ValueError(reason)
        params = cls.tile_params(a, params)
    grid = cls.tile_reach(params)[1]
    if grid > 1 and any(getattr(a, "boundary", None) == "circular" for a in ops):
        raise ValueError(f"The {params.get('denoiser') or cls.name!r} {'denoiser' if params.get('denoiser') else 'method'} pads each image at its end, not periodically: with a "
                         f"circular-boundary operator its tiles would differ at the array's edges. Use boundary "
                         f"'reflect' or 'zero', or denoiser='tv'.")
    with_std = bool(cls.returns_std)
    if halo is None:
        depth = tuple(max(h) for h in zip(*(tile_halo(a, cls.name, params) for a in ops)))
    else:
        depth = tuple(int(h) for h in np.broadcast_to(np.asarray(halo), (spatial,)))
        if min(depth) < 0:
            raise ValueError("The halo must be non-negative.")
        # tiles of a denoiser with a grid must start on it: halos along the last two axes on the grid too
        depth = tuple(_on_grid(h, grid) if i >= spatial - 2 else h for i, h in enumerate(depth))
    client = active_client()
    slots, per_slot = _workers(client)
    if tile_memory_bytes is not None:
        per_slot = float(tile_memory_bytes)
    bytes_per_voxel = 4.0 * profile.work_arrays * (3 if with_std else 1)
    budget = memory_budget(spatial_shape, bytes_per_voxel, slots, per_slot)
    if tile_shape is None:
        min_tiles = max(1, -(-slots // max(int(np.prod(y.shape[:n_lead])), 1)))
        tile = choose_tile_shape(spatial_shape, depth, bytes_per_voxel, min(per_slot, budget / slots),
                                 min_tiles=min_tiles, strict=False)
        if padded_bytes(tile, depth, bytes_per_voxel, spatial_shape) > per_slot:  # the memory there is: raise
            tile = choose_tile_shape(spatial_shape, depth, bytes_per_voxel, per_slot, min_tiles=min_tiles)
    else:
        tile = tuple(int(t) for t in tile_shape)
        if len(tile) != spatial or min(tile) < 1:
            raise ValueError(f"tile_shape needs {spatial} positive sizes, got {tile_shape}.")
    tile = tuple(_regular_chunk(n, t, d, grid if i >= spatial - 2 else 1)
                 for i, (n, t, d) in enumerate(zip(spatial_shape, tile, depth)))
    depth = tuple(0 if t >= n else d for n, t, d in zip(spatial_shape, tile, depth))
    # at most `budget` bytes of tiles in flight, and a pilot region within it: never more than the untiled run
    tile_bytes = padded_bytes(tile, depth, bytes_per_voxel, spatial_shape)
    in_flight = max(1, min(slots, int(budget // tile_bytes)))
    whole_frame = padded_bytes(spatial_shape, (0,) * spatial, bytes_per_voxel, spatial_shape)
    if pilot == "frame" and whole_frame <= per_slot:
        pilot_tile = spatial_shape
    else:
        pilot_tile = choose_tile_shape(spatial_shape, depth, bytes_per_voxel, max(budget, tile_bytes, 1.0))
    specs = [_full_spec(a, spatial_shape) for a in ops]
    return TilePlan(ops, specs, channel_axis, n_lead, tile, depth, pilot_tile, with_std, client, in_flight), params


def pilot_choices(y, plan: TilePlan, cls: type[registry.Method], noise: NoiseModel | None, params: dict[str, Any],
                  seed: int | None, device) -> tuple[NoiseModel, str, dict[str, Any]]:
    """The noise model (estimated on the pilot region when not given) and the method's global choices
    (:meth:`~napari_invimg.methods.registry.Method.resolve_globals`), from the largest central region that fits."""
    n_lead = plan.n_lead
    padded, core = _central_region(y.shape, n_lead, plan.pilot_tile, plan.depth)
    data = None

    def pilot_frame() -> np.ndarray:
        nonlocal data
        if data is None:
            block = np.asarray(y[padded].compute(), dtype=np.float32)
            data = block.reshape(block.shape[n_lead:])
        return data

    noise_source = "given"
    if noise is None:
        cy = tuple(slice(c.start - p.start, c.stop - p.start) for c, p in zip(core[n_lead:], padded[n_lead:]))
        noise = estimate(pilot_frame()[cy])
        noise_source = "estimated (pilot region)"
    elif not isinstance(noise, NoiseModel):
        raise ValueError(f"noise must be a napari_invimg noise model, got {type(noise).__name__}.")
    if np.ndim(noise.sigma) != 0:
        raise ValueError("Tiled processing needs a scalar noise sigma, not a per-pixel map.")

    def pilot(p: dict) -> Reconstruction:
        torch.set_num_threads(1)
        frame = pilot_frame()
        return reconstruct_array(frame, operator_for_shape(plan.specs[0], frame.shape), cls.name, noise, seed=seed,
                                 device=device, **p)

    frames = int(np.prod(y.shape[:n_lead]))
    resolved = cls.resolve_globals(pilot, y, noise, params, frames=frames)
    release_free_memory()  # the pilot's arrays, before the tiles start
    return noise, noise_source, resolved


def execute_tiles(y, plan: TilePlan, cls: type[registry.Method], noise: NoiseModel, params: dict[str, Any],
                  seed: int | None, device):
    """The lazy tiled result (``dask.array.map_overlap``): every padded tile reconstructed in memory, halo cut."""
    solve = partial(_solve_block, specs=plan.specs, spatial=plan.spatial, channel_axis=plan.channel_axis,
                    method=cls.name, noise_spec=noise.spec(), seed=seed, device=device, with_std=plan.with_std,
                    tile_seeds=cls.uncertainty is not None, params=params)
    boundary = "periodic" if any(s.get("boundary") == "circular" for s in plan.specs) else "none"
    depth_map = {plan.n_lead + i: d for i, d in enumerate(plan.depth)}
    dtype = _out_dtype(plan.with_std)
    return y.map_overlap(solve, depth=depth_map, boundary=boundary, trim=True, dtype=dtype,
                         meta=np.empty((0,) * y.ndim, dtype)), boundary


def reconstruct_tiled(
    y,
    A: Operator | Sequence[Operator],
    method: str = "richardson_lucy",
    noise: NoiseModel | None = None,
    seed: int | None = 0,
    device: str | torch.device | None = None,
    progress: Callable[[int, int, np.ndarray | None], Any] | None = None,
    calibration: Any = None,
    *,
    tile_shape: Sequence[int] | None = None,
    halo: int | Sequence[int] | None = None,
    output: str | os.PathLike | None = None,
    overwrite: bool = True,
    pixel_size_um: Sequence[float] | None = None,
    channel_axis: int | None = None,
    tile_memory_bytes: float | None = None,
    axes: str | None = None,
    pilot: str = "frame",
    **params: Any,
) -> Reconstruction:
    """Reconstruct a dask array tile by tile with overlapping halos (``dask.array.map_overlap``).

    ``y`` is (…, Y, X) or (…, Z, Y, X): leading axes (time, channel) are reconstructed frame by frame;
    ``A`` a shift-invariant operator (its own shape is ignored: each tile builds its operator from
    ``A.spec()`` on the tile's shape, so build ``A`` on a small shape for big data), or one operator per
    channel (``channel_axis``: the leading axis they belong to; default the last one of that length).
    ``tile_shape`` (spatial) defaults to the largest tile that fits ``tile_memory_bytes`` (default: the
    memory per worker thread, from psutil or the cluster's worker limits) and to the memory budget
    (:func:`memory_budget`: the tiles in flight together hold at most 3/4 of what the untiled run of one frame
    would; ``info["tiling"]["in_flight"]`` says how many tiles run at once); ``halo`` (pixels per side) to
    :func:`tile_halo`. The method's global choices (noise level, Richardson–Lucy's stop, …) are resolved on a
    pilot: the whole frame when it fits a worker (``pilot="frame"``, the default: the result equals the untiled
    one), else — or always with ``pilot="bounded"`` — the largest central region within the budget, so that a
    tiled run does not peak above an untiled one.
    With a learned denoiser (shift-equivariant only by multiples of its grid, 8 pixels) tiles and halos along
    the last two axes are moved up onto that grid, so every tile sees the network's sampling of the whole image. ``pixel_size_um`` and
    ``axes`` (e.g. ``"tczyx"``) describe the data for the OME-Zarr output.

    Without ``output`` the result is lazy: ``rec.mean`` (and ``rec.std`` where the method gives one) are
    dask arrays, computed by whatever scheduler computes them. With ``output`` (a ``.zarr`` path) the
    tiles are computed now — on the active ``dask.distributed`` Client if there is one, else on threads, at most
    ``in_flight`` at once, each written as it finishes —
    written to an OME-Zarr store under a temporary name that is renamed when every tile is done, and the
    returned arrays read lazily from it; ``progress(done, total, None)`` counts tiles and returning
    ``False`` cancels (the temporary store is removed and :class:`Cancelled` raised).
    """
    import dask.array as da

    if not isinstance(y, da.Array):
        raise ValueError(f"reconstruct_tiled needs a dask array, got {type(y).__name__}.")
    if np.issubdtype(y.dtype, np.complexfloating) or y.dtype.kind not in "biuf":
        raise ValueError(f"Tiled processing needs real numeric data, got dtype {y.dtype}.")
    seed = check_seed(seed)  # the same checks as reconstruct(), before any tile is computed
    if device is not None:
        resolve_device(device)
    if noise is not None:
        check_noise(noise, tuple(int(s) for s in y.shape))
    first = A[0] if isinstance(A, (list, tuple)) and A else A
    cls, params = check_call(method, first, params, calibration)
    plan, params = plan_tiles(y, A, cls, params, tile_shape, halo, channel_axis, tile_memory_bytes, pilot)
    y = y.rechunk((1,) * plan.n_lead + plan.tile, method="tasks")  # tasks, not a P2P shuffle: each tile reads its chunks
    prev_threads = torch.get_num_threads()
    try:
        user_params = dict(params)
        noise, noise_source, params = pilot_choices(y, plan, cls, noise, params, seed, device)
        result, boundary = execute_tiles(y, plan, cls, noise, params, seed, device)
        info = provenance(cls, user_params, plan.specs[0] if len(plan.specs) == 1 else plan.specs, noise,
                          noise_source, seed, device)
        note_ignored(cls, first, user_params, info)
        info["tiling"] = {"tile_shape": list(plan.tile), "halo": list(plan.depth), "tiles": int(np.prod(result.numblocks)),
                          "boundary": boundary, "pilot_shape": list(plan.pilot_tile), "resolved_params": params,
                          "pilot": pilot, "channel_axis": plan.channel_axis, "in_flight": plan.in_flight,
                          "scheduler": "distributed" if plan.client is not None else "threads"}
        if output is None:
            mean = result["mean"] if plan.with_std else result
            std = result["std"] if plan.with_std else None
            info["lazy"] = True
        else:
            mean, std = _compute_to_zarr(result, output, overwrite, plan.with_std, pixel_size_um, axes, plan.spatial,
                                         info, plan.client, progress, plan.in_flight)
    finally:
        torch.set_num_threads(prev_threads)
    std, _ = calibrated(std, None, mean, info, calibration)
    return Reconstruction(mean=mean, std=std, samples=None, info=info)


def _compute_to_zarr(result, output, overwrite: bool, with_std: bool, pixel_size_um, axes: str | None,
                     spatial: int, info: dict, client, progress, in_flight: int = 1):
    import dask.array as da

    from .io._image import atomic_output, default_axes
    from .io.ome_zarr import create_image, write_pyramid
    from .io.recipe import to_jsonable

    n_lead = result.ndim - spatial
    if axes is None:
        axes = default_axes(result.ndim) if n_lead == 0 else "tc"[:n_lead] + "zyx"[3 - spatial:]
    sizes = pixel_size_um if pixel_size_um is not None else (1.0,) * spatial
    chunks = tuple(c[0] for c in result.chunks)
    t0 = time.perf_counter()
    with atomic_output(output, overwrite=overwrite, kind="ome-zarr") as tmp:
        create_image(tmp, result.shape, chunks, "f4", sizes, axes, "mean", attrs={"invimg": to_jsonable(info)})
        if with_std:
            create_image(Path(tmp) / "std", result.shape, chunks, "f4", sizes, axes, "std")
        written = result.map_blocks(_write_block, path=str(tmp), with_std=with_std, dtype=np.int8,
                                    chunks=tuple((1,) * n for n in result.numblocks),
                                    meta=np.empty((0,) * result.ndim, np.int8))
        tasks = [written.blocks[idx] for idx in np.ndindex(*written.numblocks)]
        _run_tiles(tasks, client, progress, in_flight)
        info["tiling"]["levels"] = write_pyramid(tmp)  # downsampled levels: large results open at once
        if with_std:
            write_pyramid(Path(tmp) / "std")
    info["seconds"] = time.perf_counter() - t0
    info["tiling"]["store"] = str(output)
    mean = da.from_zarr(str(Path(output) / "0"))
    std = da.from_zarr(str(Path(output) / "std" / "0")) if with_std else None
    return mean, std
