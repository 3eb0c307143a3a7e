"""The in-memory description of an image file: data (numpy or lazy dask), axes, physical pixel sizes."""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Image", "default_axes", "check_axes", "spatial_sizes", "atomic_output", "assume_pixel_sizes"]

SPATIAL = "zyx"


@dataclass
class Image:
    """An image read from a file.

    ``data`` is a numpy array, or a dask array for files larger than comfortable memory; ``axes`` names
    its axes with letters from ``"tczyx"`` (e.g. ``"zyx"``, ``"tczyx"``); ``pixel_size_um`` has one
    size in µm per spatial axis, in order (``(z, y, x)`` for a stack, ``(y, x)`` for a plane).
    ``metadata`` holds what the file says about the optics (``na``, ``wavelength_um`` (emission),
    ``immersion_index``), ``source`` and ``assumed`` (the names of values the file did not give).
    """

    data: Any
    pixel_size_um: tuple[float, ...]
    axes: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.axes = check_axes(self.axes, self.data.ndim)
        self.pixel_size_um = tuple(float(p) for p in self.pixel_size_um)
        if len(self.pixel_size_um) != sum(a in SPATIAL for a in self.axes):
            raise ValueError(f"Axes {self.axes!r} have {sum(a in SPATIAL for a in self.axes)} spatial axes but "
                             f"{len(self.pixel_size_um)} pixel sizes were given.")

    @property
    def scale(self) -> tuple[float, ...]:
        """Per-axis scale for napari layers: the pixel size on spatial axes, 1 on time and channel axes."""
        sizes = iter(self.pixel_size_um)
        return tuple(next(sizes) if a in SPATIAL else 1.0 for a in self.axes)

    @property
    def spatial_ndim(self) -> int:
        return len(self.pixel_size_um)

    @property
    def lazy(self) -> bool:
        return type(self.data).__module__.startswith("dask")

    def __repr__(self) -> str:
        kind = "dask" if self.lazy else "numpy"
        return (f"Image({kind} {tuple(self.data.shape)} {self.data.dtype}, axes={self.axes!r}, "
                f"pixel_size_um={self.pixel_size_um})")


def default_axes(ndim: int) -> str:
    """Axes assumed for an array without axis names: the last 2 or 3 are space, leading ones time then channel."""
    if ndim < 2 or ndim > 5:
        raise ValueError(f"An image has 2 to 5 axes (t, c, z, y, x); got {ndim}.")
    return {2: "yx", 3: "zyx", 4: "tzyx", 5: "tczyx"}[ndim]


def check_axes(axes: str | None, ndim: int) -> str:
    """Validate an axes string against an array's dimensions (``None``: :func:`default_axes`)."""
    if axes is None:
        return default_axes(ndim)
    axes = axes.lower()
    if len(axes) != ndim:
        raise ValueError(f"Axes {axes!r} do not match an array with {ndim} dimensions.")
    if set(axes) - set("tczyx") or len(set(axes)) != len(axes):
        raise ValueError(f"Axes must be distinct letters from 'tczyx'; got {axes!r}.")
    if not axes.endswith("yx"):
        raise ValueError(f"The last two axes must be 'yx'; got {axes!r}.")
    return axes


def spatial_sizes(pixel_size_um, axes: str) -> tuple[float, ...]:
    """Pixel sizes for the spatial axes of ``axes``; a scalar means the same size on y and x (z too)."""
    n = sum(a in SPATIAL for a in axes)
    sizes = np.broadcast_to(np.asarray(pixel_size_um, dtype=np.float64), (n,)) if np.ndim(pixel_size_um) == 0 \
        else np.asarray(pixel_size_um, dtype=np.float64)
    if sizes.shape != (n,):
        raise ValueError(f"Give {n} pixel sizes ({', '.join(a for a in axes if a in SPATIAL)}) in µm; got {list(sizes)}.")
    if not np.all(np.isfinite(sizes) & (sizes > 0)):
        raise ValueError(f"Pixel sizes must be positive and finite (µm); got {list(sizes)}.")
    return tuple(float(s) for s in sizes)


def assume_pixel_sizes(found: Sequence[float | None], axes: str, path: str | os.PathLike,
                       metadata: dict[str, Any]) -> tuple[float, ...]:
    """Fill missing spatial pixel sizes with 1 µm, warn, and record what was assumed in ``metadata``."""
    names = [a for a in axes if a in SPATIAL]
    missing = [n for n, v in zip(names, found) if v is None or not np.isfinite(v) or v <= 0]
    if missing:
        msg = (f"{Path(path).name}: no physical pixel size for axis {', '.join(missing)}; assumed 1 µm. "
               f"Pass pixel_size_um= to set it.")
        warnings.warn(msg, UserWarning, stacklevel=3)
        metadata.setdefault("assumed", []).extend(f"pixel_size_{n}_um=1.0" for n in missing)
    return tuple(1.0 if n in missing else float(v) for n, v in zip(names, found))


@contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling path to write into; rename it to ``path`` only when the block succeeds.

    On any error (a full disk, a cancel) the temporary file or folder is removed and ``path`` is left as
    it was, so a half-written output is never mistaken for a finished one.
    """
    final = Path(path)
    if final.exists() and not overwrite:
        raise ValueError(f"{final} exists; choose another name or allow overwriting.")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        elif final.exists():
            final.unlink()
        os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
