"""The shared NUFFT (MRI and black hole): the direct sum, adjointness, the autograd backward, batches, pickling."""

import pickle

import numpy as np
import pytest
import torch

from napari_invimg.operators.nufft import NUFFT


def _direct(x: np.ndarray, points: np.ndarray, scale: float) -> np.ndarray:
    """``s Σ_k x[k] exp(−i k·p)`` with ``k = j − ⌊N/2⌋`` per axis (finufft's centered modes)."""
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in x.shape], indexing="ij")
    phase = sum(p[:, None] * g.reshape(1, -1) for p, g in zip(points.T, grids))
    return scale * np.exp(-1j * phase) @ x.reshape(-1)


@pytest.mark.parametrize("shape", [(12, 10), (6, 8, 5)])
@pytest.mark.parametrize("dtype, tol", [(torch.complex64, 1e-4), (torch.complex128, 1e-9)])
def test_nufft_is_the_direct_sum_and_its_adjoint(shape, dtype, tol):
    rng = np.random.default_rng(0)
    points = rng.uniform(-np.pi, np.pi, (50, len(shape)))
    op = NUFFT(shape, points, scale=0.5)
    x = torch.as_tensor(rng.standard_normal((2,) + shape) + 1j * rng.standard_normal((2,) + shape)).to(dtype)
    c = torch.as_tensor(rng.standard_normal((2, 50)) + 1j * rng.standard_normal((2, 50))).to(dtype)
    fx = op.forward(x)
    assert fx.shape == (2, 50) and fx.dtype == dtype
    ref = _direct(x[1].numpy().astype(np.complex128), points, 0.5)
    assert np.abs(fx[1].numpy() - ref).max() < tol * np.abs(ref).max()
    ac = op.adjoint(c)
    assert ac.shape == (2,) + shape
    lhs, rhs = torch.vdot(c.reshape(-1), fx.reshape(-1)), torch.vdot(ac.reshape(-1), x.reshape(-1))
    assert abs(complex(lhs - rhs)) < tol * abs(complex(lhs))
    # the backward of the forward is the adjoint (torch's conjugate Wirtinger convention), a batch of one works
    xg = x[0].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(torch.real(torch.vdot(c[0], op.forward(xg))), xg)
    assert torch.allclose(g, op.adjoint(c[0]), atol=tol * float(g.abs().max()))
    copy = pickle.loads(pickle.dumps(op))  # plans are not pickled; the copy makes its own
    assert torch.equal(copy.forward(x), fx)
