import numpy as np
import pytest
import torch

import napari_invimg as ni


@pytest.mark.parametrize(
    "noise", [ni.noise.Gaussian(0.1), ni.noise.Poisson(0.02), ni.noise.PoissonGaussian(0.02, 0.05)]
)
def test_sample_moments_match_the_model(noise):
    z = torch.full((200, 200), 0.5)
    y = noise.sample(z, seed=3)
    assert abs(float(y.mean()) - 0.5) < 0.01
    assert float(y.var()) == pytest.approx(float(noise.variance(z).mean()), rel=0.05)
    # the misfit is ~1 when z is the truth
    assert noise.misfit(y, z) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("noise", [ni.noise.Gaussian(0.1), ni.noise.PoissonGaussian(0.02, 0.05)])
def test_gradient_matches_autograd(noise):
    y = noise.sample(torch.full((8, 8), 0.4), seed=0)
    z = torch.full((8, 8), 0.3, dtype=torch.float64).requires_grad_(True)
    noise.nll(y.double(), z).backward()
    np.testing.assert_allclose(z.grad.numpy(), noise.grad(y.double(), z.detach()).numpy(), rtol=1e-6)


def test_seeded_sampling_is_reproducible_and_numpy_in_numpy_out():
    noise = ni.noise.PoissonGaussian(0.01, 0.01)
    a = noise.sample(np.full((5, 5), 0.2), seed=1)
    b = noise.sample(np.full((5, 5), 0.2), seed=1)
    assert isinstance(a, np.ndarray)
    np.testing.assert_array_equal(a, b)


def test_estimate_recovers_gaussian_and_poisson_gaussian():
    x = ni.datasets.fluorescence((256, 256), seed=0)
    yg = ni.noise.Gaussian(0.05).sample(x, seed=0)
    est = ni.noise.estimate(yg, model="gaussian")
    assert est.sigma == pytest.approx(0.05, rel=0.15)
    # microscope images are band-limited by the optics: estimate on a blurred image, as in practice
    xb = ni.operators.Blur(ni.psf.gaussian((9, 9), 1.5), x.shape).forward(x)
    ypg = ni.noise.PoissonGaussian(0.01, 0.01).sample(xb, seed=0)
    est = ni.noise.estimate(ypg)
    assert isinstance(est, ni.noise.PoissonGaussian)
    assert est.gain == pytest.approx(0.01, rel=0.3)
    assert est.sigma == pytest.approx(0.01, rel=0.5)


def test_bad_noise_parameters():
    with pytest.raises(ValueError):
        ni.noise.Gaussian(-1)
    with pytest.raises(ValueError):
        ni.noise.Poisson(0)
    with pytest.raises(ValueError, match="non-negative"):
        ni.noise.Poisson(1.0).sample(np.full((4, 4), -1.0))


def test_complex_gaussian_noise_each_part_gets_sigma():
    z = torch.zeros(300, 300, dtype=torch.complex64)
    y = ni.noise.Gaussian(0.2).sample(z, seed=0)
    assert float(y.real.std()) == pytest.approx(0.2, rel=0.03)
    assert float(y.imag.std()) == pytest.approx(0.2, rel=0.03)


def _exact_poisson_deviance(lam: float) -> float:
    """E[2 (k log(k/λ) − k + λ)] for k ~ Poisson(λ), summed over the pmf."""
    import math

    total, pmf = 0.0, math.exp(-lam)
    for k in range(int(lam * 4 + 60)):
        if k > 0:
            pmf *= lam / k
        total += pmf * 2 * ((k * math.log(k / lam) if k else 0.0) - k + lam)
    return total


def test_expected_misfit_is_one_for_gaussian_and_the_deviance_bias_at_low_counts():
    """Gaussian: exactly 1. Poisson: the mean deviance at λ photons (≈ 1 + 1/(6λ) + 1/(6λ²) for large λ) is above 1
    at low counts and → 1 at high counts; the estimate matches the exact expectation."""
    z = torch.full((64, 64), 0.5)
    assert ni.noise.Gaussian(0.1).expected_misfit(z) == 1.0
    for photons in (4.0, 400.0):
        noise = ni.noise.Poisson(gain=0.5 / photons)
        expected = noise.expected_misfit(z)
        assert expected == pytest.approx(_exact_poisson_deviance(photons), abs=0.01)
        assert expected == noise.expected_misfit(z)  # seeded: the same value every call
    assert ni.noise.Poisson(gain=0.5 / 4).expected_misfit(z) > 1.04


def test_poisson_sampling_refuses_nan_and_overflowing_rates():
    noise = ni.noise.Poisson(1.0)
    with pytest.raises(ValueError, match="NaN"):
        noise.sample(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="photons per pixel"):
        noise.sample(np.full((4, 4), 1e30))
    y = noise.sample(np.full((4, 4), 1e6), seed=1)
    assert np.isfinite(y).all() and (y > 0).all()


def test_noise_from_spec_refuses_a_non_dict():
    from napari_invimg.operators.noise import from_spec
    with pytest.raises(TypeError, match="noise spec"):
        from_spec(None)


def test_estimate_warns_on_a_constant_image_and_checks_the_model_first():
    with pytest.warns(UserWarning, match="no measurable noise"):
        n = ni.noise.estimate(np.full((16, 16), 5.0))
    assert 0 < n.sigma <= 1e-7 * 5.0  # floored relative to the data, finite
    with pytest.raises(ValueError, match="model must be"):
        ni.noise.estimate(np.random.default_rng(0).random(64), model="foo")  # 1D used to skip the check


@pytest.mark.parametrize("shape", [(1, 100), (1, 1, 100), (1, 32, 32)])
def test_estimate_on_singleton_axes_is_finite_and_scales_with_the_units(shape):
    y = np.random.default_rng(0).normal(0.0, 0.1, shape)
    a, b = ni.noise.estimate(y), ni.noise.estimate(10 * y)
    assert np.isfinite(a.sigma) and 0.05 < a.sigma < 0.2  # a (1, N) row tiled into no 2×2 block gave NaN
    assert b.sigma == pytest.approx(10 * a.sigma, rel=1e-6)


@pytest.mark.parametrize("make", [lambda: ni.noise.Gaussian(True), lambda: ni.noise.Poisson(True),
                                  lambda: ni.noise.Gaussian("0.1"), lambda: ni.noise.Gaussian(np.ones((2, 2), bool))])
def test_noise_parameters_are_numbers_not_flags_or_text(make):
    with pytest.raises(TypeError, match="is a number"):
        make()  # Gaussian(True) was a silent sigma of 1
