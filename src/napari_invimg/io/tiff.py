"""TIFF, ImageJ-TIFF and OME-TIFF with physical pixel sizes and (OME) optics metadata, via tifffile."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from ._image import SPATIAL, Image, assume_pixel_sizes, atomic_output, check_axes, spatial_sizes

__all__ = ["read_tiff", "write_tiff", "is_ome_name"]

#: factors to µm of the OME length units we meet in practice
_TO_UM = {"µm": 1.0, "um": 1.0, "micron": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6, "Å": 1e-4}
#: files larger than this share of available memory are opened lazily (dask)
_LAZY_FRACTION = 0.25


def is_ome_name(path: str | os.PathLike) -> bool:
    name = Path(path).name.lower()
    return name.endswith((".ome.tif", ".ome.tiff", ".ome.tf2", ".ome.btf"))


def _strip(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ome_metadata(xml: str) -> dict[str, Any]:
    """Pixel sizes (µm) and the optics of the first image of an OME-XML document."""
    root = ET.fromstring(xml)
    found: dict[str, Any] = {}
    elements = list(root.iter())
    pixels = next((e for e in elements if _strip(e.tag) == "Pixels"), None)
    if pixels is not None:
        for ax in "XYZ":
            v = pixels.get(f"PhysicalSize{ax}")
            if v is not None:
                found[f"pixel_size_{ax.lower()}_um"] = float(v) * _TO_UM.get(pixels.get(f"PhysicalSize{ax}Unit", "µm"), 1.0)
        channels = [e for e in pixels if _strip(e.tag) == "Channel"]
        waves = []
        for ch in channels:
            em = ch.get("EmissionWavelength")
            if em is not None:
                unit = ch.get("EmissionWavelengthUnit", "nm")
                waves.append(float(em) * _TO_UM.get(unit, 1e-3))
        if waves:
            found["wavelength_um"] = waves[0] if len(waves) == 1 else waves
    objective = next((e for e in elements if _strip(e.tag) == "Objective"), None)
    if objective is not None and objective.get("LensNA") is not None:
        found["na"] = float(objective.get("LensNA"))
    settings = next((e for e in elements if _strip(e.tag) == "ObjectiveSettings"), None)
    if settings is not None and settings.get("RefractiveIndex") is not None:
        found["immersion_index"] = float(settings.get("RefractiveIndex"))
    return found


def _resolution_um(page, micron_if_unitless: bool = False) -> tuple[float | None, float | None]:
    """(y, x) pixel size from the TIFF resolution tags, when their unit is physical (inch, cm, mm, µm;
    ImageJ writes 'no unit' with its own unit 'micron')."""
    tags = page.tags
    if "XResolution" not in tags:
        return None, None
    unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
    per = {2: 25400.0, 3: 10000.0, 4: 1000.0, 5: 1.0}.get(unit)  # µm per unit
    if unit == 1 and micron_if_unitless:
        per = 1.0
    if per is None:
        return None, None
    out = []
    for name in ("YResolution", "XResolution"):
        num, den = tags[name].value if name in tags else tags["XResolution"].value
        out.append(per * den / num if num else None)
    if unit == 2 and out[0] is not None and abs(out[0] - 25400.0 / 72) < 1e-6:  # the 72-dpi default says nothing
        return None, None
    return out[0], out[1]


def _axes_of(series_axes: str, ndim: int) -> str:
    axes = "".join(a for a in series_axes.lower() if a in "tczyxqis")
    axes = axes.replace("q", "").replace("i", "").replace("s", "")
    if len(axes) != ndim or set(axes) - set("tczyx"):
        return check_axes(None, ndim)
    return axes


def read_tiff(path: str | os.PathLike, lazy: bool | None = None) -> Image:
    """Read a TIFF / ImageJ-TIFF / OME-TIFF with its pixel sizes; lazily (dask) when ``lazy`` or when the
    file is larger than a quarter of the available memory."""
    import psutil
    import tifffile

    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} does not exist.")
    metadata: dict[str, Any] = {"source": str(path), "format": "tiff"}
    with tifffile.TiffFile(path) as tf:
        series = tf.series[0]
        shape, dtype = tuple(series.shape), np.dtype(series.dtype)
        if series.axes.upper().endswith("S") and shape[-1] in (3, 4):
            raise ValueError(f"{path.name} is an RGB image; convert it to gray (one channel) first.")
        axes = _axes_of(series.axes, len(shape))
        found: dict[str, Any] = {}
        if tf.is_ome and tf.ome_metadata:
            found = _ome_metadata(tf.ome_metadata)
            metadata["format"] = "ome-tiff"
        elif tf.is_imagej:
            ij = tf.imagej_metadata or {}
            micron = str(ij.get("unit", "")).lower() in ("micron", "um", "µm", "\\u00b5m", "microns")
            ry, rx = _resolution_um(tf.pages[0], micron_if_unitless=micron)
            found.update(pixel_size_y_um=ry, pixel_size_x_um=rx)
            if "spacing" in ij:
                found["pixel_size_z_um"] = float(ij["spacing"])
            metadata["format"] = "imagej-tiff"
        else:
            ry, rx = _resolution_um(tf.pages[0])
            found.update(pixel_size_y_um=ry, pixel_size_x_um=rx)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if lazy is None:
            lazy = nbytes > _LAZY_FRACTION * psutil.virtual_memory().available
        if not lazy:
            data = series.asarray()
    if lazy:
        import dask.array as da
        import zarr

        store = tifffile.imread(path, aszarr=True)
        data = da.from_zarr(zarr.open(store, mode="r"))
    for key in ("na", "wavelength_um", "immersion_index"):
        if key in found:
            metadata[key] = found[key]
    sizes = [found.get(f"pixel_size_{a}_um") for a in axes if a in SPATIAL]
    return Image(data, assume_pixel_sizes(sizes, axes, path, metadata), axes, metadata)


def write_tiff(path: str | os.PathLike, data, pixel_size_um, axes: str | None = None,
               metadata: dict[str, Any] | None = None, overwrite: bool = True) -> Path:
    """Write OME-TIFF (``*.ome.tif``) or ImageJ-TIFF (other names) with pixel sizes, atomically.

    Dask arrays are written plane by plane, so memory holds one plane at a time. ``metadata`` may give
    ``na``, ``wavelength_um`` and ``immersion_index`` (written into the OME-XML).
    """
    import tifffile

    axes = check_axes(axes, data.ndim)
    sizes = dict(zip([a for a in axes if a in SPATIAL], spatial_sizes(pixel_size_um, axes)))
    meta = metadata or {}
    lazy = type(data).__module__.startswith("dask")
    dtype = np.dtype(data.dtype)
    if dtype == np.float64 or dtype == np.bool_:
        data = data.astype(np.float32 if dtype == np.float64 else np.uint8)
        dtype = np.dtype(data.dtype)
    planes = int(np.prod(data.shape[:-2]))
    content = (np.asarray(data[np.unravel_index(i, data.shape[:-2])]) for i in range(planes)) if lazy else np.asarray(data)
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp_name = tmp.with_name(tmp.name + (".ome.tif" if is_ome_name(path) else ".tif"))
        try:
            if is_ome_name(path):
                md: dict[str, Any] = {"axes": axes.upper(), "PhysicalSizeX": sizes["x"], "PhysicalSizeXUnit": "µm",
                                      "PhysicalSizeY": sizes["y"], "PhysicalSizeYUnit": "µm"}
                if "z" in sizes:
                    md.update(PhysicalSizeZ=sizes["z"], PhysicalSizeZUnit="µm")
                if "wavelength_um" in meta:
                    n_channels = data.shape[axes.index("c")] if "c" in axes else 1
                    waves = np.broadcast_to(np.asarray(meta["wavelength_um"], dtype=float), (n_channels,))
                    nm = [float(w) * 1e3 for w in waves]
                    md["Channel"] = {"EmissionWavelength": nm if "c" in axes else nm[0],
                                     "EmissionWavelengthUnit": ["nm"] * n_channels if "c" in axes else "nm"}
                tifffile.imwrite(tmp_name, content, shape=data.shape, dtype=dtype, ome=True, metadata=md,
                                 photometric="minisblack")
                if "na" in meta or "immersion_index" in meta:
                    _add_objective(tmp_name, meta)
            else:
                ij_axes = axes.upper()
                if dtype not in (np.uint8, np.uint16, np.float32):
                    content = (p.astype(np.float32) for p in content) if lazy else content.astype(np.float32)
                    dtype = np.dtype(np.float32)
                md = {"axes": ij_axes, "unit": "um", **({"spacing": sizes["z"]} if "z" in sizes else {})}
                tifffile.imwrite(tmp_name, content, shape=data.shape, dtype=dtype, imagej=True, metadata=md,
                                 resolution=(1.0 / sizes["x"], 1.0 / sizes["y"]),
                                 photometric="minisblack")
            os.replace(tmp_name, tmp)
        finally:
            if tmp_name.exists():
                tmp_name.unlink()
    return Path(path)


def _add_objective(path: Path, meta: dict[str, Any]) -> None:
    """Add the objective's NA and immersion index to an OME-TIFF's XML (in place)."""
    import tifffile

    xml = tifffile.tiffcomment(path)
    root = ET.fromstring(xml)
    ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    instrument = ET.Element(f"{ns}Instrument", {"ID": "Instrument:0"})
    objective = ET.SubElement(instrument, f"{ns}Objective", {"ID": "Objective:0"})
    if "na" in meta:
        objective.set("LensNA", str(float(meta["na"])))
    root.insert(0, instrument)
    image = next(e for e in root if _strip(e.tag) == "Image")
    settings = ET.Element(f"{ns}ObjectiveSettings", {"ID": "Objective:0"})
    if "immersion_index" in meta:
        settings.set("RefractiveIndex", str(float(meta["immersion_index"])))
    pos = [_strip(e.tag) for e in image].index("Pixels")
    image.insert(pos, settings)
    tifffile.tiffcomment(path, ET.tostring(root, encoding="unicode").encode("utf-8"))
