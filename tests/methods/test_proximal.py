"""Discrepancy projections of the Gaussian fidelity (closed form and weighted) and the measured-sample count."""

import numpy as np
import pytest
import torch

import napari_invimg as ni
from napari_invimg.methods._proximal import Fidelity


@pytest.mark.parametrize("complex_data", [False, True])
def test_gaussian_projection_closed_form_and_weighted(complex_data):
    g = torch.Generator().manual_seed(0)
    shape = (40, 30)
    dtype = torch.complex64 if complex_data else torch.float32
    y = torch.randn(shape, generator=g, dtype=dtype)
    v = y + 3 * torch.randn(shape, generator=g, dtype=dtype)
    fid = Fidelity(ni.noise.Gaussian(0.5), y)
    delta = 0.5 * fid.discrepancy(v)
    z, mu = fid.project(v, delta, 1.0)
    assert fid.discrepancy(z) == pytest.approx(delta, rel=1e-4) and mu > 0
    assert torch.allclose(z, fid.prox(v, mu), atol=1e-5)  # the projection is a prox of the same family
    w = 0.2 + torch.rand(shape, generator=g)
    zw, muw = fid.project(v, delta, 1.0, weights=w)
    assert fid.discrepancy(zw) == pytest.approx(delta, rel=1e-3)
    # KKT of min Σ w|z − v|² s.t. D(z) ≤ δ: w (z − v) ∥ −(z − y), the same multiplier everywhere
    ratio = (w * (v - zw)).abs() / (zw - y).abs().clamp(min=1e-6)
    assert float(ratio.std() / ratio.mean()) < 1e-2
    inside, mu0 = fid.project(v, 2 * fid.discrepancy(v), 1.0)
    assert mu0 == 0.0 and torch.equal(inside, v)


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
