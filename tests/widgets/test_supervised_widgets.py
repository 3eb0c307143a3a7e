"""Issue #18 in real viewers: the Train supervised dock (train, cancel), care / unrolled / neural_field in the
Reconstruct dock, and the Diagnostics dock's hallucination map and robustness sections."""

from __future__ import annotations

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.methods.supervised import load_supervised
from napari_invimg.widgets.diagnostics import DiagnosticsWidget
from napari_invimg.widgets.train_supervised import ACQUIRED, TrainSupervisedWidget

pytestmark = pytest.mark.gui


def _train_widget(viewer, tmp_path, **values):
    widget = TrainSupervisedWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.output.value = tmp_path / "mine.pt"
    for name, value in values.items():
        getattr(widget, name).value = value
    return widget



def test_train_care_from_simulated_pairs_then_reconstruct_and_diagnose(viewer, qtbot, errors, tmp_path, small_pair,
                                                                        measurement, reconstruct_in_dock):
    x, A, noise, y = small_pair
    clean = viewer.add_image(ni.datasets.fluorescence((48, 48), seed=40), name="clean")
    widget = _train_widget(viewer, tmp_path, steps=3, patch=32, net_width=8)
    widget.clean.value = [clean]
    widget.forward.kind.value = "Blur"
    widget.forward.psf_kind.value = "gaussian"
    widget.forward.psf_size.value = 9
    widget.forward.sigma.value = 1.5
    widget.noise.kind.value = "PoissonGaussian"
    task = widget.run()
    assert task is not None
    qtbot.waitUntil(lambda: task.done, timeout=120_000)
    assert errors == [] and not task.cancelled
    path = tmp_path / "mine.pt"
    _, meta = load_supervised(path, "care")
    assert meta["steps_done"] == 3 and meta["operator"]["type"] == "Blur" and meta["noise"]["type"] == "PoissonGaussian"
    assert widget.plot is None or "loss" in widget.plot.history
    assert "care training · preview" not in viewer.layers and str(path) in widget.report.value

    _, rtask = reconstruct_in_dock(measurement, "care", weights=str(path))
    assert errors == [] and rtask.result.info["uncertainty"] == "ensemble"
    mean = viewer.layers["meas · care mean"]
    np.testing.assert_allclose(mean.scale, (0.1, 0.1))
    assert any(lyr.name.startswith("meas · care std") for lyr in viewer.layers)

    diag = DiagnosticsWidget(viewer)
    viewer.window.add_dock_widget(diag)
    diag.result.value = mean
    fraction = diag.hallucination.run()
    assert errors == [] and 0.0 <= fraction <= 1.0
    layer = viewer.layers["meas · care hallucination"]
    assert layer.data.shape == y.shape and layer.metadata["invimg"]["fraction_flagged"] == fraction
    np.testing.assert_allclose(layer.scale, (0.1, 0.1))


def test_training_cancel_keeps_the_partial_model(viewer, qtbot, errors, tmp_path):
    low = viewer.add_image(ni.datasets.fluorescence((48, 48), seed=1) + 0.05, name="low")
    high = viewer.add_image(ni.datasets.fluorescence((48, 48), seed=1), name="high")
    widget = _train_widget(viewer, tmp_path, source=ACQUIRED, steps=5000, patch=32, net_width=8)
    widget.low.value, widget.high.value = low, high
    task = widget.run()
    qtbot.waitUntil(lambda: task.progress_bar.n >= 1, timeout=120_000)
    widget.controls.cancel()
    qtbot.waitUntil(lambda: task.done, timeout=120_000)
    assert errors == [] and task.cancelled
    _, meta = load_supervised(tmp_path / "mine.pt")
    assert meta["cancelled"] is True and 1 <= meta["steps_done"] < 5000 and meta["pairs"] == "acquired"
    assert "partial" in widget.report.value


def test_unrolled_refuses_acquired_pairs_and_missing_layers(viewer, errors, tmp_path):
    widget = _train_widget(viewer, tmp_path, method="unrolled")
    widget.source.value = ACQUIRED
    assert widget.source.value != ACQUIRED  # the unrolled network learns through the operator
    assert widget.run() is None and "clean image layer" in errors[-1]


def test_training_options_follow_the_method_and_reach_train_supervised(viewer, qtbot, errors, tmp_path, monkeypatch):
    """The dock shows the chosen method's own train_supervised keywords at the function's defaults and passes
    what the user set (captured: no training runs)."""
    import inspect
    from pathlib import Path

    from napari_invimg.widgets import train_supervised as dock_module

    calls: list[dict] = []

    def capture(method, **kwargs):
        calls.append({"method": method, **kwargs})
        return Path(kwargs["out"])

    monkeypatch.setattr(dock_module, "train_supervised", capture)
    defaults = {k: v.default for k, v in inspect.signature(ni.train_supervised).parameters.items()}
    clean = viewer.add_image(ni.datasets.fluorescence((48, 48), seed=40), name="clean")
    held = viewer.add_image(ni.datasets.fluorescence((48, 48), seed=41), name="held out")
    widget = _train_widget(viewer, tmp_path)
    widget.clean.value = [clean]
    assert [w.name for w in widget.option_form] == ["keep_best", "weight_decay"] and not widget.takes_validation
    widget.method.value = "unrolled"
    shown = widget.option_form.values()
    assert {"start", "start_pool", "start_refresh", "augment", "keep_best", "weight_decay"} <= set(shown)
    assert widget.takes_validation and "validation_truth" not in shown
    assert shown == {name: defaults[name] for name in shown}  # the function's defaults, typed
    assert widget.option_form["start"].choices == ("cg", "wavelet", "tv")

    widget.option_form.set_values({"start": "wavelet", "start_params": {"wavelet": "haar"}, "start_pool": 2,
                               "start_refresh": 0.5, "augment": True, "keep_best": True, "weight_decay": 1e-4,
                               "iterations": 3})
    widget.validation.value = [held]
    widget.steps.value = 3
    task = widget.run()
    assert task is not None
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert errors == [] and len(calls) == 1
    got = calls[0]
    assert got["method"] == "unrolled" and got["steps"] == 3
    assert (got["start"], got["start_params"], got["start_pool"], got["start_refresh"]) == ("wavelet", {"wavelet": "haar"}, 2, 0.5)
    assert got["augment"] is True and got["keep_best"] is True and got["weight_decay"] == 1e-4 and got["iterations"] == 3
    assert len(got["validation_truth"]) == 1 and np.array_equal(got["validation_truth"][0], held.data)
    assert [np.asarray(t).shape for t in got["truth"]] == [(48, 48)]

    widget.option_form.set_values({"start_params": "'haar'"})  # not a dict: refused before training
    assert widget.run() is None and "start_params" in errors[-1]
    widget.method.value = "care"  # care's options only: the unrolled keywords are not passed
    task = widget.run()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert set(calls[-1]) & {"start", "augment", "start_refresh", "validation_truth"} == set()
    assert calls[-1]["keep_best"] is False and calls[-1]["weight_decay"] == 0.0


def test_unrolled_and_neural_field_in_the_reconstruct_dock(viewer, qtbot, errors, tmp_path, small_pair, measurement, reconstruct_in_dock):
    x, A, noise, y = small_pair
    path = ni.train_supervised("unrolled", truth=[ni.datasets.fluorescence((48, 48), seed=41)], operator=A,
                               noise=noise, steps=2, out=tmp_path / "u.pt", width=8, iterations=2, patch=32)
    reconstruct_in_dock(measurement, "unrolled", weights=str(path))
    assert errors == [] and viewer.layers["meas · unrolled mean"].data.shape == y.shape

    D = ni.operators.Downsampling((32, 32), factor=2)
    small = D.forward(x[:32, :32])
    data = viewer.add_image(small, name="coarse", scale=(0.2, 0.2),
                            metadata={"invimg": {"operator": D.spec(), "noise": ni.noise.Gaussian(0.02).spec()}})
    reconstruct_in_dock(data, "neural_field", iterations=5, upsample=2)
    out = viewer.layers["coarse · neural_field mean"]
    assert errors == [] and out.data.shape == (64, 64)
    np.testing.assert_allclose(out.scale, (0.05, 0.05))


def test_robustness_section_runs_in_the_worker_and_plots(viewer, qtbot, errors, small_pair, measurement, reconstruct_in_dock):
    x, A, noise, y = small_pair
    reconstruct_in_dock(measurement, "richardson_lucy", iterations=20)
    clean = viewer.add_image(x, name="truth")
    diag = DiagnosticsWidget(viewer)
    viewer.window.add_dock_widget(diag)
    diag.result.value = viewer.layers["meas · richardson_lucy mean"]
    section = diag.robustness
    section.images.value = [clean]
    section.values.value = "0.8, 1.2"
    task = section.run()
    assert task is not None
    qtbot.waitUntil(lambda: task.done, timeout=120_000)
    assert errors == []
    assert [(r["perturbation"], r["value"]) for r in section.rows] == [("nominal", None), ("psf_scale", 0.8),
                                                                      ("psf_scale", 1.2)]
    assert "psf_scale" in section.report.value
    if section.figure is not None:
        assert len(section.figure.axes[0].patches) == 2
    section.values.value = "wide"
    assert section.run() is None and "numbers" in errors[-1]
