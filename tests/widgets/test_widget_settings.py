"""The settings a user chooses in napari's Preferences reach the widgets when they are read."""

from __future__ import annotations

import npe2
import pytest
import torch

from napari_invimg.widgets import _settings
from napari_invimg.widgets.reconstruct import ReconstructWidget

pytestmark = pytest.mark.gui


@pytest.fixture
def compute_settings(plugin_settings, npe2pm):
    """napari-invimg's ``compute`` plugin settings, fresh and saved under the test's ``tmp_path``
    (napari's ``plugin_settings`` fixture; ``npe2pm`` blocks discovery, so the plugin is registered here)."""
    from napari.settings import get_plugin_settings

    npe2pm.register(npe2.PluginManifest.from_distribution("napari-invimg"))
    return get_plugin_settings("napari-invimg").compute


def test_reconstruct_device_follows_the_device_setting(compute_settings, make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    assert ReconstructWidget(viewer).device.value is None  # the default setting: auto

    compute_settings.device = "cpu"
    widget = ReconstructWidget(viewer)
    assert widget.device.value == "cpu"
    widget.device.value = None  # the widget's own choice overrides the setting
    assert widget.device.value is None

    compute_settings.device = "cuda"  # selected only where torch sees a GPU; auto otherwise
    expected = "cuda:0" if torch.cuda.is_available() else None
    assert ReconstructWidget(viewer).device.value == expected


def test_tile_memory_and_cache_folder_follow_the_settings(compute_settings, tmp_path):
    from napari_invimg import settings

    assert _settings.plugin_settings() == settings.Settings()
    compute_settings.tile_memory_mb = 256
    compute_settings.cache_folder = str(tmp_path / "invimg")
    assert _settings.tile_memory_bytes() == 256 * 2**20
    assert _settings.cache_folder() == tmp_path / "invimg"
    assert "tile_memory_mb: 256" in (tmp_path / "napari-invimg.yaml").read_text()  # napari saved the choice
    assert _settings.tile_pilot() == "frame"
    compute_settings.tile_bounded_memory = True
    assert _settings.tile_pilot() == "bounded"
