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
    widget.show_coverage()
    assert "(u, v) coverage" in viewer.layers and "coverage · dirty beam" in viewer.layers
    assert "nominal resolution" in widget.info.value and "7 stations" in widget.info.value

    sky = widget.add_model()
    np.testing.assert_allclose(sky.scale, (2.5, 2.5))  # µas per pixel
    obs = widget.simulate()
    assert errors == []
    dirty = viewer.layers["sky ring · observation · dirty image"]
    np.testing.assert_allclose(dirty.scale, (2.5, 2.5))
    assert len(obs) > 100

    path = tmp_path / "ring.uvfits"
    widget.save(path)
    loaded = widget.load(path)
    np.testing.assert_allclose(loaded.vis, obs.vis, rtol=1e-5, atol=1e-7)
    assert widget.obs_name == "ring"

    widget.data.value = "visibilities"
    widget.method.value = "rml"
    widget.iterations.value = 60
    task = widget.run()
    qtbot.waitUntil(lambda: task.done, timeout=120_000)
    assert errors == []
    mean = viewer.layers["ring · rml mean"]
    np.testing.assert_allclose(mean.scale, (2.5, 2.5))
    meta = mean.metadata["invimg"]
    assert meta["method"] == "rml" and {"visibility", "closure phase"} <= set(meta["normalized_residuals"])
    assert "closure phase" in widget.residuals.value
    assert ni.metrics.nxcorr(mean.data, sky.data) > 0.6

    # the widget refuses an impossible request with a sentence, adding nothing
    widget.data.value = "closures only"
    widget.method.value = "clean"
    assert widget.run() is None and any("Closures" in e or "linear" in e for e in errors)
