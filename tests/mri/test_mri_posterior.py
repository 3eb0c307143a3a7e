"""The MRI posterior ``sparse_laplace``: exact on a Gaussian toy, mean = the ℓ1 MAP, a std that points at errors."""

import numpy as np
import pytest
import torch

import napari_invimg as ni
from napari_invimg import mri


@pytest.fixture(scope="module")
def scan():
    x = mri.shepp_logan((32, 32)).astype(np.complex64) * np.exp(0.5j)
    return mri.simulate_kspace(x, 4, kind="poisson", acceleration=4, snr_db=30.0, seed=0)


def test_listed_for_mri_and_refused_elsewhere(scan):
    assert "sparse_laplace" in ni.methods(scan.operator)
    blur = ni.operators.Blur(np.ones((3, 3), np.float32) / 9, (16, 16))
    assert "sparse_laplace" not in ni.methods(blur)


def test_fully_sampled_without_prior_is_the_exact_gaussian_posterior():
    """λ = 0, one coil, every k-space point: p(x | y) = N(Aᴴy, σ² I) per part, so |x| has std σ where |x| ≫ σ."""
    x = np.full((16, 16), 1.0 + 0.5j, np.complex64)
    A = mri.CartesianMRI(np.ones((16, 16), np.float32))
    sigma = 0.02
    gen = np.random.default_rng(0)
    y = A.apply(torch.as_tensor(x)).numpy() + sigma * (gen.standard_normal((16, 16)) + 1j * gen.standard_normal((16, 16)))
    rec = ni.reconstruct(y.astype(np.complex64), A, "sparse_laplace", noise=ni.noise.Gaussian(sigma), lam=0.0,
                         n_samples=64, seed=0)
    adj = A.apply_adjoint(torch.as_tensor(y.astype(np.complex64))).numpy()
    assert np.abs(rec.mean - adj).max() < 1e-3
    assert abs(float(np.mean(rec.std)) / sigma - 1) < 0.1
    assert rec.samples.shape == (64, 16, 16) and np.iscomplexobj(rec.samples)


def test_mean_is_the_map_and_std_follows_the_error(scan):
    noise = ni.noise.Gaussian(scan.sigma)
    wav = ni.reconstruct(scan.kspace, scan.operator, "wavelet", noise=noise, wavelet="haar", iterations=150)
    rec = ni.reconstruct(scan.kspace, scan.operator, "sparse_laplace", noise=noise, iterations=150, n_samples=16, seed=0)
    x = np.abs(scan.image)
    assert ni.metrics.psnr(np.abs(rec.mean), x) >= ni.metrics.psnr(np.abs(wav.mean), x) - 0.5
    assert rec.info["lam"] == pytest.approx(wav.info["lam"], rel=1e-3)
    err = np.abs(np.abs(rec.mean) - x)
    assert np.corrcoef(rec.std.ravel(), err.ravel())[0, 1] > 0.3
    assert 0.5 < np.mean(err <= ni.diagnostics.interval_halfwidth(rec, 0.9)) <= 1.0
    again = ni.reconstruct(scan.kspace, scan.operator, "sparse_laplace", noise=noise, iterations=150, n_samples=16, seed=0)
    assert np.array_equal(again.std, rec.std)  # seeded: reproducible
