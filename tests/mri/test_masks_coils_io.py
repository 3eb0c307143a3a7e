"""Masks (acceleration, center), ESPIRiT, phantoms and the fastMRI .h5 / .npy reader."""

import numpy as np
import pytest

from napari_invimg import mri


@pytest.mark.parametrize("kind", ["equispaced", "random", "poisson", "radial"])
@pytest.mark.parametrize("R", [4, 8])
def test_mask_acceleration_and_center(kind, R):
    shape = (96, 96)
    m = mri.mask(kind, shape, acceleration=R, seed=3)
    assert m.shape == shape and m.dtype == bool
    assert abs(mri.acceleration_of(m) - R) <= 0.12 * R
    c = shape[1] // 2
    assert m[:, c].all() if kind in ("equispaced", "random") else m[shape[0] // 2, c]
    if kind in ("equispaced", "random"):  # fastMRI: 0.32/R of the lines fully sampled at the center
        n_low = int(round(shape[1] * 0.32 / R))
        start = (shape[1] - n_low + 1) // 2
        assert m[:, start:start + n_low].all()
    if kind == "poisson":  # variable density: the center is denser than the edge
        assert m[32:64, 32:64].mean() > 2 * m[:16].mean()


def test_mask_bad_input_and_3d():
    with pytest.raises(ValueError, match="kind"):
        mri.mask("spiral", (32, 32), 4)
    with pytest.raises(ValueError, match="acceleration"):
        mri.mask("random", (32, 32), 0.5)
    m3 = mri.mask("poisson", (4, 32, 32), 4)
    assert m3.shape == (4, 32, 32) and (m3 == m3[0]).all()


def test_radial_trajectory():
    t = mri.radial_trajectory(16, 64)
    assert t.shape == (16 * 64, 2) and np.abs(t).max() <= np.pi


def test_espirit_from_ten_center_lines_matches_true_maps():
    x = mri.brain((96, 96))
    sc = mri.simulate_kspace(x, 8, kind="equispaced", acceleration=8, center_fraction=10 / 96, seed=0)
    assert mri.calibration_region(sc.kspace)[1] == 10
    maps = mri.espirit(sc.kspace)
    assert maps.shape == sc.coil_maps.shape
    assert mri.map_correlation(maps, sc.coil_maps, np.abs(x)) >= 0.995


def test_birdcage_and_combinations():
    maps = mri.birdcage(6, (32, 40))
    np.testing.assert_allclose((np.abs(maps) ** 2).sum(0), 1, atol=1e-5)
    x = mri.brain((32, 40))
    coil_images = maps * x
    np.testing.assert_allclose(mri.sense_combine(coil_images, maps), x, atol=1e-5)
    np.testing.assert_allclose(mri.rss(coil_images), np.abs(x), atol=1e-5)


def test_phantoms():
    s = mri.shepp_logan((64, 64))
    assert s.shape == (64, 64) and 0 <= s.min() and s.max() == pytest.approx(1.0)
    b = mri.brain((64, 64), seed=1)
    assert np.iscomplexobj(b) and np.abs(b).max() == pytest.approx(1.0, abs=1e-6)
    assert np.std(np.angle(b[np.abs(b) > 0.2])) > 0.3  # genuinely complex
    np.testing.assert_array_equal(b, mri.brain((64, 64), seed=1))


def test_random_phantoms_and_the_mr_training_corpus():
    """Random ellipse phantoms are deterministic, in [0, 1] and piecewise constant; the MR training corpus holds
    neither test image (Shepp–Logan, brain seed 0) nor the tuning one (brain seed 1)."""
    e = mri.random_ellipses((64, 64), seed=5)
    assert e.dtype == np.float32 and 0 <= e.min() and e.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(e, mri.random_ellipses((64, 64), seed=5))
    assert not np.array_equal(e, mri.random_ellipses((64, 64), seed=6))
    data = mri.training_magnitudes(n=8, shape=(48, 48))
    assert [len(v) for v in data.values()] == [4, 2, 2]
    assert min(float(im.min()) for im in data["residual"]) < 0 < max(float(im.max()) for im in data["residual"])
    tests = [mri.shepp_logan((48, 48)), np.abs(mri.brain((48, 48), seed=0)), np.abs(mri.brain((48, 48), seed=1))]
    for im in data["ellipses"] + data["brain"]:
        assert all(im.shape != t.shape or not np.allclose(im, t, atol=1e-3) for t in tests)
    flat = mri.training_magnitudes(n=8, shape=(48, 48), flat=3)["flat"]
    assert len(flat) == 3 and all(not np.allclose(im, tests[0], atol=1e-3) for im in flat)


def test_flat_ellipses_are_piecewise_constant():
    """No texture, bias or blur: a handful of distinct values, deterministic, in [0, 1]."""
    f = mri.flat_ellipses((96, 96), seed=3)
    assert f.dtype == np.float32 and 0 <= f.min() and f.max() == pytest.approx(1.0)
    assert 3 <= len(np.unique(f)) <= 40
    np.testing.assert_array_equal(f, mri.flat_ellipses((96, 96), seed=3))
    assert not np.array_equal(f, mri.flat_ellipses((96, 96), seed=4))


def test_h5_reader_fastmri_layout(tmp_path):
    import h5py

    rng = np.random.default_rng(0)
    k = (rng.standard_normal((3, 4, 16, 12)) + 1j * rng.standard_normal((3, 4, 16, 12))).astype(np.complex64)
    rss = rng.random((3, 8, 8)).astype(np.float32)
    path = tmp_path / "file_brain.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=k)
        f.create_dataset("reconstruction_rss", data=rss)
        f.create_dataset("ismrmrd_header", data=np.bytes_(b"<ismrmrdHeader></ismrmrdHeader>"))
        f.attrs["acquisition"] = "AXT2"
    scan = mri.load(path)
    np.testing.assert_array_equal(scan.kspace, k)
    np.testing.assert_array_equal(scan.rss, rss)
    assert scan.header.startswith("<ismrmrdHeader") and scan.attrs["acquisition"] == "AXT2"
    assert scan.slice(1).shape == (4, 16, 12) and scan.mask.all()
    np.save(tmp_path / "k.npy", k[0])
    assert mri.load(tmp_path / "k.npy").kspace.shape == (1, 4, 16, 12)
    np.save(tmp_path / "real.npy", np.ones((4, 4)))
    with pytest.raises(ValueError, match="complex"):
        mri.load(tmp_path / "real.npy")
    with h5py.File(tmp_path / "zero.h5", "w") as f:
        f.create_dataset("kspace", data=np.zeros((1, 2, 4, 4), np.complex64))
    with pytest.raises(ValueError, match="all zero"):
        mri.load(tmp_path / "zero.h5")


def test_simulation_and_espirit_refuse_non_finite_input():
    with pytest.raises(ValueError, match="finite"):
        mri.simulate_kspace(np.full((16, 16), np.nan), 2)
    with pytest.raises(ValueError, match="SNR"):
        mri.simulate_kspace(mri.brain((16, 16)), 2, snr_db=float("nan"))
    k = mri.simulate_kspace(mri.brain((32, 32)).astype(np.complex64), 4, kind="equispaced", acceleration=2,
                            seed=0).kspace
    k[:, 16, 16] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mri.espirit(k)
