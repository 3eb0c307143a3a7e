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

__all__ = ["Image", "default_axes", "check_axes", "spatial_sizes", "atomic_output", "assume_pixel_sizes",
           "check_replaceable", "is_our_zarr", "OutputExistsError", "UnsupportedFileError", "ZARR_CREATOR"]

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


class UnsupportedFileError(ValueError):
    """A readable file that napari-invimg does not take (an RGB TIFF, a Zarr group that is no OME-NGFF image,
    a file that is not a TIFF at all): another reader may. A damaged file of a kind we take raises a
    plain :class:`ValueError` instead."""


class OutputExistsError(FileExistsError, ValueError):
    """An output path is taken by something a writer will not replace (a folder, or a file of another kind).

    Both an :class:`OSError` (``FileExistsError``) and a :class:`ValueError`, so callers catching either see it.
    """


#: the leading bytes of each file kind a writer may replace
_MAGIC = {
    "tiff": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    "hdf5": (b"\x89HDF\r\n\x1a\n",),
    "fits": (b"SIMPLE  =",),
    "json": (b"{", b" ", b"\n", b"\r", b"\t", b"\xef\xbb\xbf{"),
    "torch": (b"PK\x03\x04",),
}
#: what each kind is called in messages
_KIND_NAME = {"tiff": "a TIFF file", "hdf5": "an HDF5 file", "fits": "a FITS file", "json": "a JSON file",
              "torch": "a weights file", "file": "a file", "ome-zarr": "an OME-Zarr store written by napari-invimg"}
#: the ``_creator`` name napari-invimg writes into the attributes of its OME-Zarr stores
ZARR_CREATOR = "napari-invimg"


def is_our_zarr(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding an OME-Zarr image group written by napari-invimg.

    Recognized by the group attributes (Zarr v2 ``.zattrs`` or v3 ``zarr.json``) holding NGFF
    ``multiscales`` and ``"_creator": {"name": "napari-invimg"}``.
    """
    import json

    p = Path(path)
    if not p.is_dir() or p.is_symlink():
        return False
    for meta in (p / ".zattrs", p / "zarr.json"):
        if meta.is_file():
            try:
                attrs = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return False
            if meta.name == "zarr.json":
                attrs = attrs.get("attributes", {}) if isinstance(attrs, dict) else {}
            if not isinstance(attrs, dict):
                return False
            creator = attrs.get("_creator")
            ngff = "multiscales" in attrs or isinstance(attrs.get("ome"), dict)
            return ngff and isinstance(creator, dict) and creator.get("name") == ZARR_CREATOR
    return False


def _file_is_kind(path: Path, kind: str) -> bool:
    """Whether the existing file ``path`` is of ``kind`` (read from its first bytes); an empty file is of any kind."""
    if kind == "file":
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    if not head:
        return True
    if kind == "hdf5":  # HDF5 allows a user block of 512, 1024, 2048 … bytes before the signature
        if head.startswith(_MAGIC["hdf5"]):
            return True
        with open(path, "rb") as fh:
            for offset in (512, 1024, 2048, 4096):
                fh.seek(offset)
                if fh.read(8) == _MAGIC["hdf5"][0]:
                    return True
        return False
    return head.startswith(_MAGIC.get(kind, (b"",)))


def check_replaceable(path: str | os.PathLike, kind: str = "file", overwrite: bool = True) -> None:
    """Refuse (:class:`OutputExistsError`) when ``path`` exists and a writer of ``kind`` must not replace it.

    ``kind``: ``"tiff"``, ``"hdf5"``, ``"fits"``, ``"json"``, ``"torch"`` (a file whose first bytes say
    so, or an empty file), ``"file"`` (any regular file) or ``"ome-zarr"`` (a store written by
    napari-invimg, see :func:`is_our_zarr`). A folder is replaced only by an ``"ome-zarr"`` writer and
    only when it is one of ours; nothing else is ever deleted.
    """
    final = Path(path)
    if not (final.exists() or final.is_symlink()):
        return
    if not overwrite:
        raise OutputExistsError(f"{final} exists; choose another name or allow overwriting.")
    what = _KIND_NAME.get(kind, kind)
    if final.is_dir() and not final.is_symlink():
        if kind == "ome-zarr" and is_our_zarr(final):
            return
        raise OutputExistsError(
            f"{final} is an existing folder that is not {what}; it is left untouched. "
            f"Choose another output name or move the folder away.")
    if kind == "ome-zarr":
        raise OutputExistsError(f"{final} is an existing file; an OME-Zarr store (a folder) will not replace it. "
                                f"Choose another output name.")
    if not final.is_file() and not final.is_symlink():
        raise OutputExistsError(f"{final} exists and is not a regular file; it is left untouched.")
    if not _file_is_kind(final, kind):
        raise OutputExistsError(f"{final} exists and is not {what}; it is left untouched. "
                                f"Choose another output name or remove the file yourself.")


@contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = True, kind: str = "file") -> Iterator[Path]:
    """Yield a temporary sibling path to write into; rename it to ``path`` only when the block succeeds.

    On any error (a full disk, a cancel) the temporary file or folder is removed and ``path`` is left as
    it was, so a half-written output is never mistaken for a finished one. An existing ``path`` is
    replaced only when it is of the same ``kind`` (see :func:`check_replaceable`): a TIFF by a TIFF, an
    OME-Zarr store of ours by an OME-Zarr store; a folder of anything else is never deleted.
    """
    final = Path(path)
    check_replaceable(final, kind, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    tmp = final.with_name(f".{final.name}.partial-{token}")
    old = final.with_name(f".{final.name}.replaced-{token}")
    try:
        yield tmp
        if not (tmp.exists() or tmp.is_symlink()):
            raise OSError(f"Nothing was written to {final}.")
        check_replaceable(final, kind, overwrite)  # again: it may have appeared while we wrote
        if final.is_dir() and not final.is_symlink():  # one of ours (checked): move aside, swap, then delete
            os.replace(final, old)
            try:
                os.replace(tmp, final)
            except BaseException:
                os.replace(old, final)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists() or tmp.is_symlink():
            tmp.unlink()
