"""Packaging: the license and URLs are declared, floors the code needs, optional extras stay optional."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(reqs):
    return {r.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower(): r for r in reqs}


def test_licence_file_and_urls():
    text = (ROOT / "LICENSE").read_text()
    assert "BSD 3-Clause" in text and "napari-invimg developers" in text
    assert PROJECT["license"] == "BSD-3-Clause" and PROJECT["license-files"] == ["LICENSE"]
    assert {"Homepage", "Source", "Issues"} <= set(PROJECT["urls"])


def test_floors_the_code_needs_and_optional_extras():
    hard = _names(PROJECT["dependencies"])
    assert "psfmodels" not in hard and "distributed" not in hard  # optional extras
    assert hard["zarr"] == "zarr>=3.0.8"  # zarr 3 API; 3.0.0-3.0.7 are yanked (zarr.load() deleted data)
    assert "psfmodels" in _names(PROJECT["optional-dependencies"]["psfmodels"])
    assert "distributed" in _names(PROJECT["optional-dependencies"]["distributed"])
    # numexpr only times Richardson–Lucy's fused passes (benchmarks/bench_rl_fused.py): slower than torch's, not used
    assert "numexpr" not in hard and "numexpr" in _names(PROJECT["optional-dependencies"]["bench"])


def test_the_package_works_without_the_optional_extras():
    """With psfmodels and distributed unimportable: everything imports, tiling runs on threads, and asking for a
    psfmodels model raises an ImportError that says how to install it."""
    code = """
import sys
sys.modules["psfmodels"] = None
sys.modules["distributed"] = None
import napari_invimg as ni
import napari_invimg.tiling, napari_invimg._replay, napari_invimg.cli, napari_invimg.blackhole, napari_invimg.mri
assert napari_invimg.tiling.active_client() is None
h = ni.psf.widefield((9, 9), wavelength_um=0.52, na=1.2, pixel_size_um=0.1)
assert abs(h.sum() - 1) < 1e-5
try:
    ni.psf.widefield((9, 9), wavelength_um=0.52, na=1.2, pixel_size_um=0.1, model="gibson_lanni")
except ImportError as exc:
    assert "pip install 'napari-invimg[psfmodels]'" in str(exc), exc
    print("ok")
"""
    src = str(ROOT / "src")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": src})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
