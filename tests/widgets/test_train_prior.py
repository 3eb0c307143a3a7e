"""The Train prior dock widget driven in a real viewer: self-supervised, supervised, cancel, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.priors.learned import LearnedDenoiser
from napari_invimg.widgets._settings import cache_folder
from napari_invimg.widgets.train_prior import SUPERVISED, TrainPriorWidget

pytestmark = pytest.mark.gui



def _noisy_layer(viewer, shape=(48, 48)):
    clean = ni.datasets.fluorescence(shape, seed=4)
    noisy = (clean + 0.1 * np.random.default_rng(0).standard_normal(shape)).astype(np.float32)
    return clean, viewer.add_image(noisy, name="noisy", scale=(0.2, 0.2), translate=(1.0, 0.0))


def _widget(viewer, tmp_path, **values):
    widget = TrainPriorWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.output.value = tmp_path / "mine.pt"
    for name, value in values.items():
        getattr(widget, name).value = value
    return widget


def test_self_supervised_writes_weights_and_preview(viewer, qtbot, errors, tmp_path):
    clean, layer = _noisy_layer(viewer)
    widget = _widget(viewer, tmp_path, noisy=layer, steps=4)
    task = widget.run()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert errors == [] and not task.cancelled
    assert (tmp_path / "mine.pt").is_file()
    out = viewer.layers["noisy · trained prior"]
    np.testing.assert_allclose(out.scale, (0.2, 0.2))
    np.testing.assert_allclose(out.translate, (1.0, 0.0))
    assert out.metadata["invimg"]["training"]["mode"] == "self-supervised"
    assert ni.metrics.psnr(out.data, clean) > ni.metrics.psnr(layer.data, clean) + 3
    assert "trained prior · preview" not in viewer.layers
    assert LearnedDenoiser(weights=tmp_path / "mine.pt").metadata["steps"] == 4


def test_supervised_from_scratch(viewer, qtbot, errors, tmp_path):
    truth = viewer.add_image(ni.datasets.fluorescence((40, 40), seed=6), name="truth")
    widget = _widget(viewer, tmp_path, mode=SUPERVISED, steps=2, start="scratch")
    widget.clean.value = [truth]
    task = widget.run()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert errors == []
    assert LearnedDenoiser(weights=tmp_path / "mine.pt").metadata["mode"] == "supervised"
    assert [lyr.name for lyr in viewer.layers] == ["truth"]  # no noisy layer chosen: nothing to denoise


def test_cancel_saves_nothing(viewer, qtbot, errors, tmp_path):
    _, layer = _noisy_layer(viewer)
    widget = _widget(viewer, tmp_path, noisy=layer, steps=5000)
    task = widget.run()
    qtbot.waitUntil(lambda: task.progress_bar.n >= 1, timeout=60_000)
    widget.controls.cancel()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert task.cancelled and errors == []
    assert not (tmp_path / "mine.pt").exists()
    assert [lyr.name for lyr in viewer.layers] == ["noisy"]


def test_missing_layers_are_refused(viewer, errors, tmp_path):
    assert TrainPriorWidget(viewer).output.value.parent == cache_folder()  # the plugin's setting
    widget = _widget(viewer, tmp_path)
    assert widget.run() is None
    widget.mode.value = SUPERVISED
    assert widget.run() is None
    assert len(errors) == 2 and "noisy layer" in errors[0] and "clean image layer" in errors[1]


def test_opens_from_the_plugins_menu(viewer):
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-invimg", "Train prior")
    assert isinstance(widget, TrainPriorWidget) and widget.viewer is not None
