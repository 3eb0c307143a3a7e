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
