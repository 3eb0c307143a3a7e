import numpy as np
import pytest

import napari_invimg as ni
import napari_invimg.blackhole as bh
from napari_invimg.uncertainty import Reconstruction


def test_blur_reconstruction_takes_the_moments_of_the_blurred_samples():
    rng = np.random.default_rng(0)
    truth = bh.models.ring(npix=32, fov_uas=160.0)
    samples = truth + 0.01 * rng.standard_normal((40, 32, 32))
    rec = Reconstruction(samples.mean(0), samples.std(0, ddof=1), samples, {"std_from": "chain"})
    smooth = bh.blur_reconstruction(rec, 160.0, 25.0)
    blurred = np.stack([bh.blur_to_resolution(s, 160.0, 25.0) for s in samples])
    np.testing.assert_allclose(smooth.mean, blurred.mean(0), rtol=1e-6)
    np.testing.assert_allclose(smooth.std, blurred.std(0, ddof=1), rtol=1e-5)
    # blurring averages white noise: the std shrinks, and the blurred samples cover the blurred truth
    assert smooth.std.mean() < 0.3 * rec.std.mean() and smooth.info["std_from"] == "samples"
    assert ni.diagnostics.coverage(smooth, bh.blur_to_resolution(truth, 160.0, 25.0), 0.9) > 0.8
    with pytest.raises(ValueError, match="samples"):
        bh.blur_reconstruction(Reconstruction(rec.mean, rec.std), 160.0, 25.0)


def test_shift_to_centroid_moves_the_centroid_and_keeps_the_image():
    """The truth of a closure posterior in its gauge: moved sub-pixel to a given centroid, flux and shape kept; an
    integer shift is a plain roll; a shift off the field is refused."""
    img = bh.models.double(32, 160.0)
    c = bh.centroid(img)
    target = c + np.array([0.37, -0.61])
    moved = bh.shift_to_centroid(img, target)
    assert np.allclose(bh.centroid(moved), target, atol=2e-3)
    assert moved.sum() == pytest.approx(img.sum(), rel=1e-6)
    # and back again; the best integer shift cannot undo it (0.96 for this compact double: why closures are scored
    # in the centroid gauge)
    assert np.allclose(bh.shift_to_centroid(moved, c), img, atol=1e-4 * img.max())
    assert bh.nxcorr_aligned(moved, img) < 0.98
    assert np.allclose(bh.shift_to_centroid(img, c + np.array([2.0, -1.0])), np.roll(img, (2, -1), (0, 1)),
                       atol=1e-6 * img.max())
    with pytest.raises(ValueError, match="out of its field"):
        bh.shift_to_centroid(img, c + np.array([20.0, 0.0]))


def test_unit_flux_removes_the_common_flux_scale_and_flux_interval_scores_it_alone():
    """A closure-like posterior: every sample is the structure u (unit flux, small noise) times one flux factor F_s
    from a ±10% prior. In the raw gauge the flux scale dominates the std and one truth flux 8% high is covered by
    every pixel's band or by none; in the unit-flux gauge the band is the structure's, and the flux is scored on its
    own by its interval."""
    rng = np.random.default_rng(1)
    truth = bh.models.crescent(32, 160.0).astype(np.float64)
    u = truth / truth.sum()
    n = 400
    flux = 0.6 * np.exp(0.1 * rng.standard_normal(n))
    error = 0.02 * u.max() * rng.standard_normal((32, 32))  # the truth is one draw about the posterior's centre
    structure = u + error + 0.02 * u.max() * rng.standard_normal((n, 32, 32))
    structure /= structure.sum((-2, -1), keepdims=True)
    samples = flux[:, None, None] * structure
    rec = Reconstruction(samples.mean(0), samples.std(0, ddof=1), samples, {"std_from": "chain"})
    unit = bh.unit_flux(rec)
    np.testing.assert_allclose(unit.samples.sum((-2, -1)), 1.0, rtol=1e-12)
    np.testing.assert_allclose(unit.samples, structure, rtol=1e-10, atol=1e-14)
    assert unit.info["std_from"] == "samples" and unit.info["gauge"] == "unit_flux"
    # the flux scale is most of the raw std on the source, none of the unit-flux one
    source = truth > 0.2 * truth.max()
    assert np.median(unit.std[source] / (rec.std[source] / 0.6)) < 0.5
    # the unit-flux band covers the structure's truth at about its level; the raw band of a truth whose flux is 2.6
    # prior sd high covers far less (every source pixel's band is the same relative band)
    def covered(post, x):
        return np.abs(post.mean - x)[source] <= ni.diagnostics.interval_halfwidth(post, 0.9)[source]

    assert 0.85 <= ni.diagnostics.coverage(unit, u, 0.9) <= 0.95 and 0.8 <= covered(unit, u).mean() <= 0.97
    assert covered(rec, 0.6 * 1.3 * u).mean() < 0.3
    lo, hi = bh.flux_interval(rec, 0.9)
    assert lo == pytest.approx(np.quantile(flux, 0.05)) and hi == pytest.approx(np.quantile(flux, 0.95))
    assert lo < 0.6 < hi and not lo < 0.6 * 1.3 < hi
    with pytest.raises(ValueError, match="level"):
        bh.flux_interval(rec, 1.5)
    with pytest.raises(ValueError, match="samples"):
        bh.unit_flux(Reconstruction(rec.mean, rec.std))
    bad = samples.copy()
    bad[3] = 0.0
    with pytest.raises(ValueError, match="positive total flux"):
        bh.unit_flux(Reconstruction(rec.mean, rec.std, bad, {}))


def test_closure_gauge_removes_a_shift_and_a_scale_that_the_closures_do_not_see():
    """Samples that differ only by a sub-pixel shift (a centroid prior's spread) and a flux factor are one image in
    the closure gauge: every sample at the target centroid with unit flux, the std ~0 where unit_flux alone keeps the
    translation's spread."""
    rng = np.random.default_rng(2)
    img = bh.models.double(32, 160.0).astype(np.float64)
    c = bh.centroid(img)
    samples = np.stack([f * bh.shift_to_centroid(img, c + d) for f, d in
                        zip(0.6 * np.exp(0.1 * rng.standard_normal(30)), 0.15 * rng.standard_normal((30, 2)))])
    rec = Reconstruction(samples.mean(0), samples.std(0, ddof=1), samples, {"std_from": "chain"})
    gauge = bh.closure_gauge(rec)
    assert np.allclose(bh.centroid(gauge.samples), bh.centroid(rec.mean), atol=2e-3)
    np.testing.assert_allclose(gauge.samples.sum((-2, -1)), 1.0, rtol=1e-9)
    assert gauge.std.max() < 0.02 * bh.unit_flux(rec).std.max()
    np.testing.assert_allclose(gauge.mean, bh.shift_to_centroid(img, bh.centroid(rec.mean)) / img.sum(),
                               atol=1e-3 * img.max() / img.sum())
    assert gauge.info["gauge"] == "centroid_unit_flux"
