"""Every linear operator passes <Ax, y> = <x, Aᴴy> in float64 on random inputs, 2D and 3D."""

import numpy as np
import pytest
import torch

import napari_invimg as ni


def _operators(shape, rng):
    k = tuple(min(s - 1, 7) | 1 for s in shape)
    yield ni.operators.Identity(shape)
    for b in ni.operators.BOUNDARIES:
        yield ni.operators.Blur(ni.psf.gaussian(k, 1.3), shape, boundary=b)
    yield ni.operators.Inpainting(rng.random(shape) < 0.6)
    even = tuple(s - s % 2 for s in shape)
    yield ni.operators.Downsampling(even, factor=2)
    yield ni.operators.Downsampling(even, factor=2, psf=ni.psf.gaussian(k, 1.0))
    yield ni.operators.CompressedSensing(shape, m=0.3, seed=1)


@pytest.mark.parametrize("shape", [(17, 23), (32, 32), (6, 11, 9), (8, 16, 12)])
def test_adjoint_identity(shape):
    rng = np.random.default_rng(sum(shape))
    for A in _operators(shape, rng):
        x = torch.from_numpy(rng.standard_normal(A.in_shape))
        y = torch.from_numpy(rng.standard_normal(A.out_shape))
        lhs = float((A.forward(x) * y).sum())
        rhs = float((x * A.adjoint(y)).sum())
        assert abs(lhs - rhs) <= 1e-6 * max(abs(lhs), 1e-12), (A, lhs, rhs)


def test_numpy_in_numpy_out_and_spec_round_trip():
    rng = np.random.default_rng(0)
    for A in _operators((16, 20), rng):
        x = rng.standard_normal(A.in_shape).astype(np.float32)
        y = A.forward(x)
        assert isinstance(y, np.ndarray) and y.shape == A.out_shape
        assert isinstance(A.forward(torch.from_numpy(x)), torch.Tensor)
        B = ni.operators.from_spec(A.spec())
        np.testing.assert_allclose(B.forward(x), y, rtol=1e-5, atol=1e-6)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="larger than the image"):
        ni.operators.Blur(np.ones((9, 9)), (5, 5))
    with pytest.raises(ValueError, match="positive"):
        ni.operators.Blur(np.zeros((3, 3)), (5, 5))
    A = ni.operators.Blur(ni.psf.gaussian((5, 5), 1.0), (16, 16))
    with pytest.raises(ValueError, match="shape"):
        ni.simulate(np.zeros((8, 8)), A)
    with pytest.raises(ValueError, match="NaN"):
        ni.simulate(np.full((16, 16), np.nan), A)
    with pytest.raises(ValueError, match="RGB"):
        ni.reconstruct(np.zeros((16, 16, 3)), A, "wiener")


@pytest.mark.parametrize("shape", [(17, 23), (6, 11, 9)])
def test_gram_preconditioner_is_positive_definite_and_exact_where_circulant(shape):
    """``P ≈ (s·AᴴA + t)⁻¹`` is symmetric positive definite; for Identity and a circular Blur it is the inverse."""
    rng = np.random.default_rng(1)
    for A in _operators(shape, rng):
        P = A.gram_preconditioner(2.0, 0.1)
        if P is None:
            continue
        u, v = (torch.from_numpy(rng.standard_normal(A.in_shape)) for _ in range(2))
        assert abs(float((P(u) * v).sum()) - float((u * P(v)).sum())) <= 1e-5 * float(u.norm() * v.norm())
        assert float((P(u) * u).sum()) > 0
        if isinstance(A, ni.operators.Identity) or getattr(A, "boundary", None) == "circular":
            back = 2.0 * A.normal(P(u)) + 0.1 * P(u)
            assert float((back - u).norm() / u.norm()) < 1e-4


def test_preconditioned_cg_solves_the_same_system_in_fewer_steps():
    from napari_invimg.operators.kernels import conjugate_gradient

    rng = np.random.default_rng(2)
    A = ni.operators.Blur(ni.psf.gaussian((9, 9), 2.0), (48, 48))
    w = torch.from_numpy(rng.uniform(0.2, 1.0, A.out_shape))  # spatially varying weights, as in PnP's data step
    b = torch.from_numpy(rng.standard_normal(A.in_shape))

    def normal(x):
        return A.apply_adjoint(w * A.apply(x)) + 1e-3 * x

    steps = {}
    sols = {}
    for name, pre in [("plain", None), ("preconditioned", A.gram_preconditioner(float(w.min()), 1e-3))]:
        count = [0]
        sols[name] = conjugate_gradient(normal, b, iterations=2000, tol=1e-8, preconditioner=pre,
                                        callback=lambda k, x, c=count: c.__setitem__(0, k + 1))
        steps[name] = count[0]
    assert float((sols["plain"] - sols["preconditioned"]).norm() / sols["plain"].norm()) < 1e-5
    assert steps["preconditioned"] < 0.5 * steps["plain"], steps


def test_from_spec_and_forward_name_bad_input_in_our_words():
    import pytest as _pytest

    from napari_invimg.operators import Blur, from_spec
    with _pytest.raises(ValueError, match=r"does not fit Blur\(psf, shape, boundary\).*'psf'"):
        from_spec({"type": "Blur"})  # was a bare KeyError
    with _pytest.raises(ValueError, match="does not fit Blur"):
        from_spec({"type": "Blur", "psf": [[1.0]], "shape": [4, 4], "foo": 1})
    A = Blur(np.ones((3, 3)), (8, 8))
    with _pytest.raises(TypeError, match="expects numeric images"):
        A.forward(np.full((8, 8), "a"))  # was torch's "can't convert np.ndarray of type numpy.str_"
    assert A.forward(np.ones((8, 8), bool)).dtype == np.float32
