"""The data term: discrepancy projections of the Gaussian likelihood (closed form and weighted), the weighted least
squares (gradient, prox, weights) and the measured-sample count."""

import numpy as np
import pytest
import torch

import napari_invimg as ni
from napari_invimg.operators import DataTerm


def _gaussian_problem(seed: int, dtype: torch.dtype):
    """Data y, a point v far from it and the data term of y under Gaussian noise σ = 0.5 (Identity, 40 × 30)."""
    g = torch.Generator().manual_seed(seed)
    shape = (40, 30)
    y = torch.randn(shape, generator=g, dtype=dtype)
    v = y + 3 * torch.randn(shape, generator=g, dtype=dtype)
    return g, shape, y, v, DataTerm(y, ni.operators.Identity(shape), ni.noise.Gaussian(0.5))


@pytest.mark.parametrize("complex_data", [False, True])
def test_gaussian_projection_closed_form_and_weighted(complex_data):
    g, shape, y, v, fid = _gaussian_problem(0, torch.complex64 if complex_data else torch.float32)
    delta = 0.5 * fid.discrepancy(v)
    z, mu = fid.project(v, delta, 1.0)
    assert fid.discrepancy(z) == pytest.approx(delta, rel=1e-4) and mu > 0
    assert torch.allclose(z, fid.prox_nll(v, mu), atol=1e-5)  # the projection is a prox of the same family
    w = 0.2 + torch.rand(shape, generator=g)
    zw, muw = fid.project(v, delta, 1.0, weights=w)
    assert fid.discrepancy(zw) == pytest.approx(delta, rel=1e-3)
    # KKT of min Σ w|z − v|² s.t. D(z) ≤ δ: w (z − v) ∥ −(z − y), the same multiplier everywhere
    ratio = (w * (v - zw)).abs() / (zw - y).abs().clamp(min=1e-6)
    assert float(ratio.std() / ratio.mean()) < 1e-2
    inside, mu0 = fid.project(v, 2 * fid.discrepancy(v), 1.0)
    assert mu0 == 0.0 and torch.equal(inside, v)


@pytest.mark.parametrize("complex_data", [False, True])
def test_dual_update_is_the_moreau_complement_of_the_projection(complex_data):
    """``project_dual(v, s, δ) = v − s P(v/s)``: the two-pass closed form equals the projection's, μ included; weighted
    and inside-the-ball cases too."""
    g, shape, y, v, fid = _gaussian_problem(1, torch.complex128 if complex_data else torch.float64)
    step = 0.7
    delta = 0.5 * fid.discrepancy(v / step)
    z, mu = fid.project(v / step, delta, 1.0)
    dual, mu_dual = fid.project_dual(v.clone(), step, delta, 1.0)
    assert mu_dual == pytest.approx(mu, rel=1e-10) and mu > 0
    assert torch.allclose(dual, v - step * z, rtol=1e-10, atol=1e-12)
    assert float(dual.abs().max()) > 0
    w = 0.2 + torch.rand(shape, generator=g, dtype=torch.float64)
    zw, muw = fid.project(v / (step * w), delta, 1.0, weights=w)
    dual_w, mu_w = fid.project_dual(v, step, delta, 1.0, weights=w)
    assert mu_w == muw and torch.allclose(dual_w, v - step * w * zw)
    inside, mu0 = fid.project_dual(v.clone(), step, 2 * fid.discrepancy(v / step), 1.0)
    assert mu0 == 0.0 and float(inside.abs().max()) == 0.0


def test_measured_count_of_operators():
    mask = np.zeros((16, 16), bool)
    mask[:, ::4] = True
    from napari_invimg import mri

    A = mri.CartesianMRI(mask, coil_maps=mri.birdcage(3, (16, 16)))
    assert A.n_measured() == 3 * 64
    assert ni.operators.Identity((5, 7)).n_measured() == 35
    # misfit per measurement ignores the zeros of unmeasured samples
    y = torch.zeros(16, 16)
    y[mask] = 1.0
    assert ni.noise.Gaussian(1.0).misfit(y, torch.zeros(16, 16), measured=64) == pytest.approx(1.0)


@pytest.mark.parametrize("noise", [ni.noise.Gaussian(0.05), ni.noise.PoissonGaussian(0.01, 0.01)], ids=["gauss", "pg"])
def test_weighted_least_squares_gradient_and_prox(noise):
    x = torch.from_numpy(ni.datasets.fluorescence((24, 24), seed=3)).double()
    A = ni.operators.Blur(ni.psf.gaussian((7, 7), sigma=1.5), tuple(x.shape))
    y = torch.from_numpy(ni.simulate(x.numpy(), A, noise, seed=0)).double()
    data = DataTerm(y, A, noise)
    # weights: 1/σ² for Gaussian noise; 1/(gain·max(y, gain) + σ²) for Poisson–Gaussian
    expected = 1 / (noise.gain * y.clamp(min=noise.gain) + noise.sigma ** 2)
    assert torch.allclose(data.weights, expected.expand_as(y), rtol=1e-6)
    # the gradient is that of the value (autograd), on a batch of two images
    batch = torch.stack([x, 0.5 * x]).requires_grad_(True)
    (g_auto,) = torch.autograd.grad(data.value(batch).sum(), batch)
    assert torch.allclose(data.grad(batch.detach()), g_auto, rtol=1e-6, atol=1e-8)
    assert data.evaluations == 4  # two images, value and grad
    # the prox solves ∇f(x) + ρ (x − c) = 0
    c, rho = torch.zeros_like(x), 3.0 * data.lipschitz / 100
    p = data.prox(c, rho, iterations=200, tol=1e-10)
    residual = data.grad(p) + rho * (p - c)
    assert float(residual.norm()) < 1e-6 * float(data.weighted_adjoint.norm())
    assert 0.5 < data.misfit(x) < 2.0  # the truth misfits at the noise level
