"""napari sample data: deterministic, offline, and the measurements carry their forward model."""

from __future__ import annotations

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg import _sample_data


def test_fluorescence_2d_pair_replays_from_metadata():
    (truth, t_kw, t_type), (y, y_kw, y_type) = _sample_data.fluorescence_2d()
    assert t_type == y_type == "image" and truth.shape == y.shape == (256, 256)
    assert t_kw["scale"] == y_kw["scale"] == (_sample_data.PIXEL_SIZE_UM,) * 2
    meta = y_kw["metadata"]["invimg"]
    A = ni.operators.from_spec(meta["operator"])
    noise = ni.noise.from_spec(meta["noise"])
    np.testing.assert_allclose(y, ni.simulate(truth, A, noise, seed=meta["seed"]), atol=1e-6)
    again = _sample_data.fluorescence_2d()
    np.testing.assert_array_equal(again[1][0], y)  # deterministic


def test_fluorescence_3d_and_cell():
    (truth, t_kw, _), (y, y_kw, _) = _sample_data.fluorescence_3d()
    assert truth.ndim == 3 and y.shape == truth.shape
    assert len(y_kw["scale"]) == 3 and y_kw["metadata"]["invimg"]["operator"]["psf"].ndim == 3
    ((cell, kw, kind),) = _sample_data.cell()
    assert kind == "image" and cell.ndim == 2 and 0 <= cell.min() and cell.max() <= 1


@pytest.mark.gui
def test_sample_opens_in_a_viewer(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-invimg", "fluorescence")
    assert [lyr.name for lyr in viewer.layers] == ["fluorescence truth", "fluorescence measurement"]
    assert viewer.layers["fluorescence measurement"].metadata["invimg"]["operator"]["type"] == "Blur"


def test_mri_samples_carry_their_kspace_and_replay():
    (truth, t_kw, _), (logk, k_kw, _) = _sample_data.mri_shepp_logan()
    meta = k_kw["metadata"]["invimg"]
    assert truth.shape == (256, 256) and meta["kspace"].shape == (8, 256, 256) and np.iscomplexobj(meta["kspace"])
    assert logk.shape == meta["kspace"].shape and np.isfinite(logk).all()
    A = ni.operators.from_spec(meta["operator"])
    noiseless = A.forward(_sample_data.mri_phantom("shepp_logan", 256))
    rel = np.linalg.norm(meta["kspace"] - noiseless) / np.linalg.norm(noiseless)
    assert 1e-3 < rel < 0.2  # the same phantom through the recorded operator, plus the 30 dB noise
