"""The Simulate measurement dock widget driven in a real viewer, feeding the Reconstruct widget."""

from __future__ import annotations

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.widgets.reconstruct import ReconstructWidget
from napari_invimg.widgets.simulate import SimulateWidget

pytestmark = pytest.mark.gui


def _simulate(viewer, qtbot, layer, kind, **form):
    widget = SimulateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.truth.value = layer
    widget.forward.kind.value = kind
    for name, value in form.items():
        getattr(widget.forward, name).value = value
    task = widget.run()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    return widget, task


def test_blur_measurement_carries_operator_and_noise(viewer, qtbot, errors):
    x = ni.datasets.fluorescence((64, 64), seed=5)
    layer = viewer.add_image(x, name="truth", scale=(0.08, 0.08), translate=(3.0, 4.0))
    widget, _task = _simulate(viewer, qtbot, layer, "Blur", psf_kind="gaussian", psf_size=9, sigma=1.5)
    assert widget.forward.pixel_size.value == pytest.approx(0.08)  # taken from the layer's scale
    assert errors == []
    y = viewer.layers["truth · measurement"]
    assert y.data.shape == x.shape
    np.testing.assert_allclose(y.scale, (0.08, 0.08))
    np.testing.assert_allclose(y.translate, (3.0, 4.0))
    meta = y.metadata["invimg"]
    assert meta["operator"]["type"] == "Blur" and meta["operator"]["psf"].shape == (9, 9)
    assert meta["noise"]["type"] == "PoissonGaussian" and meta["seed"] == 0 and meta["source"] == "truth"
    A = ni.operators.from_spec(meta["operator"])
    noise = ni.noise.from_spec(meta["noise"])
    np.testing.assert_allclose(y.data, ni.simulate(x, A, noise, seed=0), atol=1e-6)

    # the Reconstruct widget picks the operator up from the metadata
    rec = ReconstructWidget(viewer)
    rec.measurement.value = y
    assert rec.source.value == "metadata" and rec.operator_kind() == "Blur"


def test_inpainting_shows_the_mask(viewer, qtbot, errors):
    x = ni.datasets.fluorescence((32, 48), seed=1)
    layer = viewer.add_image(x, name="truth")
    _simulate(viewer, qtbot, layer, "Inpainting", fraction=0.4)
    assert errors == []
    mask = viewer.layers["truth · mask"]
    meas = viewer.layers["truth · measurement"]
    assert mask.data.shape == x.shape and 0.3 < mask.data.mean() < 0.5
    np.testing.assert_array_equal(mask.data.astype(bool), meas.metadata["invimg"]["operator"]["mask"])


def test_downsampling_measurement_has_coarser_pixels(viewer, qtbot, errors):
    x = ni.datasets.fluorescence((32, 32), seed=1)
    layer = viewer.add_image(x, name="truth", scale=(0.1, 0.1))
    _simulate(viewer, qtbot, layer, "Downsampling", factor=2, psf_kind="none")
    assert errors == []
    y = viewer.layers["truth · measurement"]
    assert y.data.shape == (16, 16)
    np.testing.assert_allclose(y.scale, (0.2, 0.2))
    np.testing.assert_allclose(y.translate, (0.05, 0.05))  # coarse pixel centers sit between fine ones


def test_rgb_ground_truth_is_refused(viewer, errors):
    layer = viewer.add_image(np.zeros((16, 16, 3), dtype=np.uint8), name="rgb", rgb=True)
    widget = SimulateWidget(viewer)
    widget.truth.value = layer
    assert widget.run() is None
    assert len(errors) == 1 and "RGB" in errors[0]
    assert [lyr.name for lyr in viewer.layers] == ["rgb"]
