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
    bad = da.from_array(np.zeros((4, 8, 8), np.float32), chunks=2).map_blocks(lambda b: b / 0 if b.size else b)

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
