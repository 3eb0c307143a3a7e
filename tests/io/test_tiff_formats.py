"""What a plain .tif and an OME-TIFF hold: 5D with default axes, complex data, the recipe, the objective in use."""

import warnings

import numpy as np
import pytest
import tifffile

import napari_invimg as ni


@pytest.mark.parametrize("name", ["five.tif", "five.ome.tif"])
def test_five_axes_with_default_axes_round_trip(tmp_path, name):
    data = np.random.default_rng(0).random((2, 3, 4, 8, 6)).astype(np.float32)
    ni.io.imwrite(tmp_path / name, data, (0.3, 0.1, 0.1))
    img = ni.io.imread(tmp_path / name)
    assert img.axes == "tczyx" and img.pixel_size_um == pytest.approx((0.3, 0.1, 0.1))
    np.testing.assert_array_equal(img.data, data)


def test_imagej_order_stays_imagej(tmp_path):
    data = np.random.default_rng(1).random((2, 4, 3, 8, 6)).astype(np.float32)
    ni.io.imwrite(tmp_path / "h.tif", data, (0.3, 0.1, 0.1), axes="tzcyx")
    img = ni.io.imread(tmp_path / "h.tif")
    assert img.metadata["format"] == "imagej-tiff" and img.axes == "tzcyx"
    np.testing.assert_array_equal(img.data, data)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_to_plain_tif_is_lossless_and_said(tmp_path, dtype):
    rng = np.random.default_rng(2)
    data = (rng.random((8, 8)) + 1j * rng.random((8, 8))).astype(dtype)
    with pytest.warns(UserWarning, match="complex"):
        ni.io.imwrite(tmp_path / "c.tif", data, 0.1)
    img = ni.io.imread(tmp_path / "c.tif")
    assert img.data.dtype == dtype
    np.testing.assert_array_equal(img.data, data)


@pytest.mark.parametrize("name", ["r.ome.tif", "r.tif", "r.ome.zarr"])
def test_recipe_survives_every_format(tmp_path, name):
    x = ni.datasets.fluorescence((16, 16), seed=0)
    A = ni.operators.Blur(ni.psf.gaussian((5, 5), sigma=1.0), x.shape)
    rec = ni.reconstruct(A(x), A, "richardson_lucy", iterations=2)
    recipe = ni.io.recipe.to_jsonable(ni.io.recipe_from(rec))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing assumed, nothing lost
        ni.io.imwrite(tmp_path / name, rec.mean, 0.1, metadata={"invimg": recipe, "na": 1.2})
        back = ni.io.imread(tmp_path / name)
    stored = back.metadata["attrs"]["invimg"]
    assert stored == recipe
    from napari_invimg._replay import replay

    replayed = replay(ni.io.load_recipe(stored), A(x))
    np.testing.assert_allclose(replayed.mean, rec.mean, rtol=1e-5, atol=1e-7)


def test_na_comes_from_the_objective_in_use(tmp_path):
    """Two objectives in the instrument; the image's ObjectiveSettings points to the second one."""
    path = tmp_path / "two.ome.tif"
    xml = """<?xml version="1.0" encoding="UTF-8"?>
<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">
  <Instrument ID="Instrument:0">
    <Objective ID="Objective:0:0" LensNA="0.45"/>
    <Objective ID="Objective:0:1" LensNA="1.4"/>
  </Instrument>
  <Image ID="Image:0">
    <InstrumentRef ID="Instrument:0"/>
    <ObjectiveSettings ID="Objective:0:1" RefractiveIndex="1.515"/>
    <Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="8" SizeY="8" SizeZ="1" SizeC="1" SizeT="1"
            PhysicalSizeX="0.1" PhysicalSizeY="0.1">
      <Channel ID="Channel:0:0" SamplesPerPixel="1"/>
      <TiffData IFD="0" PlaneCount="1"/>
    </Pixels>
  </Image>
</OME>"""
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), description=xml.encode(), metadata=None)
    img = ni.io.imread(path)
    assert img.metadata["na"] == 1.4 and img.metadata["immersion_index"] == 1.515
    # without ObjectiveSettings and with two objectives, no NA is guessed
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), metadata=None,
                     description=xml.replace('<ObjectiveSettings ID="Objective:0:1" RefractiveIndex="1.515"/>', "").encode())
    assert "na" not in ni.io.imread(path).metadata
