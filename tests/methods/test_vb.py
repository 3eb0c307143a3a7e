"""Variational Bayes on the linear-Gaussian toy: the mean-field optimum is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
from gaussian_toy import PRIOR_STD, make_toy

import napari_invimg as ni

EPS = 0.2


@pytest.fixture(scope="module")
def toy():
    return make_toy(prior_var=PRIOR_STD**2 + EPS**2)


def test_mean_field_vb_matches_closed_form(toy):
    # for a Gaussian posterior N(μ, P⁻¹) the mean-field optimum is q = N(μ, diag(1/P_ii))
    mf_std = 1 / np.sqrt(np.diag(toy.precision)).reshape(toy.mean.shape)
    rec = ni.reconstruct(toy.y, toy.A, "vb", toy.noise, prior="denoiser", denoiser="gaussian_toy", epsilon=EPS,
                         iterations=500, n_samples=64, seed=0)
    assert np.max(np.abs(rec.mean - toy.mean) / toy.std) < 0.3
    assert 0.88 < np.median(rec.std / mf_std) < 1.08
    assert np.median(rec.std / toy.std) < 0.8  # mean-field under-estimates the marginal std, as it should
    assert rec.samples.shape == (64, 16, 16) and rec.info["uncertainty"] == "posterior"
    assert 0.8 < np.median(rec.samples.std(0) / rec.std) < 1.2
    assert rec.info["network_evaluations"] == 500 * 2


def test_low_rank_factor_adds_variance(toy):
    mf_std = 1 / np.sqrt(np.diag(toy.precision)).reshape(toy.mean.shape)
    rec = ni.reconstruct(toy.y, toy.A, "vb", toy.noise, prior="denoiser", denoiser="gaussian_toy", epsilon=EPS,
                         iterations=500, rank=4, n_samples=8, seed=0)
    assert np.max(np.abs(rec.mean - toy.mean) / toy.std) < 0.3
    assert 0.88 < np.median(rec.std / mf_std) and np.median(rec.std / toy.std) < 1.05


def test_vb_tv_deblurs_and_cancel_keeps_estimate():
    x = ni.datasets.fluorescence((32, 32), seed=1)
    A = ni.operators.Blur(ni.psf.gaussian((7, 7), sigma=1.5), x.shape)
    noise = ni.noise.PoissonGaussian(gain=0.005, sigma=0.02)
    y = ni.simulate(x, A, noise, seed=0)
    rec = ni.reconstruct(y, A, "vb", noise, iterations=200, seed=0)
    assert ni.metrics.psnr(rec.mean, x) > ni.metrics.psnr(y, x) + 1.0
    assert rec.info["prior_weight_choice"] == "variational EM" and rec.std.min() > 0

    def stop_early(i, total, preview):
        return i < 20

    with pytest.raises(ni.Cancelled) as exc:
        ni.reconstruct(y, A, "vb", noise, iterations=200, progress=stop_early)
    assert exc.value.partial.std.shape == x.shape
