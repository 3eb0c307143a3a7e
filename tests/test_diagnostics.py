import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg import uncertainty


def test_residual_is_standard_normal_at_the_truth():
    x = ni.datasets.fluorescence((128, 128), seed=0)
    A = ni.operators.Blur(ni.psf.gaussian((9, 9), 1.5), x.shape)
    noise = ni.noise.PoissonGaussian(0.01, 0.01)
    y = ni.simulate(x, A, noise, seed=0)
    r = ni.diagnostics.residual(y, A, x, noise)
    assert r.shape == y.shape
    assert abs(r.mean()) < 0.05 and r.std() == pytest.approx(1.0, abs=0.05)
    assert ni.diagnostics.chi2(y, A, x, noise) == pytest.approx(1.0, abs=0.1)


def test_coverage_of_exact_gaussian_draws_is_nominal_with_few_samples():
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((64, 64))
    # posterior N(m, 1) with m ~ N(truth, 1): 16 exact draws per pixel
    m = truth + rng.standard_normal(truth.shape)
    samples = m[None] + rng.standard_normal((16, *truth.shape))
    rec = ni.Reconstruction(mean=samples.mean(0), std=samples.std(0, ddof=1), samples=samples, info={})
    fresh = m + rng.standard_normal(truth.shape)
    cov = ni.diagnostics.coverage(rec, fresh, level=0.9)
    assert cov == pytest.approx(0.9, abs=0.02)


def test_error_map_and_summary():
    rng = np.random.default_rng(1)
    x = ni.datasets.fluorescence((32, 32), seed=0)
    A = ni.operators.Identity(x.shape)
    noise = ni.noise.Gaussian(0.05)
    y = ni.simulate(x, A, noise, seed=0)
    std = np.full(x.shape, 0.05, np.float32)
    rec = ni.Reconstruction(mean=y, std=std, info={})
    err = ni.diagnostics.error_map(rec.mean, x)
    np.testing.assert_allclose(err, np.abs(y - x), atol=1e-7)
    report = ni.diagnostics.summary(y, A, rec, noise, x)
    assert report["chi2"] == pytest.approx(0.0, abs=1e-9)  # the mean is the data itself
    assert report["coverage"] == pytest.approx(0.9, abs=0.03)  # exact std of the error
    assert report["rmse"] == pytest.approx(0.05, rel=0.1)
    assert set(ni.diagnostics.summary(y, A, ni.Reconstruction(mean=x, info={}), noise)) == {"chi2"}
    with pytest.raises(ValueError, match="differ in shape"):
        ni.diagnostics.error_map(x, x[:5] + rng.random())


def _inpainting(n: int = 24):
    x = ni.datasets.fluorescence((n, n), seed=1)
    A = ni.operators.Inpainting(ni.operators.sampling.random_mask((n, n), 0.5, seed=3))
    noise = ni.noise.Gaussian(0.02)
    return x, A, noise, ni.simulate(x, A, noise, seed=2)


def test_held_out_rows_carry_no_information():
    x, A, _noise, _y = _inpainting(16)
    keep = np.random.default_rng(0).random(A.out_shape) > 0.2
    H = ni.diagnostics.HeldOutRows(A, keep)
    z = H.forward(x)
    assert np.all(z[~keep] == 0) and np.allclose(z[keep], A.forward(x)[keep])
    r = np.random.default_rng(1).standard_normal(A.out_shape).astype(np.float32)
    assert np.dot(H.forward(x).ravel(), r.ravel()) == pytest.approx(np.dot(x.ravel(), H.adjoint(r).ravel()), rel=1e-4)
    assert H.n_measured() == pytest.approx(A.n_measured() * keep.mean(), abs=1)


def test_predictive_check_flags_a_too_narrow_posterior():
    _x, A, noise, y = _inpainting()
    kw = {"iterations": 300, "n_samples": 16, "chains": 2}
    fair = ni.diagnostics.predictive_check("ula", y, A, noise, holdout=0.3, seed=0, **kw)
    narrow = ni.diagnostics.predictive_check("ula", y, A, noise, holdout=0.3, seed=0, calibration=0.2, **kw)
    assert fair.n_held_out > 0.25 * A.n_measured() and 0 <= fair.coverage <= 1
    assert narrow.inflation > 5 * fair.inflation and narrow.verdict == "too narrow"
    assert narrow.posterior_coverage < fair.posterior_coverage
    # the image coverage: κ scales only the data-informed part of the spread (here the kept pixels' share)
    assert narrow.image_coverage < fair.image_coverage and 0 < fair.data_informed < 1
    assert fair.reconstruction is not None and fair.method == "ula"
    with pytest.raises(ValueError, match="holdout"):
        ni.diagnostics.predictive_check("ula", y, A, noise, holdout=0.0)
    with pytest.raises(ValueError, match="samples"):
        ni.diagnostics.predictive_check("tv", y, A, noise)


def test_held_out_rows_round_trip_through_their_spec():
    from napari_invimg.operators.base import from_spec

    x, A, _, _ = _inpainting(8)
    keep = np.arange(64).reshape(8, 8) % 3 > 0
    H = from_spec(ni.diagnostics.HeldOutRows(A, keep).spec())
    assert np.allclose(H.forward(x), np.where(keep, A.forward(x), 0))


def _ar1_chains(seed: int = 0) -> np.ndarray:
    """Four AR(1) chains (101 draws) per pixel with different autocorrelations; one pixel's first chain has a
    wider spread (a folded-R̂ case), another's second chain an offset (a bulk-R̂ case)."""
    rng = np.random.default_rng(seed)
    phi = np.array([0.0, 0.5, 0.9, 0.95, 0.3, 0.7])
    x = np.zeros((4, 101, 6))
    e = rng.standard_normal(x.shape)
    for t in range(1, x.shape[1]):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    x[0, :, 4] *= 3
    x[1, :, 5] += 1
    return x.reshape(4, 101, 2, 3)


def test_rhat_and_ess_match_arviz():
    """max(bulk, folded) rank-normalized R̂, bulk and tail ESS as arviz (Vehtari et al. 2021), per pixel."""
    pytest.importorskip("arviz_stats")
    from arviz_stats.base import array_stats

    x = _ar1_chains()
    per_pixel = np.moveaxis(x.reshape(4, 101, -1), 2, 0)  # (pixel, chain, draw)
    kw = dict(chain_axis=1, draw_axis=2)
    np.testing.assert_allclose(ni.diagnostics.split_rhat(x).ravel(), array_stats.rhat(per_pixel, **kw), rtol=1e-10)
    np.testing.assert_allclose(ni.diagnostics.effective_sample_size(x).ravel(), array_stats.ess(per_pixel, **kw),
                               rtol=1e-8)
    np.testing.assert_allclose(ni.diagnostics.effective_sample_size(x, "tail").ravel(),
                               array_stats.ess(per_pixel, method="tail", prob=(0.05, 0.95), **kw), rtol=1e-8)


def test_folded_rhat_flags_chains_that_differ_in_spread_only():
    x = _ar1_chains().reshape(4, 101, 6)
    z = uncertainty._split_ranked(x)
    bulk = uncertainty._rhat(z)
    full = ni.diagnostics.split_rhat(x)
    assert full[4] > bulk[4] + 0.05  # the wide chain is invisible to the bulk R̂, not to the folded one
    summary = ni.diagnostics.mixing_summary(x)
    assert summary["ess_tail_min"] > 0 and summary["rhat_max"] == pytest.approx(full.max())


def test_std_error_correlation_is_unit_free_zero_for_a_constant_map_and_refuses_bad_maps():
    """The correlation does not depend on the data's units; a constant std or error map points at nothing (0, as
    documented); a NaN in the maps or the truth, or a truth or std of another shape (numpy would broadcast it
    silently), is our ValueError naming the cause."""
    rng = np.random.default_rng(0)
    x = rng.random((16, 16)).astype(np.float32)
    mean = x + 0.1 * rng.standard_normal(x.shape).astype(np.float32)
    std = (np.abs(mean - x) + 0.05 * rng.random(x.shape)).astype(np.float32)
    rec = ni.Reconstruction(mean=mean, std=std)
    r = ni.diagnostics.std_error_correlation(rec, x)
    assert 0.5 < r <= 1.0
    assert ni.diagnostics.std_error_correlation(ni.Reconstruction(mean=10 * mean, std=10 * std), 10 * x) == \
        pytest.approx(r, rel=1e-5)
    assert ni.diagnostics.std_error_correlation(ni.Reconstruction(mean=mean, std=np.full_like(std, 0.3)), x) == 0.0
    assert ni.diagnostics.std_error_correlation(ni.Reconstruction(mean=x, std=std), x) == 0.0
    bad_std = std.copy()
    bad_std[3, 4] = np.nan
    with pytest.raises(ValueError, match="std.*NaN or infinite"):
        ni.diagnostics.std_error_correlation(ni.Reconstruction(mean=mean, std=bad_std), x)
    bad_x = x.copy()
    bad_x[0, 0] = np.inf
    for check in (ni.diagnostics.std_error_correlation, ni.diagnostics.coverage):
        with pytest.raises(ValueError, match="truth.*NaN or infinite"):
            check(rec, bad_x)
        with pytest.raises(ValueError, match="shape"):
            check(rec, x[:, :1])
    with pytest.raises(ValueError, match="shape"):
        ni.diagnostics.std_error_correlation(ni.Reconstruction(mean=mean, std=std[:1]), x)
