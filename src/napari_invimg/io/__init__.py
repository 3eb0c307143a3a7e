"""Files without napari (floor 1): TIFF / OME-TIFF and OME-Zarr with physical pixel sizes, and recipes.

    img = ni.io.imread("stack.ome.tif")     # img.data, img.pixel_size_um (z, y, x), img.axes, img.metadata
    ni.io.imwrite("out.ome.zarr", rec.mean, pixel_size_um=img.pixel_size_um)
    ni.io.save_recipe(rec, "recipe.json"); recipe = ni.io.load_recipe("recipe.json")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._image import Image, default_axes
from .ome_zarr import is_zarr, read_zarr, write_zarr
from .recipe import load_recipe, recipe_from, save_recipe
from .tiff import read_tiff, write_tiff

__all__ = ["Image", "imread", "imwrite", "save_recipe", "load_recipe", "recipe_from", "default_axes",
           "SUFFIXES"]

#: file name endings these functions read and write
SUFFIXES = (".ome.tif", ".ome.tiff", ".tif", ".tiff", ".ome.zarr", ".zarr")


def _kind(path: str | os.PathLike) -> str:
    name = Path(path).name.lower().rstrip("/")
    if name.endswith(".zarr") or is_zarr(path):
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


def imwrite(path: str | os.PathLike, data, pixel_size_um, axes: str | None = None,
            metadata: dict[str, Any] | None = None, overwrite: bool = True) -> Path:
    """Write a numpy or dask array as OME-TIFF / ImageJ-TIFF / OME-Zarr (from the name) with pixel sizes.

    ``pixel_size_um``: one size per spatial axis (``(z, y, x)`` or ``(y, x)``) or one number for all.
    ``axes`` defaults to ``"yx"``, ``"zyx"``, ``"tzyx"``, ``"tczyx"`` by dimension. The file appears under
    its name only once it is complete.
    """
    if isinstance(data, Image):
        axes = axes or data.axes
        metadata = {**data.metadata, **(metadata or {})}
        data = data.data
    if _kind(path) == "zarr":
        return write_zarr(path, data, pixel_size_um, axes=axes, overwrite=overwrite,
                          attrs={"invimg": metadata["invimg"]} if metadata and "invimg" in metadata else None)
    return write_tiff(path, data, pixel_size_um, axes=axes, metadata=metadata, overwrite=overwrite)
