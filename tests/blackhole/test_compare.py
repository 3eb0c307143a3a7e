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
