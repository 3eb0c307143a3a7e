"""TIFF, ImageJ-TIFF and OME-TIFF with physical pixel sizes and (OME) optics metadata, via tifffile."""

from __future__ import annotations

import json
import logging
import os
import struct
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from ._image import (SPATIAL, Image, UnsupportedFileError, assume_pixel_sizes, atomic_output, check_axes,
                     spatial_sizes)

__all__ = ["read_tiff", "write_tiff", "probe_tiff", "is_ome_name", "RECIPE_NAMESPACE"]

#: factors to µm of the OME length units we meet in practice
_TO_UM = {"µm": 1.0, "um": 1.0, "micron": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6, "Å": 1e-4}
#: files larger than this share of available memory are opened lazily (dask)
_LAZY_FRACTION = 0.25


def is_ome_name(path: str | os.PathLike) -> bool:
    name = Path(path).name.lower()
    return name.endswith((".ome.tif", ".ome.tiff", ".ome.tf2", ".ome.btf"))


def _strip(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


#: namespace of the OME-XML annotation that holds a reconstruction recipe (JSON)
RECIPE_NAMESPACE = "https://github.com/napari-invimg/recipe"


def _ome_metadata(xml: str) -> dict[str, Any]:
    """Pixel sizes (µm), the optics and the recipe of the first image of an OME-XML document.

    The NA is that of the ``<Objective>`` which the image's ``<ObjectiveSettings ID=…>`` points to (in the
    ``<Instrument>`` of its ``<InstrumentRef>``); without ObjectiveSettings it is taken only when the
    instrument has a single objective. A recipe is a ``CommentAnnotation`` in :data:`RECIPE_NAMESPACE`
    that the image refers to (or the only one in the document).
    """
    root = ET.fromstring(xml)
    found: dict[str, Any] = {}
    children = {_strip(e.tag): e for e in reversed(list(root))}
    image = children.get("Image")
    scope = image if image is not None else root
    pixels = next((e for e in scope.iter() if _strip(e.tag) == "Pixels"), None)
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
    instruments = [e for e in root if _strip(e.tag) == "Instrument"]
    settings = next((e for e in scope if _strip(e.tag) == "ObjectiveSettings"), None) if image is not None else \
        next((e for e in root.iter() if _strip(e.tag) == "ObjectiveSettings"), None)
    ref = next((e.get("ID") for e in scope if _strip(e.tag) == "InstrumentRef"), None) if image is not None else None
    instrument = next((i for i in instruments if i.get("ID") == ref), None)
    pool = [o for i in ([instrument] if instrument is not None else instruments) for o in i
            if _strip(o.tag) == "Objective"]
    if settings is not None and settings.get("ID") is not None:
        objective = next((o for o in pool if o.get("ID") == settings.get("ID")), None)
    else:
        objective = pool[0] if len(pool) == 1 else None
    if objective is not None and objective.get("LensNA") is not None:
        found["na"] = float(objective.get("LensNA"))
    if settings is not None and settings.get("RefractiveIndex") is not None:
        found["immersion_index"] = float(settings.get("RefractiveIndex"))
    annotations = [a for e in root if _strip(e.tag) == "StructuredAnnotations" for a in e
                   if _strip(a.tag) == "CommentAnnotation" and a.get("Namespace") == RECIPE_NAMESPACE]
    refs = {e.get("ID") for e in scope if _strip(e.tag) == "AnnotationRef"} if image is not None else set()
    chosen = [a for a in annotations if a.get("ID") in refs] or (annotations if len(annotations) == 1 else [])
    if chosen:
        value = next((v.text for v in chosen[0] if _strip(v.tag) == "Value"), None)
        if value:
            try:
                found["recipe"] = json.loads(value)
            except ValueError:
                pass
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


class _Errors(logging.Handler):
    """Collects the errors tifffile logs (rather than raises) while it parses a damaged file."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _check_extent(tf, series, path: Path) -> None:
    """Raise when the pixel data of ``series`` reach past the end of the file (a truncated TIFF)."""
    size = path.stat().st_size
    needed = 0
    if series.dataoffset is not None:
        needed = int(series.dataoffset) + int(series.nbytes)
    for page in series.pages:
        if page is None:
            continue
        offsets, counts = getattr(page, "dataoffsets", ()), getattr(page, "databytecounts", ())
        for o, c in zip(offsets, counts):
            needed = max(needed, int(o) + int(c))
    if needed > size:
        raise ValueError(f"{path.name} is truncated: its pixel data need {needed} bytes but the file has {size}.")
    tagsize, offsetsize = int(tf.tiff.tagsize), int(tf.tiff.offsetsize)
    last = len(tf.pages) - 1
    for page in [tf.pages.get(0)] + ([tf.pages.get(last, aspage=True)] if last else []):  # a cut file loses its end
        ends = [int(t.offset) + tagsize + offsetsize for t in page.tags.values()]  # entries, then next-IFD pointer
        ends += [int(t.valueoffset) + int(t.valuebytecount) for t in page.tags.values()
                 if int(t.valuebytecount) > offsetsize]
        if ends and max(ends) > size:
            raise ValueError(f"{path.name} is truncated: its image file directory at byte {page.offset} reaches "
                             f"byte {max(ends)}, the file has {size}.")


def _open_tiff(path: Path):
    """Open ``path`` with tifffile and return ``(TiffFile, first series)``; a clear error when it is no TIFF,
    damaged or truncated (:class:`UnsupportedFileError` when it is a TIFF we do not take, e.g. RGB)."""
    import tifffile

    if not path.exists():
        raise ValueError(f"{path} does not exist.")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a TIFF file.")
    log = logging.getLogger("tifffile")
    errors = _Errors()
    log.addHandler(errors)
    tf = None
    try:
        try:
            tf = tifffile.TiffFile(path)
        except tifffile.TiffFileError as exc:
            with open(path, "rb") as fh:
                head = fh.read(4)
            if head[:2] in (b"II", b"MM"):
                raise ValueError(f"{path.name} is a damaged or truncated TIFF file ({exc}).") from None
            raise UnsupportedFileError(f"{path.name} is not a TIFF file ({exc}).") from None
        except (OSError, EOFError, ValueError, struct.error) as exc:
            raise ValueError(f"{path.name} is a damaged or truncated TIFF file ({type(exc).__name__}: {exc}).") from None
        try:
            if not tf.series:
                raise ValueError(f"{path.name} holds no image.")
            series = tf.series[0]
            _ = series.shape, series.dtype, len(tf.pages)  # len: follow the whole IFD chain (logs a broken one)
            if not errors.messages:
                _check_extent(tf, series, path)
        except (tifffile.TiffFileError, OSError, EOFError, IndexError, struct.error) as exc:
            raise ValueError(f"{path.name} is a damaged or truncated TIFF file ({exc}).") from None
        if errors.messages:
            raise ValueError(f"{path.name} is a damaged or truncated TIFF file: {errors.messages[-1]}.")
        if series.axes.upper().endswith("S") and series.shape[-1] in (3, 4):
            raise UnsupportedFileError(f"{path.name} is an RGB image; convert it to gray (one channel) first.")
        if len(series.shape) < 2 or len(series.shape) > 5:
            raise UnsupportedFileError(f"{path.name} has {len(series.shape)} axes ({series.axes}); napari-invimg reads "
                                       f"images of 2 to 5 axes (t, c, z, y, x).")
        return tf, series
    except BaseException:
        if tf is not None:
            tf.close()
        raise
    finally:
        log.removeHandler(errors)


def read_tiff(path: str | os.PathLike, lazy: bool | None = None) -> Image:
    """Read a TIFF / ImageJ-TIFF / OME-TIFF with its pixel sizes; lazily (dask) when ``lazy`` or when the
    file is larger than a quarter of the available memory.

    A file that is no TIFF, or is damaged or truncated, raises a :class:`ValueError` naming it and what is
    wrong. A recipe stored by :func:`write_tiff` comes back as ``metadata["attrs"]["invimg"]``.
    """
    import psutil
    import tifffile

    path = Path(path)
    metadata: dict[str, Any] = {"source": str(path), "format": "tiff"}
    tf, series = _open_tiff(path)
    with tf:
        shape, dtype = tuple(series.shape), np.dtype(series.dtype)
        axes = _axes_of(series.axes, len(shape))
        found: dict[str, Any] = {}
        if tf.is_ome and tf.ome_metadata:
            try:
                found = _ome_metadata(tf.ome_metadata)
            except ET.ParseError as exc:
                raise ValueError(f"{path.name} has damaged OME-XML metadata ({exc}).") from None
            metadata["format"] = "ome-tiff"
        elif tf.is_imagej:
            ij = tf.imagej_metadata or {}
            micron = str(ij.get("unit", "")).lower() in ("micron", "um", "µm", "\\u00b5m", "microns")
            ry, rx = _resolution_um(tf.pages[0], micron_if_unitless=micron)
            found.update(pixel_size_y_um=ry, pixel_size_x_um=rx)
            if "spacing" in ij:
                found["pixel_size_z_um"] = float(ij["spacing"])
            info = ij.get("Info")
            if isinstance(info, str) and info.startswith(_RECIPE_PREFIX):
                try:
                    found["recipe"] = json.loads(info[len(_RECIPE_PREFIX):])
                except ValueError:
                    pass
            metadata["format"] = "imagej-tiff"
        else:
            ry, rx = _resolution_um(tf.pages[0])
            found.update(pixel_size_y_um=ry, pixel_size_x_um=rx)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if lazy is None:
            lazy = nbytes > _LAZY_FRACTION * psutil.virtual_memory().available
        if not lazy:
            try:
                data = series.asarray()
            except (tifffile.TiffFileError, OSError, EOFError, ValueError, struct.error) as exc:
                raise ValueError(f"{path.name}: its pixel data cannot be read ({type(exc).__name__}: {exc}).") from None
    if lazy:
        import dask.array as da
        import zarr

        store = tifffile.imread(path, aszarr=True)
        data = da.from_zarr(zarr.open(store, mode="r"))
    for key in ("na", "wavelength_um", "immersion_index"):
        if key in found:
            metadata[key] = found[key]
    if "recipe" in found:
        metadata["attrs"] = {"invimg": found["recipe"]}
    sizes = [found.get(f"pixel_size_{a}_um") for a in axes if a in SPATIAL]
    return Image(data, assume_pixel_sizes(sizes, axes, path, metadata), axes, metadata)


def probe_tiff(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype, str]:
    """Shape, dtype and axes of the image in a TIFF without reading its pixels; raises as :func:`read_tiff`."""
    path = Path(path)
    tf, series = _open_tiff(path)
    with tf:
        return tuple(series.shape), np.dtype(series.dtype), _axes_of(series.axes, len(series.shape))


#: the prefix of the ImageJ ``Info`` text that holds a recipe (JSON) in a plain ``.tif``
_RECIPE_PREFIX = "napari-invimg recipe:"
#: data types ImageJ hyperstacks hold
_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)


def _imagej_order(axes: str) -> bool:
    """ImageJ hyperstacks keep their axes in the order T, Z, C, Y, X."""
    order = "tzcyx"
    pos = [order.index(a) for a in axes]
    return pos == sorted(pos)


def write_tiff(path: str | os.PathLike, data, pixel_size_um, axes: str | None = None,
               metadata: dict[str, Any] | None = None, overwrite: bool = True) -> Path:
    """Write OME-TIFF (``*.ome.tif``) or ImageJ-TIFF (other names) with pixel sizes, atomically.

    Dask arrays are written plane by plane, so memory holds one plane at a time. ``metadata`` may give
    ``na``, ``wavelength_um`` and ``immersion_index`` (written into the OME-XML) and ``invimg`` (a
    reconstruction recipe, JSON-able: stored in the OME-XML as a ``CommentAnnotation``, or in ImageJ's
    ``Info``; :func:`read_tiff` gives it back as ``metadata["attrs"]["invimg"]``).

    A plain ``.tif`` is an ImageJ hyperstack when ImageJ can hold the data: axes in its order (T, Z, C, Y, X)
    and a real type. Otherwise (e.g. ``"tczyx"``, the default for 5D, or complex data) the ``.tif``
    holds OME-XML instead, so that nothing is lost; for complex data a warning says so. float64 is
    stored as float32 and bool as uint8.
    """
    import tifffile

    axes = check_axes(axes, data.ndim)
    sizes = dict(zip([a for a in axes if a in SPATIAL], spatial_sizes(pixel_size_um, axes)))
    meta = metadata or {}
    lazy = type(data).__module__.startswith("dask")
    dtype = np.dtype(data.dtype)
    if dtype.kind not in "biufc":
        raise TypeError(f"Cannot write {dtype} data to a TIFF; give a numeric array.")
    if dtype == np.float64 or dtype == np.bool_:
        data = data.astype(np.float32 if dtype == np.float64 else np.uint8)
        dtype = np.dtype(data.dtype)
    ome = is_ome_name(path)
    if not ome and dtype.kind == "c":
        warnings.warn(f"{Path(path).name}: ImageJ cannot hold complex data; the file is written as OME-TIFF "
                      f"({dtype}, real and imaginary parts kept), which ImageJ opens with Bio-Formats.",
                      UserWarning, stacklevel=3)
        ome = True
    elif not ome and not _imagej_order(axes):
        ome = True  # e.g. 'tczyx': ImageJ wants TZCYX; OME-XML keeps any order
    recipe = meta.get("invimg")
    recipe_text = json.dumps(recipe, ensure_ascii=False) if recipe is not None else None
    planes = int(np.prod(data.shape[:-2]))
    content = (np.asarray(data[np.unravel_index(i, data.shape[:-2])]) for i in range(planes)) if lazy else np.asarray(data)
    with atomic_output(path, overwrite=overwrite, kind="tiff") as tmp:
        tmp_name = tmp.with_name(tmp.name + (".ome.tif" if ome else ".tif"))
        try:
            if ome:
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
                if "na" in meta or "immersion_index" in meta or recipe_text is not None:
                    _edit_ome_xml(tmp_name, meta, recipe_text)
            else:
                ij_axes = axes.upper()
                if dtype not in _IMAGEJ_DTYPES:
                    content = (p.astype(np.float32) for p in content) if lazy else content.astype(np.float32)
                    dtype = np.dtype(np.float32)
                md = {"axes": ij_axes, "unit": "um", **({"spacing": sizes["z"]} if "z" in sizes else {})}
                if recipe_text is not None:
                    md["Info"] = _RECIPE_PREFIX + recipe_text
                tifffile.imwrite(tmp_name, content, shape=data.shape, dtype=dtype, imagej=True, metadata=md,
                                 resolution=(1.0 / sizes["x"], 1.0 / sizes["y"]),
                                 photometric="minisblack")
            os.replace(tmp_name, tmp)
        finally:
            if tmp_name.exists():
                tmp_name.unlink()
    return Path(path)


def _edit_ome_xml(path: Path, meta: dict[str, Any], recipe_text: str | None) -> None:
    """Add the objective (NA, immersion index) and the recipe to an OME-TIFF's XML (in place)."""
    import tifffile

    xml = tifffile.tiffcomment(path)
    root = ET.fromstring(xml)
    ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    image = next(e for e in root if _strip(e.tag) == "Image")
    if "na" in meta or "immersion_index" in meta:
        instrument = ET.Element(f"{ns}Instrument", {"ID": "Instrument:0"})
        objective = ET.SubElement(instrument, f"{ns}Objective", {"ID": "Objective:0"})
        if "na" in meta:
            objective.set("LensNA", str(float(meta["na"])))
        root.insert(0, instrument)
        pos = [_strip(e.tag) for e in image].index("Pixels")
        image.insert(pos, ET.Element(f"{ns}InstrumentRef", {"ID": "Instrument:0"}))
        settings = ET.Element(f"{ns}ObjectiveSettings", {"ID": "Objective:0"})
        if "immersion_index" in meta:
            settings.set("RefractiveIndex", str(float(meta["immersion_index"])))
        image.insert(pos + 1, settings)
    if recipe_text is not None:
        annotations = next((e for e in root if _strip(e.tag) == "StructuredAnnotations"), None)
        if annotations is None:
            annotations = ET.SubElement(root, f"{ns}StructuredAnnotations")
        comment = ET.SubElement(annotations, f"{ns}CommentAnnotation",
                                {"ID": "Annotation:invimg-recipe", "Namespace": RECIPE_NAMESPACE})
        ET.SubElement(comment, f"{ns}Value").text = recipe_text
        pos = [_strip(e.tag) for e in image].index("Pixels")
        image.insert(pos + 1, ET.Element(f"{ns}AnnotationRef", {"ID": "Annotation:invimg-recipe"}))
    if ns:  # write the OME namespace as the default one (no 'ns0:' prefixes)
        ET.register_namespace("", ns[1:-1])
    tifffile.tiffcomment(path, ET.tostring(root, encoding="unicode").encode("utf-8"))
