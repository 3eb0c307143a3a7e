"""Reader and writer contributions: pixel sizes become layer scales and back; recipes travel with the file."""

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.widgets.files import get_reader, write_image

pytest.importorskip("napari")


def test_reader_sets_scale_axes_and_optics(tmp_path):
    data = np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32)
    ni.io.imwrite(tmp_path / "a.ome.tif", data, pixel_size_um=(0.3, 0.1, 0.1), axes="czyx",
                  metadata={"na": 1.3, "wavelength_um": 0.6})
    assert get_reader(str(tmp_path / "a.png")) is None
    (layer,) = get_reader(str(tmp_path / "a.ome.tif"))(str(tmp_path / "a.ome.tif"))
    arr, kwargs, kind = layer
    assert kind == "image" and kwargs["channel_axis"] == 0 and kwargs["scale"] == pytest.approx([0.3, 0.1, 0.1])
    assert kwargs["axis_labels"] == ["z", "y", "x"] and kwargs["metadata"]["invimg_file"]["na"] == 1.3


def test_writer_round_trip_keeps_scale_and_recipe(tmp_path):
    y = np.random.default_rng(1).random((24, 24)).astype(np.float32)
    rec = ni.reconstruct(y, ni.operators.Identity(y.shape), "wiener", noise=ni.noise.Gaussian(0.1), lam=0.5)
    meta = {"scale": (0.2, 0.2), "axis_labels": ("y", "x"), "metadata": {"invimg": rec.info}}
    write_image(str(tmp_path / "r.ome.zarr"), rec.mean, meta)
    ((arr, kwargs, _),) = get_reader(str(tmp_path / "r.ome.zarr"))(str(tmp_path / "r.ome.zarr"))
    assert kwargs["scale"] == [0.2, 0.2]
    np.testing.assert_array_equal(np.asarray(arr), rec.mean)
    np.testing.assert_array_equal(ni.replay(kwargs["metadata"]["invimg"], y).mean, rec.mean)


def test_reader_opens_a_pyramid_as_a_multiscale_layer(viewer, tmp_path):
    data = np.random.default_rng(3).random((2, 520, 300)).astype(np.float32)
    path = tmp_path / "big.ome.zarr"
    ni.io.imwrite(path, data, pixel_size_um=(0.4, 0.1, 0.1))
    ni.io.ome_zarr.write_pyramid(path, smallest=256)
    ((levels, kwargs, kind),) = get_reader(str(path))(str(path))
    assert kind == "image" and kwargs["multiscale"] and [lv.shape for lv in levels] == [(2, 520, 300), (2, 260, 150), (2, 130, 75)]
    layer = viewer.add_image(levels, **kwargs)
    assert layer.multiscale and len(layer.data) == 3 and layer.scale == pytest.approx([0.4, 0.1, 0.1])
