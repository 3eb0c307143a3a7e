"""The Diagnostics dock widget, the ensemble labeling and cancelling DIP, driven in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.widgets import _runner
from napari_invimg.widgets._runner import ENSEMBLE_SUFFIX, running_tasks
from napari_invimg.widgets.diagnostics import DiagnosticsWidget

pytestmark = pytest.mark.gui


@pytest.fixture
def infos(monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(_runner, "show_info", lambda message: shown.append(str(message)))
    return shown



def test_ensemble_result_is_labeled_and_diagnosed(viewer, qtbot, small_pair, measurement, errors, infos, reconstruct_in_dock):
    x, A, noise, y = small_pair
    truth = viewer.add_image(x, name="truth", scale=(0.1, 0.1), translate=(1.0, 2.0))
    reconstruct_in_dock(measurement, "ensemble", base_method="tikhonov_cg", vary="lam", n_samples=3,
                        base_params='{"iterations": 20}')
    assert errors == []
    std_name = f"meas · ensemble std{ENSEMBLE_SUFFIX}"
    assert std_name in viewer.layers and "meas · ensemble std" not in viewer.layers
    assert any("not the posterior" in m for m in infos)
    # the note says what was varied (here λ over 3 runs of tikhonov_cg), not "seed or λ"
    assert any("3 regularization weights λ" in m and "tikhonov_cg" in m for m in infos), infos

    widget = DiagnosticsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.result.value = viewer.layers["meas · ensemble mean"]
    widget.truth.value = truth
    numbers = widget.run()
    assert errors == [] and numbers is not None
    residual = viewer.layers["meas · ensemble residual"]
    assert residual.data.shape == y.shape
    np.testing.assert_allclose(residual.scale, (0.1, 0.1))
    expected = ni.diagnostics.residual(y, A, viewer.layers["meas · ensemble mean"].data, noise)
    np.testing.assert_allclose(residual.data, expected, atol=1e-5)
    error = viewer.layers["meas · ensemble error"]
    np.testing.assert_allclose(error.data, np.abs(viewer.layers["meas · ensemble mean"].data - x), atol=1e-6)
    assert 0.0 <= numbers["coverage"] <= 1.0 and -1 <= numbers["std_error_correlation"] <= 1
    assert 0.2 < numbers["chi2"] < 5
    assert "coverage" in widget.report.value and "χ²" in widget.report.value


def test_diagnostics_offers_only_results_and_refuses_without_one(viewer, small_pair, errors):
    _x, _A, _noise, y = small_pair
    viewer.add_image(y, name="plain mean")  # no method in its metadata: not a result
    widget = DiagnosticsWidget(viewer)
    assert widget.result.choices == ()  # only mean layers made by a method are offered
    assert [c.name for c in widget.measurement.choices if c is not None] == ["plain mean"]
    assert widget.run() is None
    assert len(errors) == 1 and "mean layer" in errors[0]
    assert [lyr.name for lyr in viewer.layers] == ["plain mean"]


def test_cancelling_dip_keeps_the_best_iterate_and_stops_the_worker(viewer, qtbot, small_pair, measurement, errors, reconstruct_in_dock):
    x, _A, _noise, y = small_pair
    widget, task = reconstruct_in_dock(measurement, "dip", wait=False, iterations=5000, depth=3, width=8)
    qtbot.waitUntil(lambda: task.progress_bar.n >= 8, timeout=120_000)
    widget.controls.cancel()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert errors == [] and task.cancelled
    mean = viewer.layers["meas · dip mean"]
    assert mean.data.shape == y.shape and np.isfinite(mean.data).all()
    meta = mean.metadata["invimg"]
    assert meta["cancelled"] and meta["method"] == "dip" and meta["output"] == "mean"
    assert not task._thread.is_alive() and running_tasks() == []
    assert widget.controls.run_button.enabled
