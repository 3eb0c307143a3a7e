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
