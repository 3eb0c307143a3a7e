"""Hand-crafted regularizers: adjoint transforms, gradients against autograd, prox optimality, denoisers."""

import numpy as np
import pytest
import torch

from napari_invimg import datasets
from napari_invimg.metrics import psnr
from napari_invimg.priors import (
    Flux, HessianSchatten, Positivity, Tikhonov, TotalVariation, WaveletSparsity, denoiser_names, get_denoiser,
    get_regularizer, regularizer_names,
)

ANALYSIS = [
    ("tv2", lambda: TotalVariation(2), (2, 20, 24)),
    ("tv3", lambda: TotalVariation(3, weights=(0.5, 1, 1)), (6, 8, 10)),
    ("wavelet-swt2", lambda: WaveletSparsity(2, levels=2), (16, 24)),
    ("wavelet-dwt2", lambda: WaveletSparsity(2, kind="orthogonal", levels=2), (16, 24)),
    ("wavelet-swt3", lambda: WaveletSparsity(3, wavelet="haar", levels=2), (8, 8, 8)),
    ("hessian2", lambda: HessianSchatten(2), (16, 20)),
    ("hessian3", lambda: HessianSchatten(3, weights=(0.5, 1, 1)), (6, 8, 8)),
]


def _sym(R, c):
    """Symmetric per-pixel matrices for the Hessian (the range of its analysis operator)."""
    if isinstance(R, HessianSchatten):
        d = R.ndim
        m = c.reshape(d, d, *c.shape[1:])
        return (m + m.transpose(0, 1)).reshape(c.shape) / 2
    return c


def _prox_objective(R, u, x, t):
    return float(0.5 * (u - x).abs().pow(2).sum() + t * R.value(u))


@pytest.mark.parametrize("label,make,shape", ANALYSIS, ids=[a[0] for a in ANALYSIS])
def test_analysis_adjoint_and_lipschitz(label, make, shape):
    R = make()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64, generator=g)
    c = R.analysis(x)
    p = _sym(R, torch.randn(c.shape, dtype=torch.float64, generator=g))
    assert float((c * p).sum()) == pytest.approx(float((x * R.synthesis(p)).sum()), rel=1e-9, abs=1e-9)
    v = x
    for _ in range(60):
        v = R.synthesis(R.analysis(v))
        s = float(v.norm())
        v = v / s
    assert s <= R.lipschitz * (1 + 1e-6)


@pytest.mark.parametrize("label,make,shape", ANALYSIS, ids=[a[0] for a in ANALYSIS])
def test_huber_gradient_matches_autograd(label, make, shape):
    R = make()
    R.smoothing = 0.1
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    R.smoothed_value(x).backward()
    assert torch.allclose(R.grad(x.detach()), x.grad, atol=1e-8)


@pytest.mark.parametrize("label,make,shape", ANALYSIS, ids=[a[0] for a in ANALYSIS])
@pytest.mark.parametrize("lower", [None, 0.0])
def test_prox_is_the_minimizer(label, make, shape, lower):
    """The prox objective ½‖u − x‖² + tR(u) at prox(x) is below its value at feasible perturbations."""
    R = make()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(shape, dtype=torch.float64, generator=g) + 0.3 * torch.randn(shape, dtype=torch.float64, generator=g)
    t = 0.2
    u = R.prox(x, t, lower=lower, iterations=300, tol=1e-9)
    f = _prox_objective(R, u, x, t)
    assert f < _prox_objective(R, x.clamp(min=lower) if lower is not None else x, x, t)
    for _ in range(20):
        w = u + 1e-2 * torch.randn(shape, dtype=torch.float64, generator=g)
        w = w.clamp(min=lower) if lower is not None else w
        assert _prox_objective(R, w, x, t) >= f - 1e-7
    if lower is not None:
        assert float(u.min()) >= lower


def test_moreau_gradient_matches_finite_differences():
    R = TotalVariation(2)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(12, 12, dtype=torch.float64, generator=g)
    d = torch.randn(12, 12, dtype=torch.float64, generator=g)
    t, h = 0.3, 1e-5
    R.prox_iterations, R.prox_tol = 5000, 1e-12
    fd = (float(R.moreau_value(x + h * d, t)) - float(R.moreau_value(x - h * d, t))) / (2 * h)
    assert float((R.moreau_grad(x, t) * d).sum()) == pytest.approx(fd, rel=1e-3)


@pytest.mark.parametrize("operator", ["identity", "gradient"])
def test_tikhonov_gradient_and_prox(operator):
    R = Tikhonov(2, operator=operator)
    x = torch.randn(10, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(4)).requires_grad_(True)
    R.value(x).backward()
    assert torch.allclose(R.grad(x.detach()), x.grad)
    xd = x.detach()
    u = R.prox(xd, 0.5)
    assert torch.allclose(u - xd + 0.5 * R.grad(u), torch.zeros_like(u), atol=1e-5)  # optimality of the prox
    ub = R.prox(xd, 0.5, lower=0.0)
    assert float(ub.min()) >= 0


def test_constraints_project():
    x = torch.randn(2, 6, 7, generator=torch.Generator().manual_seed(5))
    assert float(Positivity(2).prox(x, 1.0).min()) == 0.0
    assert float(Positivity(2).value(x)) == float("inf")
    F = Flux(2, total=3.0)
    p = F.prox(x, 1.0)
    assert torch.allclose(p.sum(dim=(1, 2)), torch.full((2,), 3.0), atol=1e-5)
    assert float(p.min()) >= 0 and float(F.value(p)) == 0.0
    # the projection is the closest feasible point: compare with random feasible points
    for _ in range(10):
        q = F.prox(p + 0.1 * torch.randn_like(p), 1.0)
        assert float((q - x).norm()) >= float((p - x).norm()) - 1e-5


@pytest.mark.parametrize("name", ["tv", "wavelet", "hessian"])
def test_complex_prox_decreases_the_objective(name):
    R = get_regularizer(name, ndim=2)
    g = torch.Generator().manual_seed(6)
    x = torch.complex(torch.randn(16, 16, generator=g), torch.randn(16, 16, generator=g)).to(torch.complex128)
    u = R.prox(x, 0.2)
    assert u.is_complex()
    assert _prox_objective(R, u, x, 0.2) < _prox_objective(R, x, x, 0.2)
    with pytest.raises(ValueError, match="real images"):
        R.prox(x, 0.2, lower=0.0)


def test_registries_and_errors():
    assert {"tv", "wavelet", "hessian", "tikhonov", "positivity", "flux"} <= set(regularizer_names())
    assert {"tv", "wavelet", "hessian", "nlm"} <= set(denoiser_names())
    with pytest.raises(ValueError, match="Unknown regularizer"):
        get_regularizer("nope")
    with pytest.raises(ValueError, match="orthogonal"):
        WaveletSparsity(2, wavelet="bior2.2")
    with pytest.raises(ValueError, match="axis weights"):
        TotalVariation(2, weights=(1, 2, 3))


@pytest.mark.parametrize("name", ["tv", "wavelet", "hessian", "nlm"])
def test_classical_denoisers_improve_psnr(name):
    x = datasets.fluorescence((48, 48), seed=2)
    sigma = 0.1
    y = x + sigma * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    d = get_denoiser(name)(torch.from_numpy(y), sigma, 2).numpy()
    assert psnr(d, x) > psnr(y, x) + 4.0
    batch = get_denoiser(name)(torch.from_numpy(np.stack([y, y])), sigma, 2)
    assert batch.shape == (2, 48, 48)


def test_as_denoiser_is_the_prox():
    R = TotalVariation(2)
    x = torch.randn(12, 12, generator=torch.Generator().manual_seed(7))
    D = R.as_denoiser(strength=2.0)
    R.reset()
    expected = TotalVariation(2).prox(x, 2.0 * 0.1)
    assert torch.allclose(D(x, 0.1, 2), expected, atol=1e-4)


@pytest.mark.parametrize("name", ["tv", "hessian", "wavelet"])
def test_pixel_weights_scale_the_penalty(name):
    R = get_regularizer(name, ndim=2)
    assert R.pixelwise
    x = torch.randn(16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    plain = float(R.value(x))
    R.pixel_weights = torch.full((16, 16), 2.0, dtype=torch.float64)
    assert float(R.value(x)) == pytest.approx(2 * plain)
    u = R.prox(x, 0.1, iterations=300, tol=1e-9)
    for _ in range(10):
        w = u + 1e-2 * torch.randn(u.shape, dtype=torch.float64)
        assert _prox_objective(R, w, x, 0.1) >= _prox_objective(R, u, x, 0.1) - 1e-7


@pytest.mark.parametrize("kind", ["undecimated", "orthogonal"])
def test_wavelet_weights_batched_after_unbatched(kind):
    """The band weights cached for one image must not be reused with the wrong number of axes for a batch."""
    reg = WaveletSparsity(2, wavelet="haar", levels=2, kind=kind)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, 16, generator=gen, dtype=torch.float64)
    single = reg.shrink(x, 0.05)
    batch = reg.shrink(torch.stack([x, 2 * x]), 0.05)
    assert batch.shape == (2, 16, 16)
    torch.testing.assert_close(batch[0], single)


def test_a_cpu_only_denoiser_says_so_in_the_result():
    """nlm (scikit-image) copies the image to host memory each step: the result's info says so; a torch
    denoiser's result does not."""
    import napari_invimg as ni

    x = ni.datasets.fluorescence((24, 24), seed=0).astype(np.float32)
    A = ni.operators.Blur(ni.psf.gaussian((5, 5), 1.0), x.shape)
    y = ni.simulate(x, A, ni.noise.Gaussian(0.02), seed=0)
    rec = ni.reconstruct(y, A, "pnp_admm", noise=ni.noise.Gaussian(0.02), denoiser="nlm", iterations=2)
    assert "non-local means runs on the CPU" in rec.info["host_round_trip"]
    rec = ni.reconstruct(y, A, "pnp_admm", noise=ni.noise.Gaussian(0.02), denoiser="tv", iterations=2)
    assert "host_round_trip" not in rec.info


@pytest.mark.parametrize("complex_values", [False, True])
def test_wavelet_dual_projection_is_the_magnitude_formula(complex_values):
    """The projection from |p|² (Re² + Im², no complex abs) equals p · min(1, w/|p|), zeros included."""
    from napari_invimg.priors import WaveletSparsity

    reg = WaveletSparsity(2, wavelet="haar", levels=2)
    g = torch.Generator().manual_seed(3)
    p = torch.randn((7, 16, 16), generator=g, dtype=torch.float64)
    if complex_values:
        p = torch.complex(p, torch.randn((7, 16, 16), generator=g, dtype=torch.float64))
    p[:, :2] = 0  # exact zeros stay zero
    w = reg.band_weights(p[0])
    expected = p * torch.minimum(torch.ones(()), w / p.abs().clamp(min=1e-30))
    got = reg.project_dual(p)
    assert torch.allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert float(got.abs().max()) > 0


@pytest.mark.parametrize("complex_values", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_tv_dual_projection_is_the_group_norm_formula(complex_values, weighted):
    """TV's projection by one real factor per pixel equals p · min(1, w/‖p‖), zeros and pixel weights included."""
    from napari_invimg.priors import TotalVariation

    reg = TotalVariation(2)
    g = torch.Generator().manual_seed(4)
    p = torch.randn((2, 16, 16), generator=g, dtype=torch.float64)
    if complex_values:
        p = torch.complex(p, torch.randn((2, 16, 16), generator=g, dtype=torch.float64))
    p[:, :2] = 0  # exact zeros stay zero
    w = torch.ones(16, 16, dtype=torch.float64)
    if weighted:
        w = 0.3 + torch.rand((16, 16), generator=g, dtype=torch.float64)
        reg.pixel_weights = w
    norm = (p.abs() ** 2).sum(0).sqrt()
    expected = p * torch.minimum(torch.ones(()), w / norm.clamp(min=1e-30))
    got = reg.project_dual(p)
    assert torch.allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert float((got.abs() ** 2).sum(0).sqrt().max()) == pytest.approx(float(w.max() if weighted else 1.0), rel=0.5)
    assert bool(((got.abs() ** 2).sum(0).sqrt() <= w * (1 + 1e-12)).all())


@pytest.mark.parametrize("shape, ndim, weights", [((7, 9), 2, None), ((5, 6, 7), 3, [0.5, 1.0, 1.0]),
                                                  ((3, 8, 9), 2, [2.0, 1.0]), ((1, 5, 6), 3, None)])
def test_gradient_fast_path_is_the_adjoint_pair_and_matches_autograd_path(shape, ndim, weights):
    """The in-place ∇ and ∇ᵀ (no autograd) are exact adjoints and equal the out-of-place path autograd takes."""
    from napari_invimg.priors.differences import gradient, gradient_adjoint

    g = torch.Generator().manual_seed(5)
    x = torch.complex(torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64))
    gx = gradient(x, ndim, weights)
    p = torch.randn(gx.shape, generator=g, dtype=torch.complex128)
    gtp = gradient_adjoint(p, ndim, weights)
    assert torch.vdot(gx.flatten(), p.flatten()).allclose(torch.vdot(x.flatten(), gtp.flatten()), rtol=1e-12)
    assert float(gx.abs().max()) > 0 and float(gtp.abs().max()) > 0
    with torch.enable_grad():
        xt, pt = x.clone().requires_grad_(True), p.clone().requires_grad_(True)
        assert torch.allclose(gradient(xt, ndim, weights).detach(), gx, rtol=1e-14, atol=1e-14)
        assert torch.allclose(gradient_adjoint(pt, ndim, weights).detach(), gtp, rtol=1e-14, atol=1e-14)
