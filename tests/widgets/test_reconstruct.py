"""The Reconstruct dock widget driven in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.widgets._models import ParameterForm
from napari_invimg.widgets._runner import running_tasks
from napari_invimg.widgets.reconstruct import ReconstructWidget

pytestmark = pytest.mark.gui


def _widget(viewer, layer, method="richardson_lucy", **params):
    widget = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.measurement.value = layer
    if method is not None:
        widget.method.value = method
    widget.params.set_values(params)
    return widget


def test_reconstruct_from_metadata_adds_mean_with_geometry(viewer, qtbot, small_pair, measurement, errors):
    x, _A, _noise, y = small_pair
    widget = _widget(viewer, measurement, iterations=30)
    assert widget.source.value == "metadata"
    assert "richardson_lucy" in widget.method.choices
    task = widget.run()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert errors == []
    mean = viewer.layers["meas · richardson_lucy mean"]
    assert mean.data.shape == y.shape
    np.testing.assert_allclose(mean.scale, (0.1, 0.1))
    np.testing.assert_allclose(mean.translate, (1.0, 2.0))
    meta = mean.metadata["invimg"]
    assert meta["method"] == "richardson_lucy" and meta["input"] == "meas" and meta["output"] == "mean"
    assert meta["operator"]["type"] == "Blur" and meta["noise"]["type"] == "PoissonGaussian"
    assert meta["params"]["iterations"] == 30 and meta["seed"] == 0 and "version" in meta and "device" in meta
    assert ni.metrics.psnr(mean.data, x) > ni.metrics.psnr(y, x) + 1.0
    assert widget.controls.run_button.enabled and not widget.controls.cancel_button.enabled
    # the plot holds the run's misfit, redrawn at the end with every iteration, and its target line (1)
    assert widget.history is not None and widget.history.quantity.value == "misfit"
    steps = [s for s, _ in widget.history.history["misfit"]]
    assert steps == list(range(1, meta["iterations"] + 1))
    lines = widget.history.axes.lines
    assert len(lines) == 2 and list(lines[1].get_ydata()) == [1.0, 1.0]
    assert widget.history.figure.get_facecolor()[:3] != (1.0, 1.0, 1.0)  # themed like napari, not a white box

    # re-running from the result's metadata updates the same layer in place
    mean.data = np.zeros_like(mean.data)
    again = widget.rerun_from(mean)
    qtbot.waitUntil(lambda: again.done, timeout=60_000)
    assert [lyr.name for lyr in viewer.layers] == ["meas", "meas · richardson_lucy mean"]
    assert ni.metrics.psnr(viewer.layers["meas · richardson_lucy mean"].data, x) > ni.metrics.psnr(y, x) + 1.0
    assert errors == []


def test_nan_measurement_shows_error_and_adds_no_layer(viewer, small_pair, errors):
    _x, A, noise, y = small_pair
    bad = y.copy()
    bad[3, 4] = np.nan
    layer = viewer.add_image(bad, name="bad", metadata={"invimg": {"operator": A.spec(), "noise": noise.spec()}})
    widget = _widget(viewer, layer)
    assert widget.run() is None
    assert len(errors) == 1 and "NaN" in errors[0]
    assert [lyr.name for lyr in viewer.layers] == ["bad"]


def test_cancel_keeps_best_iterate(viewer, qtbot, measurement, errors):
    widget = _widget(viewer, measurement, iterations=100_000, stop="none")
    task = widget.run()
    name = "meas · richardson_lucy mean"
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=30_000)  # first live preview
    widget.controls.cancel()
    qtbot.waitUntil(lambda: task.done, timeout=30_000)
    assert task.cancelled and errors == []
    mean = viewer.layers[name]
    assert mean.data.shape == measurement.data.shape and np.isfinite(mean.data).all()
    assert mean.metadata["invimg"]["cancelled"] is True
    assert mean.metadata["invimg"]["method"] == "richardson_lucy"
    assert running_tasks() == [] and not task.worker.is_running


def test_forward_model_built_here_on_a_3d_stack(viewer, qtbot, errors):
    x = ni.datasets.fluorescence((12, 32, 32), seed=2)
    y = ni.simulate(x, ni.operators.Blur(ni.psf.gaussian((5, 7, 7), 1.2), x.shape), ni.noise.Gaussian(0.01), seed=1)
    layer = viewer.add_image(y, name="stack", scale=(0.3, 0.1, 0.1))
    widget = _widget(viewer, layer, method=None)
    assert widget.source.value == "built"
    widget.forward.kind.value = "Blur"
    widget.forward.psf_kind.value = "gaussian"
    widget.forward.psf_size.value = 7
    widget.forward.psf_size_z.value = 5
    widget.forward.sigma.value = 1.2
    widget.method.value = "wiener"
    task = widget.run()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert errors == []
    mean = viewer.layers["stack · wiener mean"]
    assert mean.data.shape == x.shape
    np.testing.assert_allclose(mean.scale, (0.3, 0.1, 0.1))
    assert mean.metadata["invimg"]["operator"]["psf"].shape == (5, 7, 7)
    assert ni.metrics.psnr(mean.data, x) > ni.metrics.psnr(y, x)


def test_parameter_form_follows_the_schema():
    form = ParameterForm(ni.method_info("tikhonov_cg")["parameters"])
    values = form.values()
    assert values["lam"] is None and values["iterations"] == 100 and values["regularizer"] == "gradient"
    form.set_values({"lam": 0.01, "iterations": 7})
    assert form.values()["lam"] == pytest.approx(0.01) and form.values()["iterations"] == 7


def test_form_shows_mri_coil_compression_only_for_mri_data(viewer, measurement):
    """``coil_energy`` acts on multi-coil MRI operators only: hidden for a deconvolution, shown for a k-space."""
    widget = _widget(viewer, measurement, method="tv")
    assert widget.method.value == "tv" and "lam" in widget.params.values()
    assert "coil_energy" not in widget.params.values()
    scan = ni.mri.simulate_kspace(ni.mri.shepp_logan((32, 32)), n_coils=4, acceleration=2.0, seed=0)
    meta = {"invimg": {"operator": scan.operator.spec(), "noise": ni.noise.Gaussian(scan.sigma).spec(),
                       "kspace": scan.kspace}}
    kspace = viewer.add_image(np.abs(scan.kspace), name="k-space", metadata=meta)
    widget.measurement.value = kspace
    widget.method.value = "tv"
    assert widget.operator_kind().endswith("MRI")
    assert widget.params.values()["coil_energy"] is None  # shown, empty = the operator's default


def test_error_inside_the_worker_leaves_no_layer(viewer, qtbot, errors):
    """A method that cannot use the layer's operator fails in the worker: an error notification, no layer."""
    x = ni.datasets.fluorescence((32, 32), seed=0)
    A = ni.operators.Inpainting(ni.operators.random_mask(x.shape, 0.5, seed=0))
    y = ni.simulate(x, A, ni.noise.Gaussian(0.01), seed=0)
    layer = viewer.add_image(y, name="holes", metadata={"invimg": {"operator": A.spec()}})
    widget = _widget(viewer, layer)
    assert "wiener" not in widget.method.choices  # the list only offers methods that fit the operator
    task = widget.run(method="wiener")
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert task.error is not None and len(errors) == 1 and "wiener" in errors[0]
    assert [lyr.name for lyr in viewer.layers] == ["holes"]


def test_final_layer_is_exactly_the_returned_mean(viewer, qtbot, measurement, errors):
    """Live previews never outlive the result: the mean layer holds the returned mean, bit for bit."""
    for _ in range(3):
        widget = _widget(viewer, measurement, iterations=80, stop="none")
        task = widget.run()
        qtbot.waitUntil(lambda: task.done, timeout=60_000)
        qtbot.wait(50)  # let any late event arrive
        np.testing.assert_array_equal(viewer.layers["meas · richardson_lucy mean"].data, task.result.mean)
    assert errors == []
