"""The npe2 manifest: one file at the repository root, shipped in the package, valid, every name importable."""

from __future__ import annotations

from pathlib import Path

import npe2
from npe2.manifest.utils import import_python_name

import napari_invimg

ROOT_MANIFEST = Path(__file__).resolve().parents[1] / "napari.yaml"
PACKAGE_MANIFEST = Path(napari_invimg.__file__).parent / "napari.yaml"


def test_packaged_manifest_is_the_root_manifest():
    assert PACKAGE_MANIFEST.read_text() == ROOT_MANIFEST.read_text()


def test_manifest_is_valid_and_importable():
    manifest = npe2.PluginManifest.from_file(PACKAGE_MANIFEST)
    assert manifest.name == "napari-invimg"
    for command in manifest.contributions.commands:
        assert callable(import_python_name(command.python_name)), command.python_name
    widgets = {w.display_name for w in manifest.contributions.widgets}
    assert {"Forward model", "Simulate measurement", "Reconstruct"} <= widgets
    assert {s.key for s in manifest.contributions.sample_data} >= {"fluorescence", "fluorescence_3d", "cell"}
    assert "napari/layers/filter" in manifest.contributions.menus


def test_entry_point_resolves_to_the_manifest():
    manifest = npe2.PluginManifest.from_distribution("napari-invimg")
    assert manifest.name == "napari-invimg"
    assert {c.id for c in manifest.contributions.commands} >= {"napari-invimg.reconstruct", "napari-invimg.simulate"}


def test_widgets_open_from_the_plugins_menu(make_napari_viewer_proxy):
    """napari instantiates each widget itself (it passes the viewer as ``napari_viewer``)."""
    viewer = make_napari_viewer_proxy()
    for name in ("Forward model", "Simulate measurement", "Reconstruct"):
        _dock, widget = viewer.window.add_plugin_dock_widget("napari-invimg", name)
        assert widget.viewer is not None
