"""Simulation-based calibration of a sampler's std through the forward model."""

from __future__ import annotations

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.diagnostics import Calibration, calibrate
from napari_invimg.priors.denoisers import Denoiser

MEAN, STD = 0.5, 0.2


class _CalibrationToyDenoiser(Denoiser):
    """Exact MMSE denoiser of the prior N(0.5, 0.2² I) the test images are drawn from."""

    name = "calibration_toy"

    def denoise(self, x, sigma, ndim):
        return MEAN + STD**2 / (STD**2 + sigma**2) * (x - MEAN)



def test_calibration_fixes_overconfident_mean_field_vb():
    rng = np.random.default_rng(0)
    images = (MEAN + STD * rng.standard_normal((4, 16, 16))).astype(np.float32)
    A = ni.operators.Blur(ni.psf.gaussian((5, 5), sigma=1.0), (16, 16), boundary="circular")
    noise = ni.noise.Gaussian(0.05)
    params = dict(prior="denoiser", denoiser="calibration_toy", epsilon=0.02, iterations=300, n_samples=8)
    cal = calibrate("vb", A, noise, images, level=0.9, seed=0, **params)
    assert isinstance(cal, Calibration) and cal.held_out and cal.n_images == 4
    # mean-field VB under-estimates the marginal std of this correlated posterior: covers too little
    assert cal.coverage_before < 0.85 and cal.scale > 1.15
    assert abs(cal.coverage_after - 0.9) < 0.03
    assert len(cal.levels) == len(cal.observed_before) == len(cal.observed_after)
    assert all(np.diff(cal.observed_after) >= 0)

    x = images[0]
    y = ni.simulate(x, A, noise, seed=99)
    raw = ni.reconstruct(y, A, "vb", noise, seed=99, **params)
    rec = ni.reconstruct(y, A, "vb", noise, seed=99, calibration=cal, **params)
    assert rec.info["calibration"]["scale"] == pytest.approx(cal.scale)
    assert rec.info["calibration"]["level"] == 0.9
    np.testing.assert_allclose(rec.std, raw.std * cal.scale, rtol=1e-5)
    assert ni.diagnostics.coverage(rec, x, 0.9) > ni.diagnostics.coverage(raw, x, 0.9)


def test_calibrate_refuses_bad_input():
    A = ni.operators.Identity((8, 8))
    with pytest.raises(ValueError, match="shape"):
        calibrate("vb", A, ni.noise.Gaussian(0.1), np.zeros((2, 9, 9)))
    with pytest.raises(ValueError, match="standard deviation"):
        calibrate("wiener", A, ni.noise.Gaussian(0.1), np.zeros((8, 8)))


def test_calibration_of_another_method_is_refused():
    A = ni.operators.Identity((8, 8))
    cal = Calibration(scale=1.2, level=0.9, method="dps", coverage_before=0.8, coverage_after=0.9, levels=(0.9,),
                      observed_before=[0.8], observed_after=[0.9], n_images=2, held_out=True)
    with pytest.raises(ValueError, match="fitted for 'dps'"):
        ni.reconstruct(np.zeros((8, 8)), A, "vb", ni.noise.Gaussian(0.1), calibration=cal)
    rec = ni.reconstruct(np.zeros((8, 8)), A, "vb", ni.noise.Gaussian(0.1), calibration=1.5, iterations=5)
    assert rec.info["calibration"] == {"scale": 1.5}
