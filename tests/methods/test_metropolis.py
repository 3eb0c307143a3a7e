import numpy as np
import torch

from napari_invimg.methods._metropolis import adaptive_metropolis
from napari_invimg.uncertainty import split_rhat


def test_adaptive_metropolis_samples_a_correlated_gaussian():
    """On a 3-D Gaussian with correlations 0.8 and −0.3, scales 1 : 0.1 : 10, started over-dispersed with a wrong proposal
    covariance, the draws after warm-up have the target's mean and covariance and split-R̂ < 1.05; the independence
    proposals (fitted to warm-up) are accepted often, as the target is Gaussian."""
    g = torch.Generator().manual_seed(5)
    scales = torch.tensor([1.0, 0.1, 10.0], dtype=torch.float64)
    corr = torch.tensor([[1.0, 0.8, 0.0], [0.8, 1.0, -0.3], [0.0, -0.3, 1.0]], dtype=torch.float64)
    cov = corr * scales[:, None] * scales[None, :]
    prec = torch.linalg.inv(cov)
    mean = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)

    def target(x):
        d = x - mean
        return 0.5 * torch.einsum("ci,ij,cj->c", d, prec, d), None

    kept = []
    start = mean + torch.randn((4, 3), generator=g, dtype=torch.float64) * scales * 3
    _, info = adaptive_metropolis(target, start, g, warmup=300, iterations=1500, cov=torch.eye(3, dtype=torch.float64),
                                  record=lambda x, aux, k: kept.append(x.clone()))
    draws = torch.stack(kept, 1)  # (chains, draws, 3)
    flat = draws.reshape(-1, 3)
    assert torch.allclose(flat.mean(0), mean, atol=0.15 * float(scales.max()))
    assert torch.allclose(flat.mean(0)[1], mean[1], atol=0.02)
    est = torch.cov(flat.T)
    assert torch.allclose(est.diagonal().sqrt(), scales, rtol=0.12)
    assert abs(float(est[0, 1] / (est[0, 0] * est[1, 1]).sqrt()) - 0.8) < 0.05
    assert float(np.max(split_rhat(draws.numpy()))) < 1.05
    assert info["acceptance_independence"] > 0.3 and 0.1 < info["acceptance_random_walk"] < 0.6
