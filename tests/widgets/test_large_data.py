"""Large data in the GUI: a dask-backed layer reconstructed tile by tile into Zarr; a recipe saved from a result
layer and replayed by the command line reproduces the layer exactly; the reader opens files with their scale."""

from __future__ import annotations

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.cli import main
from napari_invimg.widgets import files
from napari_invimg.widgets.reconstruct import ReconstructWidget
from napari_invimg.widgets.recipes import save_layer_recipe

pytestmark = pytest.mark.gui
da = pytest.importorskip("dask.array")


def test_dask_layer_is_reconstructed_tile_by_tile(viewer, qtbot, small_pair, errors, tmp_path, monkeypatch):
    monkeypatch.setattr(files, "results_folder", lambda: str(tmp_path))
    _x, A, noise, y = small_pair
    meta = {"invimg": {"operator": A.spec(), "noise": noise.spec(), "seed": 0}}
    layer = viewer.add_image(da.from_array(y, chunks=32), name="big", scale=(0.1, 0.1), metadata=meta)
    widget = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.measurement.value = layer
    widget.method.value = "richardson_lucy"
    widget.params.set_values({"iterations": 5, "stop": "none"})
    task = widget.run()
    qtbot.waitUntil(lambda: task.done, timeout=120_000)
    assert errors == []
    mean = viewer.layers["big · richardson_lucy mean"]
    assert isinstance(mean.data, da.Array) and mean.data.shape == y.shape
    np.testing.assert_allclose(mean.scale, (0.1, 0.1))
    info = mean.metadata["invimg"]
    assert info["tiling"]["tiles"] >= 1 and info["tiling"]["store"].startswith(str(tmp_path))
    ref = ni.reconstruct(y, A, "richardson_lucy", noise=noise, **info["tiling"]["resolved_params"]).mean
    assert np.abs(np.asarray(mean.data) - ref).max() < 1e-3 * np.ptp(y)
    assert task.progress_bar.total == info["tiling"]["tiles"]


def test_dask_layer_offers_the_methods_that_tile(viewer, small_pair):
    _x, A, noise, y = small_pair
    meta = {"invimg": {"operator": A.spec(), "noise": noise.spec(), "seed": 0}}
    lazy = viewer.add_image(da.from_array(y, chunks=32), name="big", metadata=meta)
    eager = viewer.add_image(y, name="small", metadata=meta)
    widget = ReconstructWidget(viewer)
    widget.measurement.value = lazy
    offered = set(widget.method.choices)
    assert {"richardson_lucy", "pnp_admm", "pnp_pgd"} <= offered and "wiener" not in offered
    widget.method.value = "pnp_admm"
    assert "tile by tile" in widget.about.value
    widget.measurement.value = eager
    assert "wiener" in set(widget.method.choices)


def test_recipe_from_widget_layer_replays_exactly_on_the_command_line(viewer, qtbot, measurement, small_pair,
                                                                     errors, tmp_path):
    _x, _A, _noise, y = small_pair
    widget = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.measurement.value = measurement
    widget.method.value = "richardson_lucy"
    widget.params.set_values({"iterations": 15})
    task = widget.run()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    mean = viewer.layers["meas · richardson_lucy mean"]
    save_layer_recipe(mean, tmp_path / "recipe.json")
    with pytest.raises(ValueError, match="no napari-invimg reconstruction"):
        save_layer_recipe(measurement, tmp_path / "x.json")
    files.write_image(str(tmp_path / "meas.ome.tif"), measurement.data, {"scale": measurement.scale})
    assert main(["run", str(tmp_path / "recipe.json"), str(tmp_path / "meas.ome.tif"), "-o",
                 str(tmp_path / "out.ome.zarr"), "-q"]) == 0
    out = ni.io.imread(tmp_path / "out.ome.zarr")
    np.testing.assert_array_equal(np.asarray(out.data), task.result.mean)
    assert out.pixel_size_um == pytest.approx((0.1, 0.1))
    viewer.open(str(tmp_path / "out.ome.zarr"), plugin="napari-invimg")
    opened = viewer.layers["out.ome.zarr"]
    np.testing.assert_allclose(opened.scale, (0.1, 0.1))
    assert opened.metadata["invimg"]["method"] == "richardson_lucy"
    assert errors == []
