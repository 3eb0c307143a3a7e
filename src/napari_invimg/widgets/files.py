"""napari reader and writer contributions: TIFF / OME-TIFF / OME-Zarr with physical pixel sizes.

The reader opens files lazily where they are large (OME-Zarr always) and sets each layer's ``scale`` from
the pixel sizes (µm), ``units`` and ``axis_labels`` from the axes; the optics found in OME metadata go to
``metadata["invimg_file"]`` so that the PSF workbench can use them. The writer stores a layer's ``scale``
as the pixel sizes and its ``metadata["invimg"]`` (the recipe) in Zarr attributes.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from .. import io

__all__ = ["get_reader", "read", "write_image", "layer_axes", "tiled_options", "results_folder", "prefer_invimg_reader",
           "READER_PATTERNS"]


def results_folder() -> str:
    """Where the Reconstruct widget writes the Zarr stores of tiled results: ``results/`` in the plugin's
    cache folder (Preferences › napari-invimg)."""
    from ._settings import cache_folder

    return os.path.join(str(cache_folder()), "results")

_SPATIAL = "zyx"


def get_reader(path: str | list[str]):
    """The reader for ``path`` when it is one of ours, else ``None`` (napari then asks other plugins).

    Each file's header is checked first (no pixels read): a file we do not take — not a TIFF at all, an
    RGB TIFF, a Zarr group without OME-NGFF metadata, an image with more than 5 axes — gives ``None`` so
    that another reader can open it. A damaged or truncated file of our kind is taken, and the reader then
    reports what is wrong with it.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths or not all(str(p).lower().rstrip("/\\").endswith(io.SUFFIXES) for p in paths):
        return None
    for p in paths:
        try:
            shape, _dtype = io.probe(p)
        except io.UnsupportedFileError:
            return None
        except (ValueError, OSError):
            continue  # ours but damaged: read() raises the clear error
        if not 2 <= len(shape) <= 5:
            return None
    return read


#: the file patterns our image reader handles (napari.yaml ``readers``)
READER_PATTERNS = ("*.ome.tif", "*.ome.tiff", "*.tif", "*.tiff", "*.zarr", "*.ome.zarr")


def prefer_invimg_reader(patterns=READER_PATTERNS) -> dict[str, str]:
    """Make napari-invimg napari's preferred reader for ``patterns`` (saved in napari's settings).

    npe2 has no reader priority a plugin could declare, so when several plugins can open a ``.tif``
    napari asks which to use (and can remember the answer). This does the same once for all our
    patterns: it sets ``napari.settings.get_settings().plugins.extension2reader[pattern] =
    "napari-invimg"`` — the same as Preferences › Plugins › File extension readers. Returns the mapping.
    """
    from napari.settings import get_settings

    plugins = get_settings().plugins
    mapping = dict(plugins.extension2reader)
    mapping.update({str(p): "napari-invimg" for p in patterns})
    plugins.extension2reader = mapping
    return mapping


def read(path: str | list[str]) -> list[tuple[Any, dict[str, Any], str]]:
    """Layer data tuples, one image layer per file (channels split into layers)."""
    from napari.utils.notifications import show_warning

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    layers = []
    for p in paths:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            img = io.imread(p)
        for w in caught:
            if issubclass(w.category, UserWarning):
                show_warning(str(w.message))
        axes = img.axes
        kwargs: dict[str, Any] = {
            "name": os.path.basename(str(p).rstrip("/\\")),
            "metadata": {"invimg_file": {"pixel_size_um": list(img.pixel_size_um), "axes": axes,
                                         **{k: v for k, v in img.metadata.items() if k != "attrs"}}},
        }
        if "c" in axes:
            c = axes.index("c")
            kwargs["channel_axis"] = c
            axes = axes.replace("c", "")
            scale = [s for i, s in enumerate(img.scale) if i != c]
        else:
            scale = list(img.scale)
        kwargs["scale"] = scale
        kwargs["axis_labels"] = list(axes)
        kwargs["units"] = ["µm" if a in _SPATIAL else "pixel" for a in axes]
        recipe = img.metadata.get("attrs", {}).get("invimg")
        if recipe is not None:
            kwargs["metadata"]["invimg"] = io.recipe.from_jsonable(recipe)
        data = img.data
        if img.metadata.get("levels", 1) > 1:  # an OME-Zarr pyramid: napari shows the level the view needs
            data = io.ome_zarr.read_levels(p)
            kwargs["multiscale"] = True
        layers.append((data, kwargs, "image"))
    return layers


def layer_axes(ndim: int, axis_labels=None) -> str:
    """The axes letters of a layer: its ``axis_labels`` when they are t/c/z/y/x, else by dimension."""
    labels = "".join(str(a).lower() for a in (axis_labels or ()))
    if len(labels) == ndim and set(labels) <= set("tczyx") and labels.endswith("yx") and len(set(labels)) == ndim:
        return labels
    return io.default_axes(ndim)


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one image layer as OME-TIFF / ImageJ-TIFF / OME-Zarr (from the file name) with its scale."""
    axes = layer_axes(np.ndim(data), meta.get("axis_labels"))
    scale = [1.0] * len(axes) if meta.get("scale") is None else [float(v) for v in meta["scale"]]
    sizes = [float(s) for a, s in zip(axes, scale) if a in _SPATIAL]
    metadata = dict(meta.get("metadata") or {})
    file_meta = metadata.get("invimg_file", {})
    extra = {k: file_meta[k] for k in ("na", "wavelength_um", "immersion_index") if k in file_meta}
    try:
        extra["invimg"] = io.recipe.to_jsonable(io.recipe_from(metadata))
    except ValueError:  # not a reconstruction (no recipe to keep)
        pass
    io.imwrite(path, data, pixel_size_um=sizes, axes=axes, metadata=extra)
    return [path]


def tiled_options(layer, data) -> dict[str, Any] | None:
    """For a dask-backed layer: the Zarr store its tiled result goes to, the pixel sizes (from the layer's
    scale), the tile memory and pilot (from the settings) and a small shape to build the operator on (tiles rebuild
    it on their own shape). ``None`` for in-memory layers."""
    if not type(data).__module__.startswith("dask"):
        return None
    import time

    from ._settings import tile_memory_bytes, tile_pilot

    spatial = min(data.ndim, 3)
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(layer.name))[:60]
    output = os.path.join(results_folder(), f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}.ome.zarr")
    return {"output": output, "tile_memory_bytes": tile_memory_bytes(), "pilot": tile_pilot(),
            "pixel_size_um": [float(s) for s in list(layer.scale)[-spatial:]],
            "operator_shape": tuple(min(int(n), 128) for n in data.shape[-spatial:])}
