"""The user's plugin settings, read from napari at run time (Preferences › napari-invimg › Compute).

Each function reads napari's plugin settings when it is called, so a change in the Preferences applies to the
next widget or run. Where napari has no plugin settings API (napari < 0.9) or napari-invimg is not registered
with napari's plugin manager, the defaults of :class:`napari_invimg.settings.Settings` apply. The values are
handed to the compute side as explicit arguments (``device=``, a tile memory in bytes, a folder).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .. import settings as core_settings
from ..settings import PLUGIN_NAME, Settings

__all__ = ["cache_folder", "default_device", "plugin_settings", "tile_memory_bytes", "tile_pilot"]


def plugin_settings() -> Settings:
    """The ``compute`` settings the user chose in napari, or the defaults where napari cannot give them."""
    try:
        from napari.settings import get_plugin_settings
    except ImportError:  # napari < 0.9: no plugin settings
        return Settings()
    try:
        compute = get_plugin_settings(PLUGIN_NAME).compute
    except KeyError:  # napari-invimg is not among the plugins napari discovered
        return Settings()
    return Settings(device=compute.device, tile_memory_mb=compute.tile_memory_mb, cache_folder=compute.cache_folder,
                    tile_bounded_memory=getattr(compute, "tile_bounded_memory", Settings.tile_bounded_memory))


def default_device(choices: Sequence[tuple[str, str | None]]) -> str | None:
    """The value among a device combo box's ``(label, value)`` ``choices`` that the ``device`` setting selects:
    ``auto`` -> ``None``; ``cuda`` -> the first ``cuda:i``; ``cpu``/``mps`` -> itself; ``None`` (auto) when the
    chosen device is not available on this machine."""
    wanted = core_settings.resolve_device_setting(plugin_settings().device)
    if wanted is None:
        return None
    values = [value for _label, value in choices if value is not None]
    return next((v for v in values if v == wanted or v.startswith(f"{wanted}:")), None)


def tile_memory_bytes() -> int:
    """Bytes one tile may use in a tiled reconstruction, from the ``tile_memory_mb`` setting; pass it to the
    tiler (``napari_invimg.tiling``) from the widget that starts a run on large (dask) data."""
    return core_settings.tile_memory_bytes(plugin_settings().tile_memory_mb)


def tile_pilot() -> str:
    """``"bounded"`` or ``"frame"``: the tiler's ``pilot`` for the ``tile_bounded_memory`` setting."""
    return core_settings.tile_pilot(plugin_settings().tile_bounded_memory)


def cache_folder() -> Path:
    """Folder for user-trained weights and saved recipes, from the ``cache_folder`` setting (empty = the
    platform's cache folder); the training widget saves weights under it and lists them from it."""
    return core_settings.cache_folder(plugin_settings().cache_folder)
