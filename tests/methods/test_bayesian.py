import numpy as np
import pytest

import napari_invimg as ni


@pytest.fixture(scope="module")
def denoising():
    x = ni.datasets.fluorescence((24, 24), seed=1)
    A = ni.operators.Identity(x.shape)
    noise = ni.noise.Gaussian(0.1)
    return x, A, noise, ni.simulate(x, A, noise, seed=0)


@pytest.mark.parametrize("method,extra", [("bayes_dip", {"kl_weight": 1.0}), ("mc_dropout_dip", {"dropout": 0.2})])
def test_stochastic_dip_returns_posterior_samples(denoising, method, extra):
    x, A, noise, y = denoising
    rec = ni.reconstruct(y, A, method, noise, iterations=25, n_samples=5, depth=2, width=4, seed=0, **extra)
    assert rec.uncertainty == "posterior" and ni.method_info(method)["returns_std"]
    assert rec.mean.shape == x.shape and rec.std.shape == x.shape
    assert rec.samples.shape == (5, *x.shape)
    assert (rec.std > 0).all() and np.isfinite(rec.samples).all()
    np.testing.assert_allclose(rec.mean, rec.samples.mean(0), atol=1e-5)
    misfit = rec.info["history"]["misfit"]
    assert misfit[-1] < 0.5 * misfit[0]  # the samples' network was fitted to the data
    # the same seed gives the same result
    again = ni.reconstruct(y, A, method, noise, iterations=25, n_samples=5, depth=2, width=4, seed=0, **extra)
    np.testing.assert_allclose(again.mean, rec.mean, atol=1e-6)


def test_mc_dropout_says_it_is_approximate():
    assert "approximate" in ni.method_info("mc_dropout_dip")["description"]


def test_bayes_dip_runs_its_budget_by_default(denoising):
    """Its running variance is mostly weight noise (it grows for hundreds of iterations), so Bayesian DIP does not
    stop on it by default: it runs its iteration budget, with the tempered KL weight, and still fits the data."""
    x, A, noise, y = denoising
    defaults = {p["name"]: p["default"] for p in ni.method_info("bayes_dip")["parameters"]}
    assert defaults["stop"] == "none" and defaults["kl_weight"] < 1
    rec = ni.reconstruct(y, A, "bayes_dip", noise, iterations=40, n_samples=4, depth=2, width=4, window=5, seed=0)
    assert rec.info["iterations"] == 40 and rec.info["stop_iteration"] == 40
    misfit = rec.info["history"]["misfit"]
    assert misfit[-1] < 0.5 * misfit[0]  # fitted to the data
    assert np.isfinite(rec.std).all() and (rec.std > 0).all()
