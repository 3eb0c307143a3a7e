"""Variational methods (tv, wavelet, hessian, rl_tv) and their solvers: objective decrease, PSNR bounds,
every operator, 3D, complex images, automatic and given λ."""

import numpy as np
import pytest
import torch

import napari_invimg as ni
from napari_invimg import datasets
from napari_invimg.methods._proximal import admm, fista, initial_image, primal_dual, scale_problem
from napari_invimg.metrics import psnr
from napari_invimg.priors import TotalVariation


@pytest.fixture(scope="module")
def blur_problem():
    x = datasets.fluorescence((48, 48), seed=1)
    A = ni.operators.Blur(ni.psf.gaussian((9, 9), sigma=1.2), x.shape)
    noise = ni.noise.PoissonGaussian(gain=0.01, sigma=0.01)
    return x, A, noise, ni.simulate(x, A, noise, seed=0)


@pytest.mark.parametrize("method", ["tv", "wavelet", "hessian", "rl_tv"])
def test_methods_beat_the_data_on_a_blurred_image(blur_problem, method):
    x, A, noise, y = blur_problem
    rec = ni.reconstruct(y, A, method, noise=noise, iterations=120)
    assert rec.mean.shape == x.shape and float(rec.mean.min()) >= 0
    assert psnr(rec.mean, x) > psnr(y, x) + 1.0
    assert rec.info["lam"] > 0 and "discrepancy" in rec.info["lam_choice"]


def test_primal_dual_meets_the_discrepancy_target(blur_problem):
    x, A, noise, y = blur_problem
    rec = ni.reconstruct(y, A, "tv", noise=noise, iterations=300, tau=0.8, tol=1e-6)
    fid = ni.operators.DataTerm(torch.from_numpy(y), A, noise)
    z = A.forward(torch.from_numpy(rec.mean))
    assert fid.discrepancy(z) / fid.expected_discrepancy(z) == pytest.approx(0.8, rel=0.05)


@pytest.mark.parametrize("solver", ["fista", "admm", "primal_dual"])
def test_solvers_decrease_the_penalised_objective(blur_problem, solver):
    x, A, noise, y = blur_problem
    sp = scale_problem(torch.from_numpy(y), noise)
    fid, reg, lam = ni.operators.DataTerm(sp.y, A, sp.noise), TotalVariation(2), 2.0
    x0 = initial_image(sp.y, A, 0.0)

    def objective(v):
        return fid.nll(A.apply(v)) + lam * float(reg.value(v))

    run = {"fista": fista, "admm": admm, "primal_dual": primal_dual}[solver]
    trace = []
    xs, info = run(fid, reg, x0, lam=lam, lower=0.0, iterations=150, tol=1e-7,
                   callback=lambda k, v, val: trace.append(objective(v)))
    assert objective(xs) < objective(x0) - 0.01 * abs(objective(x0))
    if solver == "fista":  # the monotone variant never increases the objective
        assert all(b <= a + 1e-6 * abs(a) for a, b in zip(trace, trace[1:]))
    # the three solvers agree on the minimum
    ref, _ = primal_dual(fid, reg, x0, lam=lam, lower=0.0, iterations=600, tol=1e-8)
    gap = objective(x0) - objective(ref)
    assert objective(xs) - objective(ref) < 0.01 * gap


def test_over_relaxed_primal_dual_reaches_the_same_solution_sooner():
    """Over-relaxed (ρ = 1.9) and plain Chambolle–Pock (ρ = 1, the default) solve the same constrained problem;
    the relaxed iteration stops in fewer iterations, and its result satisfies the bounds."""
    x = datasets.fluorescence((32, 32), seed=2)
    A, noise = ni.operators.Blur(ni.psf.gaussian((7, 7), sigma=1.0), x.shape), ni.noise.Gaussian(0.02)
    sp = scale_problem(torch.from_numpy(ni.simulate(x, A, noise, seed=0)), noise)
    fid, reg = ni.operators.DataTerm(sp.y, A, sp.noise), TotalVariation(2)
    x0 = initial_image(sp.y, A, 0.0)
    plain, info_plain = primal_dual(fid, reg, x0, None, 0.8, 0.0, 3000, 1e-5)
    relaxed, info_relaxed = primal_dual(fid, reg, x0, None, 0.8, 0.0, 3000, 1e-5, relaxation=1.9)
    assert info_plain["iterations"] < 3000  # both converged
    assert float(relaxed.min()) >= 0.0
    assert info_relaxed["iterations"] < 0.8 * info_plain["iterations"]
    assert float((relaxed - plain).norm() / plain.norm()) < 5e-3
    assert info_relaxed["lam"] == pytest.approx(info_plain["lam"], rel=0.02)


def _operators(shape):
    rng = np.random.default_rng(0)
    return {
        "Identity": ni.operators.Identity(shape),
        "Blur": ni.operators.Blur(ni.psf.gaussian((7, 7), sigma=1.0), shape),
        "Inpainting": ni.operators.Inpainting(rng.random(shape) < 0.6),
        "Downsampling": ni.operators.Downsampling(shape, factor=2),
        "CompressedSensing": ni.operators.CompressedSensing(shape, 0.5, seed=0),
    }


@pytest.mark.parametrize("op", ["Identity", "Blur", "Inpainting", "Downsampling", "CompressedSensing"])
@pytest.mark.parametrize("solver", ["primal_dual", "fista", "admm"])
def test_tv_works_for_every_linear_operator(op, solver):
    x = datasets.fluorescence((32, 32), seed=4)
    A = _operators(x.shape)[op]
    noise = ni.noise.Gaussian(0.03)
    y = ni.simulate(x, A, noise, seed=1)
    rec = ni.reconstruct(y, A, "tv", noise=noise, iterations=80, solver=solver)
    baseline = A.dagger(y, iterations=10) if op != "Identity" else y
    assert psnr(rec.mean, x) > psnr(np.clip(baseline, 0, None), x) + 1.0


@pytest.mark.parametrize("method", ["tv", "hessian", "wavelet"])
def test_3d_stack(method):
    x = datasets.fluorescence((8, 24, 24), seed=5)
    A = ni.operators.Blur(ni.psf.gaussian((5, 7, 7), sigma=(1.5, 1.0, 1.0)), x.shape)
    noise = ni.noise.Gaussian(0.03)
    y = ni.simulate(x, A, noise, seed=0)
    params = {"z_weight": 0.5} if method != "wavelet" else {"wavelet": "haar", "levels": 2}
    rec = ni.reconstruct(y, A, method, noise=noise, iterations=60, **params)
    assert rec.mean.shape == x.shape
    assert psnr(rec.mean, x) > psnr(y, x) + 1.0


@pytest.mark.parametrize("method", ["tv", "wavelet", "hessian"])
def test_complex_images(method):
    """MRI-like complex image: magnitude with a smooth phase, denoised; positivity is switched off."""
    mag = datasets.fluorescence((32, 32), seed=6)
    yy, xx = np.mgrid[:32, :32] / 32.0
    x = (mag * np.exp(1j * 2 * (yy + 0.5 * xx))).astype(np.complex64)

    class ComplexIdentity(ni.operators.Identity):
        in_complex = out_complex = True

    A = ComplexIdentity(x.shape)
    noise = ni.noise.Gaussian(0.05)
    y = ni.simulate(x, A, noise, seed=0)
    rec = ni.reconstruct(y, A, method, noise=noise, iterations=80)
    assert np.iscomplexobj(rec.mean) and rec.info["positivity"] is False
    assert np.linalg.norm(rec.mean - x) < 0.8 * np.linalg.norm(y - x)


def test_given_lambda_is_used_and_larger_lambda_smooths_more(blur_problem):
    x, A, noise, y = blur_problem
    small = ni.reconstruct(y, A, "tv", noise=noise, lam=0.1, iterations=100)
    large = ni.reconstruct(y, A, "tv", noise=noise, lam=10.0, iterations=100)
    assert small.info["lam"] == pytest.approx(0.1) and small.info["lam_choice"] == "given"
    tv = TotalVariation(2)
    assert float(tv.value(torch.from_numpy(large.mean))) < float(tv.value(torch.from_numpy(small.mean)))
    assert large.info["misfit"] > small.info["misfit"]


def test_progress_preview_and_cancel(blur_problem):
    x, A, noise, y = blur_problem
    seen = []

    def progress(k, total, preview):
        seen.append(preview.shape)
        return k < 5

    with pytest.raises(ni.Cancelled) as err:
        ni.reconstruct(y, A, "hessian", noise=noise, progress=progress)
    assert seen[0] == x.shape and err.value.partial is not None


def test_poisson_noise_with_complex_data_is_refused():
    x = np.ones((8, 8), dtype=np.complex64)

    class ComplexImages(ni.operators.Identity):
        in_complex = out_complex = True

    with pytest.raises(ValueError, match="real data"):
        ni.reconstruct(x, ComplexImages(x.shape), "tv", noise=ni.noise.Poisson(1.0))
