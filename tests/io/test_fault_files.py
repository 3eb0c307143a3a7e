"""Faults with files: nothing is ever lost, and a broken file gives a clear error of ours naming it.

One parametrized test per class of fault: (1) a writer meets something of another kind under its output
name, (2) a writer fails part-way, (3) a broken or truncated file is read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.io import OutputExistsError


def _snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` (itself included) with a hash of each file's bytes."""
    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    out = {".": "dir"}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".replaced-" in p.name)


@pytest.fixture(scope="module")
def small_obs():
    bh = pytest.importorskip("napari_invimg.blackhole")
    return bh.simulate(bh.models.crescent(), seed=2)


def _kspace():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((1, 2, 8, 8)) + 1j * rng.standard_normal((1, 2, 8, 8))).astype(np.complex64)


def _recipe_source():
    x = ni.datasets.fluorescence((16, 16), seed=0)
    A = ni.operators.Blur(ni.psf.gaussian((5, 5), sigma=1.0), x.shape)
    return ni.reconstruct(A(x), A, "richardson_lucy", iterations=2)


def _write(kind: str, path: Path, small_obs=None) -> None:
    """Write ``path`` with the writer of ``kind``."""
    if kind in ("tif", "ome.tif", "ome.zarr", "zarr"):
        ni.io.imwrite(path, np.ones((8, 8), np.float32), 0.1)
    elif kind == "recipe":
        ni.io.save_recipe(_recipe_source(), path)
    elif kind == "h5":
        ni.mri.save_h5(path, _kspace())
    elif kind == "uvfits":
        small_obs.save_uvfits(path)
    elif kind == "weights":
        from napari_invimg.nets.drunet import SmallDRUNet, save_weights

        save_weights(SmallDRUNet(channels=(4, 8), blocks=1), path)
    elif kind == "supervised":
        from napari_invimg.methods.supervised import save_supervised
        from napari_invimg.nets.unet import UNet

        save_supervised(UNet(width=2, depth=1), path, "care", {})
    else:
        raise AssertionError(kind)


_NAMES = {"tif": "results.tif", "ome.tif": "results.ome.tif", "ome.zarr": "results.ome.zarr", "zarr": "plain.zarr",
          "recipe": "recipe.json", "h5": "scan.h5", "uvfits": "obs.uvfits", "weights": "denoiser.pt",
          "supervised": "care.pt"}


def _foreign_folder(path: Path) -> None:
    path.mkdir()
    (path / "notes.txt").write_text("my thesis")
    (path / "sub").mkdir()
    (path / "sub" / "data.bin").write_bytes(b"\x00\x01" * 100)


def _foreign_zarr(path: Path) -> None:
    """A real OME-NGFF-looking Zarr group, but not written by napari-invimg (no _creator of ours)."""
    path.mkdir()
    (path / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    (path / ".zattrs").write_text(json.dumps({"multiscales": [{"version": "0.4", "datasets": [{"path": "0"}]}]}))
    (path / "0").mkdir()
    (path / "0" / "precious").write_bytes(b"raw data")


def _text_file(path: Path) -> None:
    path.write_text("not the kind of file this writer makes")


@pytest.mark.parametrize("kind", list(_NAMES))
@pytest.mark.parametrize("occupant", ["folder", "foreign_zarr", "text_file"])
def test_a_writer_never_replaces_something_of_another_kind(tmp_path, kind, occupant, small_obs):
    path = tmp_path / _NAMES[kind]
    {"folder": _foreign_folder, "foreign_zarr": _foreign_zarr, "text_file": _text_file}[occupant](path)
    before = _snapshot(path)
    with pytest.raises(OutputExistsError, match=path.name) as info:
        _write(kind, path, small_obs)
    assert isinstance(info.value, ValueError) and isinstance(info.value, OSError)
    assert _snapshot(path) == before
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", list(_NAMES))
def test_a_writer_replaces_its_own_kind(tmp_path, kind, small_obs):
    path = tmp_path / _NAMES[kind]
    _write(kind, path, small_obs)
    first = _snapshot(path)
    _write(kind, path, small_obs)  # overwriting our own output is allowed
    assert path.exists() and set(_snapshot(path)) == set(first)
    assert _leftovers(tmp_path) == []


def _fail_tiff(path: Path):
    da = pytest.importorskip("dask.array")

    def boom(block, block_info=None):
        if block_info[None]["chunk-location"][0] == 2:
            raise RuntimeError("disk full")
        return block

    data = da.ones((4, 8, 8), dtype=np.float32, chunks=(1, 8, 8)).map_blocks(boom, dtype=np.float32)
    ni.io.imwrite(path, data, 0.1)


def _fail_zarr(path: Path):
    da = pytest.importorskip("dask.array")
    data = da.ones((4, 8, 8), dtype=np.float32, chunks=(1, 8, 8)).map_blocks(
        lambda b, block_info=None: (_ for _ in ()).throw(RuntimeError("disk full"))
        if block_info[None]["chunk-location"][0] == 2 else b, dtype=np.float32)
    ni.io.imwrite(path, data, 0.1)


def _fail_h5(path: Path):
    ni.mri.save_h5(path, _kspace(), header="\ud800")  # the header cannot be encoded: fails after kspace is written


def _fail_uvfits(path: Path, small_obs, monkeypatch):
    from astropy.io import fits

    def partial(self, name, *args, **kwargs):
        Path(name).write_bytes(b"SIMPLE  =" + b" " * 100)
        raise OSError("disk full")

    monkeypatch.setattr(fits.HDUList, "writeto", partial)
    small_obs.save_uvfits(path)


@pytest.mark.parametrize("kind", ["tif", "ome.tif", "ome.zarr", "h5", "uvfits"])
@pytest.mark.parametrize("existing", [True, False])
def test_a_failed_write_leaves_the_old_file_and_no_half_file(tmp_path, kind, existing, small_obs, monkeypatch):
    path = tmp_path / _NAMES[kind]
    if existing:
        _write(kind, path, small_obs)
        before = _snapshot(path)
    with pytest.raises((RuntimeError, OSError, UnicodeEncodeError, ValueError)):
        if kind in ("tif", "ome.tif"):
            _fail_tiff(path)
        elif kind == "ome.zarr":
            _fail_zarr(path)
        elif kind == "h5":
            _fail_h5(path)
        else:
            _fail_uvfits(path, small_obs, monkeypatch)
    if existing:
        assert _snapshot(path) == before
    else:
        assert not path.exists()
    assert _leftovers(tmp_path) == []


# -- broken files --------------------------------------------------------------------------------------
def _good_tiff(path: Path, ome: bool) -> bytes:
    ni.io.imwrite(path, np.random.default_rng(0).random((4, 32, 32)).astype(np.float32), 0.1)
    return path.read_bytes()


def _make_broken(case: str, tmp_path: Path, small_obs) -> tuple[Path, callable]:
    if case == "text.tif":
        p = tmp_path / "text.tif"
        p.write_text("hello, I am not a TIFF")
        return p, ni.io.imread
    if case.startswith("truncated.tif") or case.startswith("truncated.ome.tif"):
        name, cut = case.split(":")
        p = tmp_path / name
        good = _good_tiff(tmp_path / f"good{''.join(Path(name).suffixes)}", ome=".ome" in name)
        p.write_bytes(good[: int(len(good) * float(cut))])
        return p, ni.io.imread
    if case == "missing.zarr":
        return tmp_path / "missing.zarr", ni.io.imread
    if case == "empty.zarr":
        (tmp_path / "empty.zarr").mkdir()
        return tmp_path / "empty.zarr", ni.io.imread
    if case == "damaged.zarr":
        p = tmp_path / "damaged.zarr"
        ni.io.imwrite(p, np.ones((8, 8), np.float32), 0.1)
        (p / ".zattrs").write_text("{ not json")
        return p, ni.io.imread
    if case.startswith("truncated.uvfits"):
        cut = float(case.split(":")[1])
        good = small_obs.save_uvfits(tmp_path / "good.uvfits").read_bytes()
        p = tmp_path / "truncated.uvfits"
        p.write_bytes(good[: int(len(good) * cut)])
        from napari_invimg.blackhole import load_uvfits

        return p, load_uvfits
    if case.startswith("truncated.h5"):
        cut = float(case.split(":")[1])
        ni.mri.save_h5(tmp_path / "good.h5", _kspace())
        good = (tmp_path / "good.h5").read_bytes()
        p = tmp_path / "truncated.h5"
        p.write_bytes(good[: int(len(good) * cut)])
        return p, ni.mri.load
    if case == "truncated.care.pt":
        from napari_invimg.methods.supervised import load_supervised

        _write("supervised", tmp_path / "good.pt")
        good = (tmp_path / "good.pt").read_bytes()
        p = tmp_path / "truncated.care.pt"
        p.write_bytes(good[: len(good) // 2])
        return p, load_supervised
    if case == "truncated.npy":
        np.save(tmp_path / "good.npy", _kspace())
        good = (tmp_path / "good.npy").read_bytes()
        p = tmp_path / "truncated.npy"
        p.write_bytes(good[: len(good) // 2])
        return p, ni.mri.load
    raise AssertionError(case)


BROKEN = ["text.tif", "truncated.tif:0.002", "truncated.tif:0.5", "truncated.tif:0.999", "truncated.ome.tif:0.5",
          "missing.zarr", "empty.zarr", "damaged.zarr", "truncated.uvfits:0.1", "truncated.uvfits:0.33",
          "truncated.uvfits:0.65", "truncated.uvfits:0.86", "truncated.uvfits:0.999", "truncated.h5:0.5",
          "truncated.h5:0.99", "truncated.npy", "truncated.care.pt"]


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_file_gives_a_clear_error_naming_it(tmp_path, case, small_obs):
    path, reader = _make_broken(case, tmp_path, small_obs)
    before = _snapshot(path) if path.exists() else None
    with pytest.raises(ValueError, match=path.name) as info:
        reader(path)
    assert type(info.value).__module__.startswith(("napari_invimg", "builtins"))  # ours, not a dependency's
    assert (_snapshot(path) if path.exists() else None) == before  # reading changes nothing
