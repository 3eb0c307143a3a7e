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


def test_run_replays_a_half_resolution_dip_on_an_odd_image_and_reports_a_too_small_one(tmp_path, capsys):
    """``dip(resolution="half")`` from a recipe on an odd-sized image reproduces the API's result; a recipe whose
    depth the image is too small for fails that input with our message (exit code 1), not a torch error."""
    y = np.random.default_rng(0).uniform(0.2, 1.0, (7, 37)).astype(np.float32)
    A = ni.operators.Identity(y.shape)
    rec = ni.reconstruct(y, A, "dip", ni.noise.Gaussian(0.05), resolution="half", iterations=3, width=4, depth=3)
    ni.io.imwrite(tmp_path / "thin.ome.tif", y, pixel_size_um=0.1)
    ni.io.save_recipe(rec, tmp_path / "recipe.json")
    assert main(["run", str(tmp_path / "recipe.json"), str(tmp_path / "thin.ome.tif"), "-o",
                 str(tmp_path / "out.ome.tif"), "-q"]) == 0
    np.testing.assert_array_equal(ni.io.imread(tmp_path / "out.ome.tif").data, rec.mean)
    tiny = ni.reconstruct(y[:, :16], ni.operators.Identity((7, 16)), "dip", ni.noise.Gaussian(0.05),
                          resolution="half", iterations=3, width=4, depth=2)
    ni.io.save_recipe(tiny, tmp_path / "deep.json")
    recipe = (tmp_path / "deep.json").read_text().replace('"depth": 2', '"depth": 5')
    (tmp_path / "deep.json").write_text(recipe)
    ni.io.imwrite(tmp_path / "short.ome.tif", y[:, :16], pixel_size_um=0.1)
    capsys.readouterr()
    assert main(["run", str(tmp_path / "deep.json"), str(tmp_path / "short.ome.tif"), "-o",
                 str(tmp_path / "short_out.ome.tif"), "-q"]) == 1
    captured = capsys.readouterr()
    assert "too small for 4 levels" in captured.out + captured.err


def test_python_dash_m_runs_the_command_line():
    import os
    import subprocess
    import sys
    from pathlib import Path

    import napari_invimg

    env = {**os.environ, "PYTHONPATH": str(Path(napari_invimg.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    ok = subprocess.run([sys.executable, "-m", "napari_invimg", "--help"], capture_output=True, text=True, env=env,
                        timeout=120)
    assert ok.returncode == 0 and "recipe" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "napari_invimg", "run"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert bad.returncode == 2 and "required" in bad.stderr
