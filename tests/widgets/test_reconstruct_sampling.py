"""The Reconstruct widget with a sampler: mean, std and samples layers; cancel keeps the samples so far."""

from __future__ import annotations

import numpy as np
import pytest

from napari_invimg.widgets.reconstruct import ReconstructWidget

pytestmark = pytest.mark.gui


def _widget(viewer, layer, method, **params):
    widget = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.measurement.value = layer
    widget.method.value = method
    widget.params.set_values(params)
    widget.add_samples.value = True
    return widget


def test_ula_adds_mean_std_and_samples(viewer, qtbot, measurement, errors):
    for method in ("ula", "vb", "mala"):
        assert method in widget_choices(viewer, measurement)
    widget = _widget(viewer, measurement, "ula", iterations=200, n_samples=8, chains=2)
    task = widget.run()
    qtbot.waitUntil(lambda: task.done, timeout=120_000)
    assert errors == []
    std = viewer.layers["meas · ula std"]
    samples = viewer.layers["meas · ula samples"]
    assert std.data.shape == measurement.data.shape and std.colormap.name == "magma"
    assert samples.data.shape == (8,) + measurement.data.shape
    meta = viewer.layers["meas · ula mean"].metadata["invimg"]
    assert meta["uncertainty"] == "posterior" and "mixing" in meta and meta["chains"] == 2
    if widget.history is not None:  # the sampler's running split-R̂ is what the dock plots (not its flat step size)
        assert "rhat_max" in widget.history.history and widget.history.quantity.value == "rhat_max"
        assert all(r >= 1.0 for _step, r in widget.history.history["rhat_max"])


def test_cancelled_sampler_keeps_samples_so_far(viewer, qtbot, measurement, errors):
    widget = _widget(viewer, measurement, "ula", iterations=100_000, n_samples=200, chains=2, burn_in=10,
                     thinning=100)
    task = widget.run()
    name = "meas · ula mean"
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=60_000)
    qtbot.waitUntil(lambda: task.progress_bar.n >= 150, timeout=60_000)  # past burn-in and a first thinned sample
    widget.controls.cancel()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert task.cancelled and errors == []
    samples = viewer.layers["meas · ula samples"].data
    assert 1 <= samples.shape[0] < 200 and np.isfinite(samples).all()
    assert viewer.layers[name].metadata["invimg"]["cancelled"] is True


def widget_choices(viewer, layer) -> list[str]:
    widget = ReconstructWidget(viewer)
    widget.measurement.value = layer
    return [c if isinstance(c, str) else c[1] for c in widget.method.choices]
