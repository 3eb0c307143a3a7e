"""The napari-invimg command line: replaying a recipe on OME-TIFF files reproduces the API call exactly."""

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.cli import main


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    x = ni.datasets.fluorescence((48, 40), seed=3).astype(np.float32)
    A = ni.operators.Blur(ni.psf.gaussian((7, 7), 1.4), x.shape)
    y = ni.simulate(x, A, ni.noise.PoissonGaussian(0.02, 0.01), seed=1).astype(np.float32)
    ni.io.imwrite(d / "cell.ome.tif", y, pixel_size_um=(0.065, 0.065), metadata={"na": 1.3, "wavelength_um": 0.6})
    rec = ni.reconstruct(y, A, "richardson_lucy", iterations=10)  # noise estimated, as in the widget
    ni.io.save_recipe(rec, d / "recipe.json")
    return d, y, rec


def test_run_reproduces_the_reconstruction(case):
    d, y, rec = case
    code = main(["run", str(d / "recipe.json"), str(d / "cell.ome.tif"), "-o", str(d / "out.ome.tif"), "-q"])
    assert code == 0
    out = ni.io.imread(d / "out.ome.tif")
    assert out.pixel_size_um == pytest.approx((0.065, 0.065))
    np.testing.assert_array_equal(out.data, rec.mean)
    assert not list(d.glob(".*partial*"))


def test_time_lapse_folder_and_exit_codes(case, capsys):
    d, y, rec = case
    folder = d / "batch"
    folder.mkdir()
    ni.io.imwrite(folder / "movie.tif", np.stack([y, y[::-1]]), pixel_size_um=0.1, axes="tyx")
    (folder / "broken.tif").write_bytes(b"not a tiff")
    code = main(["run", str(d / "recipe.json"), str(folder), "-o", str(d / "results"), "-q"])
    table = capsys.readouterr().out
    assert code == 1 and "failed" in table and "ok" in table  # one bad file, the other done
    movie = ni.io.imread(d / "results" / "movie.ome.zarr")
    assert movie.data.shape == (2, 48, 40) and movie.axes == "tyx"
    np.testing.assert_array_equal(np.asarray(movie.data[0]), rec.mean)
    assert not (d / "results" / "broken.ome.zarr").exists()
    assert main(["run", str(d / "missing.json"), str(d / "cell.ome.tif")]) == 2
    assert main(["run", str(d / "recipe.json"), str(d / "nothing*.tif")]) == 2
    assert main(["frobnicate"]) == 2


def test_help_explains_recipes(capsys):
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "recipe is a JSON file" in out and "Exit codes" in out


def test_bounded_memory_reaches_the_tiler_and_the_output_recipe(case, monkeypatch):
    """A file too large for memory is tiled; ``--bounded-memory`` makes the pilot the bounded region, which the
    output's recipe records (so a replay of that recipe tiles the same way)."""
    import json
    import types

    import psutil
    import zarr

    from napari_invimg import tiling

    d, y, rec = case
    ni.io.imwrite(d / "big.ome.zarr", y, pixel_size_um=(0.065, 0.065))
    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(available=1024))  # "too large"
    monkeypatch.setattr(tiling, "_workers", lambda client: (2, 2.0**34))  # ... but the tiles have room
    for flag, pilot in (([], "frame"), (["--bounded-memory"], "bounded")):
        out = d / f"big-{pilot}.ome.zarr"
        assert main(["run", str(d / "recipe.json"), str(d / "big.ome.zarr"), "-o", str(out), "-q", *flag]) == 0
        recipe = zarr.open_group(str(out), mode="r").attrs["invimg"]
        recipe = json.loads(recipe) if isinstance(recipe, str) else recipe
        assert recipe["tiling"]["pilot"] == pilot
        assert np.isfinite(np.asarray(ni.io.imread(out).data)).all()
