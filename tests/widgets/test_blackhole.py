"""The Black hole docks driven in a real viewer: the observation dock (coverage, simulate, save/load UVFITS) makes
observation layers; the imaging dock finds them (also one opened from a dropped .uvfits file) and images them."""

from __future__ import annotations

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.api import methods_for
from napari_invimg.widgets.blackhole import BlackHoleImagingWidget
from napari_invimg.widgets.blackhole_observation import BlackHoleObservationWidget
from napari_invimg.widgets.uvfits_reader import observation_of

pytestmark = pytest.mark.gui


def test_observation_dock_then_imaging_dock(viewer, qtbot, errors, tmp_path):
    widget = BlackHoleObservationWidget(viewer)
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
    assert errors == []
    dirty = viewer.layers["sky ring · observation · dirty image"]
    obs = observation_of(dirty)  # the observation travels with its layer
    assert obs is not None and len(obs) > 100
    np.testing.assert_allclose(dirty.scale, (2.5, 2.5))
    assert str(dirty.units[-1]) == "microarcsecond"
    assert widget.sky.value is not None and widget.sky.value.name == sky.name
    assert widget.saved.value.name == dirty.name
    viewer.layers.remove(microscopy)

    path = tmp_path / "ring.uvfits"
    widget.save(path)
    task = widget.load(path)
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    loaded = viewer.layers["ring · dirty image"]
    np.testing.assert_allclose(observation_of(loaded).vis, obs.vis, rtol=1e-5, atol=1e-7)

    imaging = BlackHoleImagingWidget(viewer)
    viewer.window.add_dock_widget(imaging)
    assert imaging.observation.value.name == loaded.name  # the newest (here also the selected) observation layer
    assert imaging.npix.value == 64 and imaging.fov.value == pytest.approx(160.0)  # the layer's own grid
    imaging.data.value = "visibilities"
    assert imaging.method.choices[0] == "rml" and sorted(imaging.method.choices) == sorted(
        methods_for(ni.blackhole.Interferometer))
    imaging.method.value = "rml"
    imaging.form["iterations"].value = 60
    task = imaging.run()
    qtbot.waitUntil(lambda: task.done, timeout=120_000)
    assert errors == []
    mean = viewer.layers["ring · rml mean"]
    np.testing.assert_allclose(mean.scale, (2.5, 2.5))
    assert str(mean.units[0]) == "microarcsecond"
    meta = mean.metadata["invimg"]
    assert meta["method"] == "rml" and {"visibility", "closure phase"} <= set(meta["normalized_residuals"])
    assert "closure phase" in imaging.residuals.value
    assert ni.metrics.nxcorr(mean.data, sky.data) > 0.6

    # closures offer only what can image closures; an impossible request is refused with a sentence
    imaging.data.value = "closures only"
    assert "clean" not in imaging.method.choices and "rml" in imaging.method.choices
    imaging.observation.value = None
    assert imaging.run() is None and any("observation" in e for e in errors)


def test_a_dropped_uvfits_is_imaged(viewer, qtbot, errors, tmp_path):
    """Drag and drop: the reader's dirty-image layer carries the observation; the imaging dock picks it up."""
    sky = ni.blackhole.models.get("ring", 32, 160.0)
    obs = ni.blackhole.simulate(sky, fov_uas=160.0, duration_hours=8.0, seed=1)
    path = obs.save_uvfits(tmp_path / "dropped.uvfits")
    imaging = BlackHoleImagingWidget(viewer)
    viewer.window.add_dock_widget(imaging)
    assert imaging.observation.value is None
    viewer.open(str(path), plugin="napari-invimg")
    layer = viewer.layers["dropped · dirty image"]
    assert imaging.observation.value.name == layer.name and len(imaging.obs) == len(obs)
    assert str(layer.units[0]) == "microarcsecond"
    imaging.npix.value = 32
    imaging.form["iterations"].value = 20
    task = imaging.run()
    qtbot.waitUntil(lambda: task.done, timeout=120_000)
    assert errors == [] and task.error is None
    assert np.isfinite(viewer.layers["dropped · rml mean"].data).all()


def test_the_imaging_form_shows_closure_parameters_for_closures_only(viewer):
    """``linearized_moves`` and ``centroid_sd`` act on closures: the form shows them when the data are closures and
    hides them for visibilities, following the data choice while the method stays; the API records them as ignored
    on visibilities."""
    imaging = BlackHoleImagingWidget(viewer)
    imaging.data.value = "visibilities"
    imaging.method.value = "gmrf_hmc"
    shown = {w.name for w in imaging.form}
    assert "linearized_moves" not in shown and "centroid_sd" not in shown and "high_frequency_gain" in shown
    imaging.data.value = "closures only"
    assert imaging.method.value == "gmrf_hmc"
    assert {"linearized_moves", "centroid_sd"} <= {w.name for w in imaging.form}
    imaging.form.set_values({"high_frequency_gain": 3.5})
    imaging.data.value = "visibilities"
    assert "linearized_moves" not in {w.name for w in imaging.form}
    assert imaging.form.values()["high_frequency_gain"] == 3.5  # a value typed in both forms is kept
    from napari_invimg.methods import registry

    method = registry.get("gmrf_hmc")
    assert set(method.ignored_params(ni.blackhole.Interferometer, {"linearized_moves": 5, "centroid_sd": 0.02})) == {
        "linearized_moves"}
    assert method.ignored_params(ni.blackhole.Closures, {"linearized_moves": 5}) == {}
