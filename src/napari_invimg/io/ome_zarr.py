"""OME-Zarr (OME-NGFF) images: one multiscale image per group, physical pixel sizes as scale transforms.

Written as NGFF 0.4 on the Zarr v2 format (what most viewers read today); read NGFF 0.4 and 0.5
(Zarr v3, metadata under ``"ome"``). :func:`write_pyramid` adds downsampled levels ``"1"``, ``"2"``, … (2×2
block means in y and x, z and other axes kept) to an image written at full resolution, so a viewer shows a
large result from its smallest level first; :func:`read_levels` returns every level (napari's multiscale
layer data).
Reference: Moore et al., *OME-NGFF*, Nat. Methods 18 (2021) 1496; https://ngff.openmicroscopy.org/0.4/.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ._image import (SPATIAL, ZARR_CREATOR, Image, UnsupportedFileError, assume_pixel_sizes, atomic_output, check_axes,
                     spatial_sizes)

__all__ = ["read_zarr", "write_zarr", "probe_zarr", "create_image", "multiscales", "is_zarr", "write_pyramid",
           "read_levels"]

NGFF_VERSION = "0.4"
_AXIS_TYPE = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


def is_zarr(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.suffix.lower() == ".zarr" or (p.is_dir() and any((p / m).exists() for m in (".zgroup", "zarr.json")))


def multiscales(axes: str, pixel_size_um, name: str = "image") -> list[dict[str, Any]]:
    """The NGFF ``multiscales`` metadata of a single-level image with the given pixel sizes."""
    sizes = iter(spatial_sizes(pixel_size_um, axes))
    scale = [next(sizes) if a in SPATIAL else 1.0 for a in axes]
    ax = [{"name": a, "type": _AXIS_TYPE[a], **({"unit": "micrometer"} if a in SPATIAL else {})} for a in axes]
    return [{
        "version": NGFF_VERSION,
        "name": name,
        "axes": ax,
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
    }]


def create_image(path: str | os.PathLike, shape, chunks, dtype, pixel_size_um, axes: str | None = None,
                 name: str = "image", attrs: dict[str, Any] | None = None):
    """Create an empty OME-Zarr image group at ``path`` and return its level-0 Zarr array.

    The group attributes carry ``"_creator": {"name": "napari-invimg", "version": …}``, the mark by which
    a later write recognizes a store it may replace (:func:`~napari_invimg.io._image.is_our_zarr`).
    """
    import zarr

    from .._version import __version__

    axes = check_axes(axes, len(shape))
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.attrs.update({"multiscales": multiscales(axes, pixel_size_um, name),
                        "_creator": {"name": ZARR_CREATOR, "version": __version__}, **(attrs or {})})
    return group.create_array("0", shape=tuple(int(s) for s in shape), chunks=tuple(int(c) for c in chunks),
                              dtype=np.dtype(dtype), fill_value=0)


def _default_chunks(shape, itemsize: int, target_bytes: int = 8 * 2**20) -> tuple[int, ...]:
    """Chunks of about 8 MiB: one plane deep on leading axes, square-ish in y and x."""
    chunks = [1] * (len(shape) - 2) + [min(shape[-2], 1024), min(shape[-1], 1024)]
    while np.prod(chunks) * itemsize > target_bytes and max(chunks[-2:]) > 64:
        i = -2 if chunks[-2] >= chunks[-1] else -1
        chunks[i] = max(chunks[i] // 2, 1)
    if len(shape) >= 3:  # fill z with several planes while under the target
        while chunks[-3] < shape[-3] and np.prod(chunks) * 2 * itemsize <= target_bytes:
            chunks[-3] = min(chunks[-3] * 2, shape[-3])
    return tuple(chunks)


def write_zarr(path: str | os.PathLike, data, pixel_size_um, axes: str | None = None,
               chunks: tuple[int, ...] | None = None, name: str = "image",
               attrs: dict[str, Any] | None = None, overwrite: bool = True) -> Path:
    """Write a numpy or dask array as an OME-Zarr image (atomically: a temporary name, then a rename)."""
    import dask.array as da

    axes = check_axes(axes, data.ndim)
    dtype = np.dtype(data.dtype)
    if chunks is None:
        chunks = _default_chunks(data.shape, dtype.itemsize)
    with atomic_output(path, overwrite=overwrite, kind="ome-zarr") as tmp:
        arr = create_image(tmp, data.shape, chunks, dtype, pixel_size_um, axes, name, attrs)
        if isinstance(data, da.Array):
            da.store(data.rechunk(chunks), arr, lock=False)
        else:
            arr[...] = np.asarray(data)
    return Path(path)


def write_pyramid(path: str | os.PathLike, smallest: int = 256, factor: int = 2) -> int:
    """Add downsampled levels to the OME-Zarr image at ``path`` until y and x are at most ``smallest``.

    Level ``k`` is the mean of ``factor × factor`` blocks of level ``k − 1`` in y and x (other axes as they
    are; a trailing row or column that does not fill a block is dropped), computed chunk by chunk with dask
    from the level below, with the same chunk shape; its scale transform is level 0's times ``factor**k`` in
    y and x (NGFF ``multiscales``). Returns the number of levels. Write it inside the temporary output of an
    atomic write (or on a finished image: the metadata are updated last).
    """
    import dask.array as da
    import zarr

    if factor < 2 or smallest < 1:
        raise ValueError("A pyramid needs factor ≥ 2 and smallest ≥ 1.")
    group = zarr.open_group(str(path), mode="r+")
    attrs = dict(group.attrs)
    ms = _group_metadata(attrs)
    if not ms:
        raise ValueError(f"{path} has no OME-NGFF 'multiscales' metadata.")
    image = ms[0]
    axes = "".join(a["name"] if isinstance(a, dict) else a for a in image["axes"])
    base = image["datasets"][0]
    scale0 = next((t["scale"] for t in base["coordinateTransformations"] if t["type"] == "scale"), [1.0] * len(axes))
    yx = [axes.index("y"), axes.index("x")]
    level = group[base["path"]]
    chunks = level.chunks
    datasets = [base]
    k = 0
    while max(level.shape[i] for i in yx) > smallest and min(level.shape[i] for i in yx) >= factor:
        k += 1
        src = da.from_zarr(level)
        coarse = da.coarsen(np.mean, src, {i: factor for i in yx}, trim_excess=True).astype(level.dtype)
        level_chunks = tuple(min(c, n) for c, n in zip(chunks, coarse.shape))
        level = group.create_array(str(k), shape=coarse.shape, chunks=level_chunks, dtype=level.dtype,
                                   fill_value=0, overwrite=True)
        da.store(coarse.rechunk(level_chunks), level, lock=False)
        scale = [s * (factor ** k if i in yx else 1) for i, s in enumerate(scale0)]
        datasets.append({"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": scale}]})
    ms = [{**image, "datasets": datasets}] + list(ms[1:])
    if "ome" in attrs and isinstance(attrs["ome"], dict):
        group.attrs["ome"] = {**attrs["ome"], "multiscales": ms}
    else:
        group.attrs["multiscales"] = ms
    return len(datasets)


def read_levels(path: str | os.PathLike) -> list:
    """Every resolution level of the OME-Zarr image at ``path``, full resolution first (lazy dask arrays)."""
    import dask.array as da
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        return [da.from_zarr(node)]
    ms = _group_metadata(dict(node.attrs))
    if not ms:
        raise ValueError(f"{path} is a Zarr group without OME-NGFF 'multiscales' metadata; open one of its arrays.")
    return [da.from_zarr(node[d["path"]]) for d in ms[0]["datasets"]]


def _group_metadata(attrs: dict[str, Any]) -> list[dict[str, Any]] | None:
    if "ome" in attrs and isinstance(attrs["ome"], dict):  # NGFF 0.5
        return attrs["ome"].get("multiscales")
    return attrs.get("multiscales")


def _open_zarr(path: str | os.PathLike):
    """Open a Zarr array or group read-only; a clear :class:`ValueError` naming ``path`` when it is missing,
    empty or damaged. Returns ``(node, image_metadata | None)``; a group without NGFF ``multiscales``
    raises :class:`UnsupportedFileError`."""
    import zarr

    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p} does not exist.")
    if not p.is_dir():
        raise ValueError(f"{p.name} is a file, not a Zarr store (a folder).")
    if not any(p.iterdir()):
        raise ValueError(f"{p.name} is an empty folder, not a Zarr store (no .zgroup, .zarray or zarr.json).")
    try:
        node = zarr.open(str(p), mode="r")
    except Exception as exc:  # zarr raises many kinds (GroupNotFoundError, JSON errors, KeyError …)
        if not any((p / m).exists() for m in (".zgroup", ".zarray", "zarr.json")):
            raise UnsupportedFileError(f"{p.name} is a folder without Zarr metadata (.zgroup, .zarray or "
                                       f"zarr.json); it is not a Zarr store.") from None
        raise ValueError(f"{p.name} is a damaged Zarr store ({type(exc).__name__}: {exc}).") from None
    if isinstance(node, zarr.Array):
        return node, None
    try:
        ms = _group_metadata(dict(node.attrs))
    except Exception as exc:
        raise ValueError(f"{p.name} has damaged Zarr attributes ({type(exc).__name__}: {exc}).") from None
    if not ms or not isinstance(ms, list) or not isinstance(ms[0], dict) or not ms[0].get("datasets"):
        raise UnsupportedFileError(f"{p.name} is a Zarr group without OME-NGFF 'multiscales' metadata; "
                                   f"open one of its arrays.")
    return node, ms[0]


def probe_zarr(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the level-0 image of a Zarr store without reading its pixels; raises as :func:`read_zarr`."""
    node, image = _open_zarr(path)
    if image is None:
        return tuple(node.shape), np.dtype(node.dtype)
    level = image["datasets"][0].get("path")
    try:
        arr = node[level]
    except Exception as exc:
        raise ValueError(f"{Path(path).name}: its image level {level!r} cannot be opened ({type(exc).__name__}: "
                         f"{exc}).") from None
    return tuple(arr.shape), np.dtype(arr.dtype)


def read_zarr(path: str | os.PathLike) -> Image:
    """Read an OME-Zarr image lazily (a dask array of level 0) with its physical pixel sizes.

    A plain Zarr array (no NGFF metadata) is read too; its pixel sizes are then assumed (1 µm, with a
    warning, and listed in ``metadata["assumed"]``). A missing, empty or damaged store raises a
    :class:`ValueError` naming it.
    """
    import dask.array as da

    node, image = _open_zarr(path)
    metadata: dict[str, Any] = {"source": str(path), "format": "zarr"}
    if image is None:
        data = da.from_zarr(node)
        axes = check_axes(None, data.ndim)
        return Image(data, assume_pixel_sizes([None] * sum(a in SPATIAL for a in axes), axes, path, metadata),
                     axes, metadata)
    level = image["datasets"][0]
    try:
        data = da.from_zarr(node[level["path"]])
    except Exception as exc:
        raise ValueError(f"{Path(path).name}: its image level {level.get('path')!r} cannot be opened "
                         f"({type(exc).__name__}: {exc}).") from None
    axes_meta = image.get("axes")
    axes = "".join(a["name"] if isinstance(a, dict) else a for a in axes_meta) if axes_meta else None
    axes = check_axes(axes, data.ndim)
    scale = [1.0] * data.ndim
    for t in list(image.get("coordinateTransformations", [])) + list(level.get("coordinateTransformations", [])):
        if t.get("type") == "scale":
            scale = [s * f for s, f in zip(scale, t["scale"])]
    units = {a["name"]: a.get("unit") for a in axes_meta if isinstance(a, dict)} if axes_meta else {}
    factor = {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3, None: 1.0}
    found = []
    for a, s in zip(axes, scale):
        if a in SPATIAL:
            unit = units.get(a)
            found.append(s * factor[unit] if unit in factor else None)
    if not any(t.get("type") == "scale" for t in level.get("coordinateTransformations", [])):
        found = [None] * len(found)
    extra = {k: v for k, v in dict(node.attrs).items() if k not in ("multiscales", "ome")}
    metadata.update({"name": image.get("name"), "levels": len(image["datasets"]), **({"attrs": extra} if extra else {})})
    return Image(data, assume_pixel_sizes(found, axes, path, metadata), axes, metadata)
