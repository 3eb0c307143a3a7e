"""napari readers: ours take what they can read and return None for what they cannot (so another reader
can); a .uvfits opens as its dirty image carrying the observation; the new samples open in a viewer."""

import json

import numpy as np
import pytest
import tifffile

import napari_invimg as ni
from napari_invimg.widgets import files, uvfits_reader

pytest.importorskip("napari")


@pytest.fixture(scope="module")
def obs():
    bh = pytest.importorskip("napari_invimg.blackhole")
    return bh.simulate(bh.models.crescent(), seed=2)


def _rgb(p):
    tifffile.imwrite(p, np.zeros((8, 8, 3), np.uint8), photometric="rgb")


def _text(p):
    p.write_text("not an image")


def _foreign_group(p):
    p.mkdir()
    (p / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    (p / ".zattrs").write_text(json.dumps({"something": "else"}))


def _plain_folder(p):
    p.mkdir()
    (p / "readme.txt").write_text("hi")


def _fits_image(p):
    from astropy.io import fits

    fits.PrimaryHDU(np.zeros((4, 4))).writeto(p)


@pytest.mark.parametrize("name, make, reader", [
    ("rgb.tif", _rgb, files.get_reader),
    ("text.tif", _text, files.get_reader),
    ("other.zarr", _foreign_group, files.get_reader),
    ("folder.zarr", _plain_folder, files.get_reader),
    ("image.fits", _fits_image, uvfits_reader.get_reader),
    ("text.uvfits", _text, uvfits_reader.get_reader),
])
def test_a_reader_returns_none_for_a_file_it_cannot_take(tmp_path, name, make, reader):
    make(tmp_path / name)
    assert reader(str(tmp_path / name)) is None


def test_a_damaged_file_of_our_kind_is_taken_and_explained(tmp_path):
    ni.io.imwrite(tmp_path / "good.tif", np.ones((4, 16, 16), np.float32), 0.1)
    data = (tmp_path / "good.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    read = files.get_reader(str(tmp_path / "cut.tif"))
    assert read is not None
    with pytest.raises(ValueError, match="cut.tif is .*truncated"):
        read(str(tmp_path / "cut.tif"))


def test_uvfits_opens_as_a_dirty_image_with_its_observation(tmp_path, obs):
    path = obs.save_uvfits(tmp_path / "m87.uvfits")
    read = uvfits_reader.get_reader(str(path))
    assert read is uvfits_reader.read_uvfits
    (dirty, kw, kind), (pts, pkw, pkind) = read(str(path))
    assert kind == "image" and pkind == "points" and dirty.shape == (64, 64) and np.isfinite(dirty).all()
    back = kw["metadata"][uvfits_reader.OBSERVATION_KEY]
    np.testing.assert_allclose(back.vis, obs.vis, rtol=1e-5, atol=1e-7)
    assert kw["metadata"]["invimg"]["product"] == "dirty image" and kw["scale"] == (2.5, 2.5)
    assert pts.shape == (2 * len(obs), 2)


@pytest.mark.gui
def test_drag_and_drop_and_samples(make_napari_viewer_proxy, tmp_path, obs):
    viewer = make_napari_viewer_proxy()
    path = obs.save_uvfits(tmp_path / "m87.uvfits")
    viewer.open(str(path), plugin="napari-invimg")
    layer = viewer.layers["m87 · dirty image"]
    assert uvfits_reader.observation_of(layer) is not None and len(uvfits_reader.observation_of(layer)) == len(obs)
    viewer.open_sample("napari-invimg", "black_hole")
    dirty = viewer.layers["M87* (simulated) · dirty image"]
    assert uvfits_reader.observation_of(dirty).freq_hz == pytest.approx(230e9)
    viewer.open_sample("napari-invimg", "beads_3d")
    beads = viewer.layers["beads"]
    assert beads.data.shape == (32, 128, 128) and beads.metadata["invimg_file"]["na"] == 1.4
    psf = ni.psf.from_beads(np.asarray(beads.data), (15, 21, 21))
    truth = np.asarray(viewer.layers["beads PSF (truth)"].data)
    assert np.corrcoef(psf.ravel(), truth.ravel())[0, 1] > 0.9
