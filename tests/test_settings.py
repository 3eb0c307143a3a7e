"""The plugin settings: declared in the manifest with the defaults of ``napari_invimg.settings``, and usable
without napari."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import npe2
import pytest
from jsonschema.exceptions import ValidationError

from napari_invimg import settings
from napari_invimg.settings import DEVICE_SETTINGS, MIN_TILE_MEMORY_MB, Settings

MANIFEST = Path(__file__).resolve().parents[1] / "napari.yaml"


def test_manifest_declares_the_settings_with_the_module_defaults():
    configurations = npe2.PluginManifest.from_file(MANIFEST).contributions.configurations
    properties = configurations["compute"].properties
    defaults = {field.name: field.default for field in dataclasses.fields(Settings)}
    assert set(properties) == set(defaults)
    for name, prop in properties.items():
        assert prop.default == defaults[name], name
        prop.validate_instance(prop.default)  # the default satisfies its own schema (type, enum, minimum)
    assert tuple(properties["device"].enum) == DEVICE_SETTINGS
    tile_memory = properties["tile_memory_mb"]
    assert tile_memory.python_type is int and tile_memory.minimum == MIN_TILE_MEMORY_MB
    for name, bad in (("device", "tpu"), ("tile_memory_mb", 8), ("cache_folder", 3), ("tile_bounded_memory", "yes")):
        with pytest.raises(ValidationError):
            properties[name].validate_instance(bad)


def test_accessors_convert_and_check_values(tmp_path):
    assert settings.resolve_device_setting("auto") is None
    assert settings.resolve_device_setting("cuda") == "cuda"
    assert settings.tile_memory_bytes() == 1024 * 2**20
    assert settings.tile_memory_bytes(64) == 64 * 2**20
    assert settings.cache_folder(tmp_path) == tmp_path
    assert settings.cache_folder("~/weights") == Path.home() / "weights"
    default = settings.cache_folder()
    assert default.is_absolute() and "napari-invimg" in default.parts
    with pytest.raises(ValueError, match="device setting"):
        settings.resolve_device_setting("gpu")
    with pytest.raises(ValueError, match="tile memory"):
        settings.tile_memory_bytes(8)
    with pytest.raises(ValueError, match="tile memory"):
        Settings(tile_memory_mb=100.5)
    assert settings.tile_pilot() == "frame" and settings.tile_pilot(True) == "bounded"
    with pytest.raises(ValueError, match="bounded-memory"):
        Settings(tile_bounded_memory="yes")


def test_settings_give_the_defaults_without_napari():
    """Both the core module and the widgets' reader work where napari cannot be imported."""
    code = (
        "import sys; sys.modules['napari'] = None\n"
        "from napari_invimg import settings\n"
        "from napari_invimg.widgets import _settings\n"
        "print('PLUGIN', _settings.plugin_settings() == settings.Settings())\n"
        "print('TILE', _settings.tile_memory_bytes() == settings.tile_memory_bytes())\n"
        "print('CACHE', _settings.cache_folder() == settings.cache_folder())\n"
        "print('DEVICE', _settings.default_device([('auto', None), ('cpu', 'cpu')]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True).stdout
    assert "PLUGIN True" in out and "TILE True" in out and "CACHE True" in out and "DEVICE None" in out
