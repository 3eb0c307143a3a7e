"""napari reader for VLBI observations (random-groups UVFITS): drag and drop a ``.uvfits`` file to see it.

The file opens as two layers: the naturally weighted **dirty image** (micro-arcseconds, ``scale`` = pixel
size in µas, row 0 north, column 0 east; the same layer the Black hole dock makes) and the **(u, v)
coverage** as points in Gλ. The observation itself travels with the dirty-image layer:

- ``layer.metadata["invimg_observation"]``: the :class:`napari_invimg.blackhole.Observation` read from
  the file (visibilities, σ, stations, times) — what the Black hole dock images;
- ``layer.metadata["invimg"]``: JSON-able facts (``product="dirty image"``, ``unit="µas"``,
  ``observation`` (its name), ``source_file``, ``npix``, ``fov_uas``).

:func:`observation_of` gives the observation of a layer (``None`` when it has none). A ``.fits`` file is
taken only when its primary HDU holds random groups (visibilities); other FITS images are left to other
readers (the reader function returns ``None``), as are damaged files, which
:func:`napari_invimg.blackhole.load_uvfits` would refuse with a message.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["get_reader", "read_uvfits", "observation_of", "observation_name", "dirty_image_layers",
           "dirty_beam_and_image", "image_geometry", "OBSERVATION_KEY", "SUFFIXES", "NPIX", "FOV_UAS", "UNIT"]

#: the layer-metadata key that holds the :class:`~napari_invimg.blackhole.Observation`
OBSERVATION_KEY = "invimg_observation"
#: file name endings this reader takes (``.fits`` only with random-groups data)
SUFFIXES = (".uvfits", ".uvf", ".fits")
#: dirty image size (pixels) and field of view (µas): the Black hole docks' defaults
NPIX, FOV_UAS = 64, 160.0
#: napari's (pint) name of the image unit: the status bar and scale bar read µas
UNIT = "microarcsecond"


def image_geometry(npix: int, fov_uas: float) -> dict[str, Any]:
    """``scale``/``translate``/``units``/``axis_labels`` of a black-hole image: ``npix`` pixels across ``fov_uas``
    micro-arcseconds centered on the phase center (row 0 north, column 0 east)."""
    p = float(fov_uas) / int(npix)
    half = float(fov_uas) / 2
    return {"scale": (p, p), "translate": (-half + p / 2, -half + p / 2), "units": (UNIT, UNIT),
            "axis_labels": ("Dec offset", "RA offset")}


def dirty_beam_and_image(obs, npix: int, fov_uas: float, u=None, v=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Naturally weighted dirty beam and (with an observation) dirty image; ``obs=None`` with ``u``, ``v``: the
    beam of a coverage. Worker-side arithmetic."""
    from .. import blackhole

    A = blackhole.Interferometer(obs, int(npix), float(fov_uas), **({} if obs is not None else {"u": u, "v": v}))
    w = A.weights(obs.sigma if obs is not None else np.ones(A.out_shape[0]), "natural")
    beam = A.dirty_beam(w, size=A.npix).astype(np.float32)
    dirty = A.dirty_image(obs.vis, w).astype(np.float32) if obs is not None else None
    return beam, dirty


def _is_visibility_fits(path: Path) -> bool:
    """A complete-looking FITS file whose primary header announces random groups (``GROUPS = T``)."""
    from astropy.io import fits

    try:
        header = fits.getheader(path, 0)
    except Exception:  # not FITS, or its first header is damaged
        return False
    return bool(header.get("GROUPS", False)) and int(header.get("NAXIS1", -1)) == 0


def get_reader(path: str | list[str]):
    """The reader for ``path`` when every file is a UVFITS visibility file, else ``None``."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        return None
    for p in paths:
        p = Path(p)
        if not p.name.lower().endswith(SUFFIXES) or not p.is_file() or not _is_visibility_fits(p):
            return None
    return read_uvfits


def dirty_image_layers(obs, name: str, npix: int = NPIX, fov_uas: float = FOV_UAS,
                       source_file: str | None = None, dirty: np.ndarray | None = None,
                       points: bool = True) -> list[tuple[Any, dict[str, Any], str]]:
    """Layer data tuples for an observation: its dirty image (carrying the observation, in µas) and, with
    ``points``, its (u, v) points in Gλ."""
    from .. import __version__

    if dirty is None:
        _beam, dirty = dirty_beam_and_image(obs, npix, fov_uas)
    facts = {"product": "dirty image", "unit": "µas", "observation": name, "npix": int(npix),
             "fov_uas": float(fov_uas), "version": __version__,
             **({"source_file": str(source_file)} if source_file else {})}
    image = (dirty, {"name": f"{name} · dirty image", **image_geometry(npix, fov_uas), "colormap": "afmhot",
                     "metadata": {"invimg": facts, OBSERVATION_KEY: obs}}, "image")
    if not points:
        return [image]
    pts = np.concatenate([np.stack([-obs.v, -obs.u], 1), np.stack([obs.v, obs.u], 1)]) / 1e9
    uv = (pts, {"name": f"{name} · (u, v)", "size": 0.15, "face_color": "orange",
                "metadata": {"invimg": {"unit": "Gλ", "axes": ["-v", "-u"], "observation": name}}}, "points")
    return [image, uv]


def read_uvfits(path: str | list[str]) -> list[tuple[Any, dict[str, Any], str]]:
    """Layer data tuples for each UVFITS file: dirty image (with the observation) and (u, v) coverage."""
    from .. import blackhole

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    layers: list[tuple[Any, dict[str, Any], str]] = []
    for p in paths:
        obs = blackhole.load_uvfits(p)
        layers += dirty_image_layers(obs, Path(p).stem, source_file=str(p))
    return layers


def observation_of(layer) -> Any:
    """The :class:`~napari_invimg.blackhole.Observation` a layer carries (``metadata["invimg_observation"]``), or ``None``."""
    meta = getattr(layer, "metadata", None) or {}
    return meta.get(OBSERVATION_KEY)


def observation_name(layer) -> str:
    """The name of the observation a layer carries (its ``metadata["invimg"]["observation"]``, else the layer's
    name without `` · dirty image``)."""
    meta = (getattr(layer, "metadata", None) or {}).get("invimg", {})
    return str(meta.get("observation") or layer.name.removesuffix(" · dirty image"))
