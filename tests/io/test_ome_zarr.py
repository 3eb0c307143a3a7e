"""OME-Zarr: NGFF multiscales metadata with physical scales, lazy reading, atomic writes."""

import json

import numpy as np
import pytest

import napari_invimg as ni

da = pytest.importorskip("dask.array")


def test_round_trip_and_ngff_metadata(tmp_path):
    data = np.random.default_rng(1).random((2, 5, 20, 24)).astype(np.float32)
    ni.io.imwrite(tmp_path / "a.ome.zarr", da.from_array(data, chunks=(1, 5, 10, 24)), pixel_size_um=(0.4, 0.1, 0.1),
                  axes="czyx")
    attrs = json.loads((tmp_path / "a.ome.zarr" / ".zattrs").read_text())
    ms = attrs["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == list("czyx") and ms["axes"][1]["unit"] == "micrometer"
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 0.4, 0.1, 0.1]
    img = ni.io.imread(tmp_path / "a.ome.zarr")
    assert img.lazy and img.axes == "czyx" and img.pixel_size_um == (0.4, 0.1, 0.1)
    np.testing.assert_array_equal(img.data.compute(), data)
    assert not list(tmp_path.glob(".*partial*"))


def test_failed_write_leaves_nothing(tmp_path):
    bad = da.from_array(np.zeros((4, 8, 8), np.float32), chunks=2).map_blocks(lambda b: b + np.inf if b.size else b)

    def explode(block):
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space"):
        ni.io.imwrite(tmp_path / "full.zarr", bad.map_blocks(explode, dtype=np.float32), pixel_size_um=1.0)
    assert list(tmp_path.iterdir()) == []


def test_plain_zarr_array_gets_assumed_sizes(tmp_path):
    import zarr

    zarr.save_array(str(tmp_path / "raw.zarr"), np.ones((6, 6), np.float32))
    with pytest.warns(UserWarning, match="assumed"):
        img = ni.io.imread(tmp_path / "raw.zarr")
    assert img.pixel_size_um == (1.0, 1.0) and len(img.metadata["assumed"]) == 2


def test_pyramid_levels_read_by_an_independent_reader(tmp_path):
    """``write_pyramid`` adds 2×2-mean levels with NGFF scales; ome-zarr-py (an independent reader) and
    ome-zarr-models (the NGFF 0.4 schema) accept the image and see every level."""
    ome_reader = pytest.importorskip("ome_zarr.reader")
    ome_io = pytest.importorskip("ome_zarr.io")
    data = np.random.default_rng(2).random((3, 600, 522)).astype(np.float32)
    path = tmp_path / "p.ome.zarr"
    ni.io.imwrite(path, data, pixel_size_um=(0.5, 0.1, 0.1))
    assert ni.io.ome_zarr.write_pyramid(path, smallest=256) == 3
    levels = ni.io.ome_zarr.read_levels(path)
    assert [lv.shape for lv in levels] == [(3, 600, 522), (3, 300, 261), (3, 150, 130)]
    np.testing.assert_allclose(levels[1].compute(), data.reshape(3, 300, 2, 261, 2).mean((2, 4)), rtol=1e-6)
    np.testing.assert_allclose(levels[2].compute()[:, :, :130],
                               data[:, :, :520].reshape(3, 150, 4, 130, 4).mean((2, 4)), rtol=1e-5)
    assert ni.io.imread(path).metadata["levels"] == 3
    node = list(ome_reader.Reader(ome_io.parse_url(str(path)))())[0]
    assert [tuple(d.shape) for d in node.data] == [lv.shape for lv in levels]
    scales = [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]
    assert scales == [[0.5, 0.1, 0.1], [0.5, 0.2, 0.2], [0.5, 0.4, 0.4]]
    np.testing.assert_allclose(np.asarray(node.data[2]), levels[2].compute())
    models = pytest.importorskip("ome_zarr_models.v04.image")
    import zarr

    validated = models.Image.from_zarr(zarr.open_group(str(path), mode="r"))
    assert len(validated.attributes.multiscales[0].datasets) == 3
