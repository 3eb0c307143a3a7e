"""The plugin's user settings (device, tile memory, cache folder): their defaults and what each value means.

The values a user chose live in napari's plugin settings (``contributions.configurations.compute`` in
``napari.yaml``, read by :func:`napari_invimg.widgets._settings.plugin_settings`). This module never imports
napari: the compute side receives every setting as an explicit argument, so that the library, the command
line and the widgets behave the same. The defaults here are the manifest's defaults (a test checks it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

__all__ = [
    "DEVICE_SETTINGS",
    "MIN_TILE_MEMORY_MB",
    "PLUGIN_NAME",
    "Settings",
    "cache_folder",
    "resolve_device_setting",
    "tile_memory_bytes",
    "tile_pilot",
]

PLUGIN_NAME = "napari-invimg"
DEVICE_SETTINGS = ("auto", "cpu", "cuda", "mps")
MIN_TILE_MEMORY_MB = 16


@dataclass(frozen=True)
class Settings:
    """The plugin settings with their defaults.

    ``device``: one of :data:`DEVICE_SETTINGS` (``auto`` = cuda if available, then mps, else cpu);
    ``tile_memory_mb``: memory one tile may use when large data are reconstructed tile by tile;
    ``cache_folder``: folder for user-trained weights and recipes, ``""`` = the platform's cache folder;
    ``tile_bounded_memory``: a tiled run never holds more memory than the untiled run of one frame, its global
    choices then coming from a central region (the result may differ slightly from the untiled one); off: from the
    whole frame when it fits a worker, as untiled (:func:`tile_pilot`).
    """

    device: str = "auto"
    tile_memory_mb: int = 1024
    cache_folder: str = ""
    tile_bounded_memory: bool = False

    def __post_init__(self) -> None:
        resolve_device_setting(self.device)
        tile_memory_bytes(self.tile_memory_mb)
        tile_pilot(self.tile_bounded_memory)


def resolve_device_setting(device: str = Settings.device) -> str | None:
    """The ``device`` argument of :func:`napari_invimg.reconstruct` for a device setting: ``auto`` -> ``None``
    (cuda if available, then mps, else cpu; see :func:`napari_invimg._device.resolve_device`), otherwise the
    torch device name itself."""
    if device not in DEVICE_SETTINGS:
        raise ValueError(f"The device setting must be one of {', '.join(DEVICE_SETTINGS)}; got {device!r}.")
    return None if device == "auto" else device


def tile_memory_bytes(tile_memory_mb: int = Settings.tile_memory_mb) -> int:
    """Memory in bytes that one tile (with its halo, and the method's working arrays) may use when large data
    are reconstructed tile by tile; the tiler chooses the tile shape from it. ``tile_memory_mb`` is in MiB."""
    whole = isinstance(tile_memory_mb, int) and not isinstance(tile_memory_mb, bool)
    if not whole or tile_memory_mb < MIN_TILE_MEMORY_MB:
        raise ValueError(f"The tile memory must be a whole number of MB, at least {MIN_TILE_MEMORY_MB}; "
                         f"got {tile_memory_mb!r}.")
    return tile_memory_mb * 2**20


def tile_pilot(tile_bounded_memory: bool = Settings.tile_bounded_memory) -> str:
    """The ``pilot`` argument of :func:`napari_invimg.tiling.reconstruct_tiled` for the ``tile_bounded_memory``
    setting: ``"bounded"`` (global choices from a central region within the memory budget) or ``"frame"``."""
    if not isinstance(tile_bounded_memory, bool):
        raise ValueError(f"The bounded-memory setting must be true or false; got {tile_bounded_memory!r}.")
    return "bounded" if tile_bounded_memory else "frame"


def cache_folder(folder: str | os.PathLike[str] = Settings.cache_folder) -> Path:
    """The folder for user-trained weights and saved recipes: ``folder`` (``~`` expanded), or, when empty, the
    platform's user cache folder for napari-invimg (e.g. ``~/.cache/napari-invimg`` on Linux). The folder is
    not created here; whoever writes into it creates it (``path.mkdir(parents=True, exist_ok=True)``)."""
    if not os.fspath(folder).strip():
        return Path(platformdirs.user_cache_dir(PLUGIN_NAME, appauthor=False))
    return Path(folder).expanduser()
