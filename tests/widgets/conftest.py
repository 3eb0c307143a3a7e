"""Fixtures for the dock-widget tests: a viewer with the sample data and a recorder of error notifications."""

from __future__ import annotations

import numpy as np
import pytest

from napari_invimg import datasets, operators, psf
from napari_invimg.operators.noise import PoissonGaussian


@pytest.fixture
def viewer(make_napari_viewer_proxy):
    return make_napari_viewer_proxy()


@pytest.fixture
def errors(monkeypatch):
    """Messages passed to ``show_error`` by the runner (every widget reports through it)."""
    shown: list[str] = []
    from napari_invimg.widgets import _runner

    monkeypatch.setattr(_runner, "show_error", lambda message: shown.append(str(message)))
    return shown


@pytest.fixture
def small_pair():
    """A 64×64 synthetic image, a Gaussian blur operator and its noisy measurement."""
    x = datasets.fluorescence((64, 64), seed=3)
    A = operators.Blur(psf.gaussian((9, 9), 1.5), x.shape)
    noise = PoissonGaussian(gain=0.01, sigma=0.01)
    y = noise.sample(A.forward(x), seed=0).astype(np.float32)
    return x, A, noise, y


@pytest.fixture
def measurement(viewer, small_pair):
    """``small_pair``'s measurement as a layer with scale, translate and the operator/noise in its metadata."""
    _x, A, noise, y = small_pair
    meta = {"invimg": {"operator": A.spec(), "noise": noise.spec(), "seed": 0}}
    return viewer.add_image(y, name="meas", scale=(0.1, 0.1), translate=(1.0, 2.0), metadata=meta)


@pytest.fixture
def reconstruct_in_dock(viewer, qtbot):
    """Run ``method`` on a layer from a Reconstruct dock in ``viewer``: ``(widget, task)``; waits for the task to end
    unless ``wait=False`` (for tests that cancel or inspect a running task)."""
    from napari_invimg.widgets.reconstruct import ReconstructWidget

    def run(layer, method: str, wait: bool = True, **params):
        widget = ReconstructWidget(viewer)
        viewer.window.add_dock_widget(widget)
        widget.measurement.value = layer
        widget.method.value = method
        widget.params.set_values(params)
        task = widget.run()
        assert task is not None
        if wait:
            qtbot.waitUntil(lambda: task.done, timeout=120_000)
        return widget, task

    return run
