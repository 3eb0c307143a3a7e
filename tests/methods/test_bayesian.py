import numpy as np
import pytest

import napari_invimg as ni


@pytest.fixture(scope="module")
def denoising():
    x = ni.datasets.fluorescence((32, 32), seed=1)
    A = ni.operators.Identity(x.shape)
    noise = ni.noise.Gaussian(0.1)
    return x, A, noise, ni.simulate(x, A, noise, seed=0)


@pytest.mark.parametrize("method,extra", [("bayes_dip", {"kl_weight": 1.0}), ("mc_dropout_dip", {"dropout": 0.2})])
def test_stochastic_dip_returns_posterior_samples(denoising, method, extra):
    x, A, noise, y = denoising
    rec = ni.reconstruct(y, A, method, noise, iterations=40, n_samples=5, depth=2, width=8, seed=0, **extra)
    assert rec.uncertainty == "posterior" and ni.method_info(method)["returns_std"]
    assert rec.mean.shape == x.shape and rec.std.shape == x.shape
    assert rec.samples.shape == (5, *x.shape)
    assert (rec.std > 0).all() and np.isfinite(rec.samples).all()
    np.testing.assert_allclose(rec.mean, rec.samples.mean(0), atol=1e-5)
    assert ni.metrics.psnr(rec.mean, x) > ni.metrics.psnr(y, x)
    # the same seed gives the same result
    again = ni.reconstruct(y, A, method, noise, iterations=40, n_samples=5, depth=2, width=8, seed=0, **extra)
    np.testing.assert_allclose(again.mean, rec.mean, atol=1e-6)


def test_mc_dropout_says_it_is_approximate():
    assert "approximate" in ni.method_info("mc_dropout_dip")["description"]
