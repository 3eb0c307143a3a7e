"""Recipes: saved from a reconstruction or a layer's metadata, loaded, replayed to the identical result."""

import json

import numpy as np
import pytest

import napari_invimg as ni


@pytest.fixture(scope="module")
def case():
    x = ni.datasets.fluorescence((40, 36), seed=2).astype(np.float32)
    A = ni.operators.Blur(ni.psf.gaussian((7, 7), 1.2), x.shape)
    y = ni.simulate(x, A, ni.noise.Gaussian(0.02), seed=3).astype(np.float32)
    return y, A


def test_round_trip_replays_exactly(tmp_path, case):
    y, A = case
    rec = ni.reconstruct(y, A, "wiener", noise=ni.noise.Gaussian(0.02), seed=4)  # λ by the discrepancy principle
    path = ni.io.save_recipe(rec, tmp_path / "r.json")
    raw = json.loads(path.read_text())
    assert raw["method"] == "wiener" and raw["seed"] == 4 and "__ndarray__" in raw["operator"]["psf"]
    recipe = ni.io.load_recipe(path)
    np.testing.assert_array_equal(recipe["operator"]["psf"], A.psf_array)
    np.testing.assert_array_equal(ni.replay(recipe, y).mean, rec.mean)
    # from a layer's metadata, as the widget stores it
    ni.io.save_recipe({"invimg": rec.info}, tmp_path / "layer.json")
    np.testing.assert_array_equal(ni.replay(tmp_path / "layer.json", y).mean, rec.mean)


def test_replay_on_a_dask_array_tiles(case):
    da = pytest.importorskip("dask.array")
    y, A = case
    rec = ni.reconstruct(y, A, "richardson_lucy", noise=ni.noise.Gaussian(0.02), iterations=10, stop="none",
                         acceleration=False, offset=0.1)
    tiled = ni.replay(ni.io.recipe_from(rec), da.from_array(y))
    assert "tiling" in tiled.info
    assert np.abs(tiled.mean.compute() - rec.mean).max() < 1e-3 * np.ptp(y)


def test_refuses_newer_and_foreign_recipes(tmp_path, case):
    y, A = case
    rec = ni.reconstruct(y, A, "wiener", noise=ni.noise.Gaussian(0.02))
    raw = ni.io.recipe.to_jsonable(ni.io.recipe_from(rec))
    (tmp_path / "new.json").write_text(json.dumps({**raw, "recipe_version": 99}))
    with pytest.raises(ValueError, match="newer than the installed"):
        ni.io.load_recipe(tmp_path / "new.json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not a napari-invimg recipe"):
        ni.io.load_recipe(tmp_path / "other.json")
    with pytest.raises(ValueError, match="No reconstruction recipe"):
        ni.io.save_recipe({"colormap": "gray"}, tmp_path / "x.json")


def test_ni_replay_stays_the_function_after_the_cli_imports_its_module():
    """The module behind ``ni.replay`` is private: importing it (as the command line does) never rebinds the
    package's ``replay`` attribute to a module."""
    import subprocess
    import sys

    code = ("import napari_invimg as ni, napari_invimg.cli\n"
            "from napari_invimg import _replay\n"
            "assert callable(ni.replay) and ni.replay is _replay.replay, ni.replay\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_load_recipe_warns_about_unknown_keys(tmp_path):
    import json
    import warnings as _warnings

    x = ni.datasets.fluorescence((16, 16), seed=0).astype(np.float32)
    A = ni.operators.Blur(ni.psf.gaussian((3, 3), 1.0), x.shape)
    ni.io.save_recipe(ni.reconstruct(x, A, "richardson_lucy", iterations=2), tmp_path / "r.json")
    raw = json.loads((tmp_path / "r.json").read_text())
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")
        ni.io.load_recipe(raw)  # a saved recipe loads without a warning
    with pytest.warns(UserWarning, match="sed"):
        ni.io.load_recipe({**raw, "sed": 3})  # a misspelt seed keeps its default: say so
