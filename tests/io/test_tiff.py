"""TIFF / OME-TIFF / ImageJ-TIFF round trips keep data, axes, pixel sizes and optics; missing sizes are reported."""

import numpy as np
import pytest
import tifffile

import napari_invimg as ni


@pytest.mark.parametrize("name", ["stack.ome.tif", "stack.tif"])
def test_round_trip_with_pixel_sizes(tmp_path, name):
    data = np.random.default_rng(0).random((2, 4, 16, 12)).astype(np.float32)
    ni.io.imwrite(tmp_path / name, data, pixel_size_um=(0.3, 0.1, 0.1), axes="tzyx")
    img = ni.io.imread(tmp_path / name)
    np.testing.assert_array_equal(img.data, data)
    assert img.axes == "tzyx" and img.pixel_size_um == pytest.approx((0.3, 0.1, 0.1))
    assert img.scale == pytest.approx((1.0, 0.3, 0.1, 0.1)) and "assumed" not in img.metadata
    lazy = ni.io.imread(tmp_path / name, lazy=True)
    assert lazy.lazy and np.array_equal(lazy.data.compute(), data)


def test_ome_optics_and_dask_writing(tmp_path):
    da = pytest.importorskip("dask.array")
    data = da.from_array(np.arange(3 * 8 * 8, dtype=np.uint16).reshape(3, 8, 8), chunks=(1, 8, 8))
    ni.io.imwrite(tmp_path / "b.ome.tif", data, pixel_size_um=(0.5, 0.2, 0.2),
                  metadata={"na": 1.4, "wavelength_um": 0.52, "immersion_index": 1.515})
    img = ni.io.imread(tmp_path / "b.ome.tif")
    assert img.data.dtype == np.uint16 and np.array_equal(img.data, data.compute())
    assert img.metadata["na"] == 1.4 and img.metadata["immersion_index"] == 1.515
    assert img.metadata["wavelength_um"] == pytest.approx(0.52)


def test_missing_pixel_size_is_assumed_with_a_warning(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((10, 10), np.uint8))
    with pytest.warns(UserWarning, match="assumed 1 µm"):
        img = ni.io.imread(tmp_path / "plain.tif")
    assert img.pixel_size_um == (1.0, 1.0) and img.metadata["assumed"] == ["pixel_size_y_um=1.0",
                                                                         "pixel_size_x_um=1.0"]


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        ni.io.imread(tmp_path / "nope.tif")
    with pytest.raises(ValueError, match="unknown image format"):
        ni.io.imread(tmp_path / "x.png")
    with pytest.raises(ValueError, match="pixel sizes"):
        ni.io.imwrite(tmp_path / "a.tif", np.zeros((4, 4, 4)), pixel_size_um=(1.0, 1.0))
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    with pytest.raises(ValueError, match="RGB"):
        ni.io.imread(tmp_path / "rgb.tif")
