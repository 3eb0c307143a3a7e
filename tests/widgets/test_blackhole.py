"""The Black hole dock widget driven in a real viewer: coverage, simulate, save/load UVFITS, image."""

from __future__ import annotations

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.widgets.blackhole import BlackHoleWidget

pytestmark = pytest.mark.gui


def test_black_hole_widget_end_to_end(viewer, qtbot, errors, tmp_path):
    widget = BlackHoleWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.source.value = "Sgr A*"
    assert widget.dec.value == pytest.approx(-29.008)
    widget.source.value = "M87*"
    microscopy = viewer.add_image(np.ones((64, 64), np.float32), name="cells", scale=(0.1, 0.1))
    assert widget.sky.value is None  # never a microscopy layer by default
    task = widget.show_coverage()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert "coverage · dirty beam" in viewer.layers
    assert not any(layer.name.endswith("(u, v)") or "coverage" == layer.name for layer in viewer.layers)
    assert widget.uv is not None and widget.uv.points is not None and len(widget.uv.points) > 100  # plotted in the dock
    assert "nominal resolution" in widget.info.value and "7 stations" in widget.info.value
    assert widget.sky.value is None  # "Show coverage" does not change the sky choice

    sky = widget.add_model()
    np.testing.assert_allclose(sky.scale, (2.5, 2.5))  # µas per pixel
    assert str(sky.units[0]) == "microarcsecond"
    assert widget.sky.value is not None and widget.sky.value.name == sky.name
    task = widget.simulate()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    obs = widget.obs
    assert errors == []
    dirty = viewer.layers["sky ring · observation · dirty image"]
    np.testing.assert_allclose(dirty.scale, (2.5, 2.5))
    assert str(dirty.units[-1]) == "microarcsecond"
    assert len(obs) > 100
    assert widget.sky.value is not None and widget.sky.value.name == sky.name
    viewer.layers.remove(microscopy)

    path = tmp_path / "ring.uvfits"
    widget.save(path)
    task = widget.load(path)
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    np.testing.assert_allclose(widget.obs.vis, obs.vis, rtol=1e-5, atol=1e-7)
    assert widget.obs_name == "ring"

    widget.data.value = "visibilities"
    widget.method.value = "rml"
    widget.iterations.value = 60
    task = widget.run()
    qtbot.waitUntil(lambda: task.done, timeout=120_000)
    assert errors == []
    mean = viewer.layers["ring · rml mean"]
    np.testing.assert_allclose(mean.scale, (2.5, 2.5))
    assert str(mean.units[0]) == "microarcsecond"
    meta = mean.metadata["invimg"]
    assert meta["method"] == "rml" and {"visibility", "closure phase"} <= set(meta["normalized_residuals"])
    assert "closure phase" in widget.residuals.value
    assert ni.metrics.nxcorr(mean.data, sky.data) > 0.6

    # the widget refuses an impossible request with a sentence, adding nothing
    widget.data.value = "closures only"
    widget.method.value = "clean"
    assert widget.run() is None and any("Closures" in e or "linear" in e for e in errors)
