"""Files without napari (floor 1): TIFF / OME-TIFF and OME-Zarr with physical pixel sizes, and recipes.

    img = ni.io.imread("stack.ome.tif")     # img.data, img.pixel_size_um (z, y, x), img.axes, img.metadata
    ni.io.imwrite("out.ome.zarr", rec.mean, pixel_size_um=img.pixel_size_um)
    ni.io.save_recipe(rec, "recipe.json"); recipe = ni.io.load_recipe("recipe.json")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._image import Image, OutputExistsError, UnsupportedFileError, default_axes
from .ome_zarr import is_zarr, probe_zarr, read_zarr, write_zarr
from .recipe import load_recipe, recipe_from, save_recipe
from .tiff import probe_tiff, read_tiff, write_tiff

__all__ = ["Image", "imread", "imwrite", "probe", "save_recipe", "load_recipe", "recipe_from", "default_axes",
           "SUFFIXES", "OutputExistsError", "UnsupportedFileError"]

#: file name endings these functions read and write
SUFFIXES = (".ome.tif", ".ome.tiff", ".tif", ".tiff", ".ome.zarr", ".zarr")


def _kind(path: str | os.PathLike, reading: bool = True) -> str:
    name = Path(path).name.lower().rstrip("/")
    if name.endswith(".zarr") or (reading and is_zarr(path)):
        return "zarr"
    if name.endswith((".tif", ".tiff", ".btf", ".tf2")):
        return "tiff"
    raise ValueError(f"{Path(path).name}: unknown image format; napari-invimg reads and writes "
                     f"{', '.join(SUFFIXES)}.")


def imread(path: str | os.PathLike, lazy: bool | None = None) -> Image:
    """Read an image with its physical pixel sizes (µm) and, from OME metadata, NA / wavelength / immersion.

    OME-Zarr is always lazy (dask); a TIFF is lazy when ``lazy=True`` or when it is larger than a quarter of
    the available memory. Missing pixel sizes are assumed to be 1 µm, with a warning, and listed in
    ``metadata["assumed"]``.
    """
    if _kind(path) == "zarr":
        return read_zarr(path)
    return read_tiff(path, lazy=lazy)


def probe(path: str | os.PathLike) -> tuple[tuple[int, ...], Any]:
    """Shape and dtype of the image in ``path`` without reading its pixels.

    Raises :class:`UnsupportedFileError` (a ``ValueError``) for a readable file that napari-invimg does
    not take (not a TIFF, an RGB TIFF, a Zarr group without OME-NGFF metadata), and a plain
    ``ValueError`` naming the file for a missing, damaged or truncated one.
    """
    try:
        kind = _kind(path)
    except ValueError as exc:
        raise UnsupportedFileError(str(exc)) from None
    if kind == "zarr":
        return probe_zarr(path)
    shape, dtype, _axes = probe_tiff(path)
    return shape, dtype


def imwrite(path: str | os.PathLike, data, pixel_size_um, axes: str | None = None,
            metadata: dict[str, Any] | None = None, overwrite: bool = True) -> Path:
    """Write a numpy or dask array as OME-TIFF / ImageJ-TIFF / OME-Zarr (from the name) with pixel sizes.

    ``pixel_size_um``: one size per spatial axis (``(z, y, x)`` or ``(y, x)``) or one number for all.
    ``axes`` defaults to ``"yx"``, ``"zyx"``, ``"tzyx"``, ``"tczyx"`` by dimension. The file appears under
    its name only once it is complete. An existing ``path`` is replaced only by a file of the same kind (a
    TIFF by a TIFF, an OME-Zarr store written by napari-invimg by an OME-Zarr); anything else there (a
    folder, another file) is left untouched and :class:`OutputExistsError` is raised. A plain ``.tif``
    is an ImageJ hyperstack when ImageJ can hold the data, else OME-TIFF (see
    :func:`~napari_invimg.io.tiff.write_tiff`); ``metadata["invimg"]`` (a recipe) is kept in every format.
    """
    if isinstance(data, Image):
        axes = axes or data.axes
        metadata = {**data.metadata, **(metadata or {})}
        data = data.data
    if _kind(path, reading=False) == "zarr":
        return write_zarr(path, data, pixel_size_um, axes=axes, overwrite=overwrite,
                          attrs={"invimg": metadata["invimg"]} if metadata and "invimg" in metadata else None)
    return write_tiff(path, data, pixel_size_um, axes=axes, metadata=metadata, overwrite=overwrite)
