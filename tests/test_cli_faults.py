"""The command line refuses outputs that would lose data or make no sense (exit code 2), and writes nothing."""

import hashlib

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.cli import EXIT_USAGE, main


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_faults")
    x = ni.datasets.fluorescence((24, 20), seed=3).astype(np.float32)
    A = ni.operators.Blur(ni.psf.gaussian((5, 5), 1.0), x.shape)
    y = ni.simulate(x, A, ni.noise.PoissonGaussian(0.02, 0.01), seed=1).astype(np.float32)
    ni.io.imwrite(d / "cell.ome.tif", y, pixel_size_um=0.065)
    ni.io.imwrite(d / "cell.tif", y, pixel_size_um=0.065)
    ni.io.save_recipe(ni.reconstruct(y, A, "richardson_lucy", iterations=3), d / "recipe.json")
    return d


def _tree(d):
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir") for p in d.iterdir()}


@pytest.mark.parametrize("args", [
    ["cell.ome.tif", "-o", "cell.ome.tif", "--overwrite"],  # output = input
    ["cell.ome.tif", "-o", "./cell.ome.tif"],
    ["cell.ome.tif", "-o", "out.png"],  # a suffix we do not write
    ["cell.ome.tif", "-o", "out.png", "--overwrite"],
    ["cell.ome.tif", "-o", "recipe.json"],  # an existing file of another kind
    ["cell.ome.tif", "cell.tif", "-o", "batch/", "--format", "tif"],  # two inputs, one output name
    ["cell.tif", "-o", ".", "--format", "tif", "--overwrite"],  # the folder's default name is the input
])
def test_bad_outputs_are_refused_with_exit_code_2(case, args, capsys, monkeypatch):
    monkeypatch.chdir(case)
    before = _tree(case)
    code = main(["run", "recipe.json", *args, "-q"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE == 2 and "napari-invimg:" in err
    assert _tree(case) == before  # nothing written, nothing replaced, no folder named like a file
    assert not (case / "out.png").exists() and not (case / "batch").exists()


def test_overwrite_replaces_only_its_own_kind(case, capsys, monkeypatch):
    monkeypatch.chdir(case)
    (case / "taken.ome.tif").mkdir()
    (case / "taken.ome.tif" / "keep.txt").write_text("mine")
    code = main(["run", "recipe.json", "cell.ome.tif", "-o", "taken.ome.tif", "--overwrite", "-q"])
    out = capsys.readouterr().out
    assert code == 1 and "failed" in out and "left untouched" in out
    assert (case / "taken.ome.tif" / "keep.txt").read_text() == "mine"


def test_tiff_output_keeps_the_recipe(case, monkeypatch):
    monkeypatch.chdir(case)
    assert main(["run", "recipe.json", "cell.ome.tif", "-o", "result.ome.tif", "-q"]) == 0
    recipe = ni.io.imread("result.ome.tif").metadata["attrs"]["invimg"]
    assert recipe["method"] == "richardson_lucy" and recipe["params"]["iterations"] == 3


@pytest.mark.parametrize("change, message", [
    ({"method": "richardson_lucyy"}, "Unknown method 'richardson_lucyy'"),
    ({"method": 5}, "'method' must be a method's name"),
    ({"params": {"iterations": 3, "foo": 1}}, "has no parameter 'foo'"),
    ({"params": {"iterations": "ten"}}, "Parameter 'iterations'"),
    ({"params": [3]}, "'params' must map"),
])
def test_a_bad_recipe_is_a_usage_error_before_any_input_is_read(case, change, message, capsys, monkeypatch):
    import json
    monkeypatch.chdir(case)
    recipe = {**json.loads((case / "recipe.json").read_text()), **change}
    (case / "bad_recipe.json").write_text(json.dumps(recipe))
    before = _tree(case)
    code = main(["run", "bad_recipe.json", "cell.ome.tif", "-o", "out.ome.zarr", "-q"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "bad recipe" in err and message in err
    assert _tree(case) == before and not (case / "out.ome.zarr").exists()


def test_an_image_or_a_folder_in_the_recipe_s_place_is_a_usage_error(case, capsys, monkeypatch):
    monkeypatch.chdir(case)
    (case / "a_folder").mkdir(exist_ok=True)
    for recipe, message in (("cell.ome.tif", "not a text (JSON) file"), ("a_folder", "is a folder")):
        code = main(["run", recipe, "cell.tif", "-o", "out.ome.zarr", "-q"])
        err = capsys.readouterr().err
        assert code == EXIT_USAGE and message in err
    assert not (case / "out.ome.zarr").exists()
