"""The windowed half of ``make demo``: napari with the synthetic sample and the plugin's dock widgets."""

from __future__ import annotations

import napari


def run_napari() -> None:
    """Open napari with the synthetic sample (truth + measurement) and the plugin's dock widgets."""
    viewer = napari.Viewer(title="napari-invimg demo")
    viewer.open_sample("napari-invimg", "fluorescence")
    for name in ("Forward model", "Simulate measurement", "Reconstruct", "Diagnostics"):
        viewer.window.add_plugin_dock_widget("napari-invimg", name, tabify=True)
    napari.run()
