"""MRI operators: adjoint identities with complex inputs, FFT convention, autograd, batches, spec round trip."""

import warnings

import numpy as np
import pytest
import torch

import napari_invimg as ni
from napari_invimg import mri


def _cplx(rng, shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def _operators(rng):
    yield mri.CartesianMRI(rng.random((24, 20)) < 0.4)
    yield mri.CartesianMRI(rng.random((24, 20)) < 0.4, coil_maps=_cplx(rng, (4, 24, 20)))
    yield mri.CartesianMRI(rng.random((6, 10, 12)) < 0.5, coil_maps=_cplx(rng, (3, 6, 10, 12)))  # 3D
    traj = rng.uniform(-np.pi, np.pi, (300, 2))
    yield mri.NonCartesianMRI(traj, (16, 18))
    yield mri.NonCartesianMRI(traj, (16, 18), coil_maps=_cplx(rng, (3, 16, 18)))
    yield mri.NonCartesianMRI(rng.uniform(-np.pi, np.pi, (200, 3)), (6, 8, 10))  # 3D non-Cartesian


def test_adjoint_identity_complex():
    rng = np.random.default_rng(0)
    for A in _operators(rng):
        x = torch.from_numpy(_cplx(rng, A.in_shape))
        y = torch.from_numpy(_cplx(rng, A.out_shape))
        lhs = torch.vdot(A.forward(x).reshape(-1), y.reshape(-1))
        rhs = torch.vdot(x.reshape(-1), A.adjoint(y).reshape(-1))
        assert abs(lhs - rhs) <= 1e-8 * abs(lhs), (A, lhs, rhs)


def test_fft_convention_matches_numpy_ortho_centered():
    rng = np.random.default_rng(1)
    x = _cplx(rng, (17, 12))
    A = mri.CartesianMRI(np.ones((17, 12), bool))
    ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x), norm="ortho"))
    np.testing.assert_allclose(A.forward(x.astype(np.complex64)), ref, atol=1e-5)
    np.testing.assert_allclose(A.adjoint(ref.astype(np.complex64)), x, atol=1e-5)


def test_nufft_matches_direct_dft_and_cartesian_grid():
    rng = np.random.default_rng(2)
    shape = (12, 10)
    x = _cplx(rng, shape)
    traj = rng.uniform(-np.pi, np.pi, (50, 2))
    A = mri.NonCartesianMRI(traj, shape)
    ry, rx = np.meshgrid(np.arange(12) - 6, np.arange(10) - 5, indexing="ij")
    E = np.exp(-1j * (traj[:, :1] * ry.reshape(1, -1) + traj[:, 1:] * rx.reshape(1, -1))) / np.sqrt(120)
    direct = E @ x.reshape(-1)
    assert np.abs(A.forward(torch.from_numpy(x)).numpy() - direct).max() <= 1e-8 * np.abs(direct).max()
    # on the Cartesian grid points the NUFFT equals the centered orthonormal FFT
    ky, kx = np.meshgrid((np.arange(12) - 6) * 2 * np.pi / 12, (np.arange(10) - 5) * 2 * np.pi / 10, indexing="ij")
    G = mri.NonCartesianMRI(np.stack([ky.ravel(), kx.ravel()], 1), shape)
    C = mri.CartesianMRI(np.ones(shape, bool))
    np.testing.assert_allclose(G.forward(torch.from_numpy(x)).numpy().reshape(shape),
                               C.forward(torch.from_numpy(x)).numpy(), atol=1e-9)


def test_batches_autograd_and_spec():
    rng = np.random.default_rng(3)
    for A in _operators(rng):
        xb = torch.from_numpy(_cplx(rng, (2,) + A.in_shape)).to(torch.complex64)
        yb = A.forward(xb)
        assert yb.shape == (2,) + A.out_shape
        np.testing.assert_allclose(yb[1].numpy(), A.forward(xb[1]).numpy(), atol=1e-4)
        x = xb[0].clone().requires_grad_(True)
        y = torch.from_numpy(_cplx(rng, A.out_shape)).to(torch.complex64)
        loss = 0.5 * (A.forward(x) - y).abs().pow(2).sum()
        loss.backward()
        expected = A.adjoint(A.forward(x.detach()) - y)
        np.testing.assert_allclose(x.grad.numpy(), expected.numpy(), rtol=1e-3, atol=1e-3)
        B = ni.operators.from_spec(A.spec())
        np.testing.assert_allclose(B.forward(xb[0]).numpy(), yb[0].numpy(), atol=1e-5)
        assert A.in_complex and A.out_complex


def test_bad_inputs():
    with pytest.raises(ValueError, match="(?i)coil maps"):
        mri.CartesianMRI(np.ones((8, 8), bool), coil_maps=np.ones((4, 8, 9), complex))
    with pytest.raises(ValueError, match="samples nothing"):
        mri.CartesianMRI(np.zeros((8, 8), bool))
    A = mri.CartesianMRI(np.ones((8, 8), bool), coil_maps=np.ones((2, 8, 8), complex) / np.sqrt(2))
    with pytest.raises(ValueError, match="must be complex"):
        ni.reconstruct(np.ones((2, 8, 8)), A, "adjoint")
    with pytest.raises(ValueError, match="shape"):
        ni.reconstruct(np.ones((3, 8, 8), np.complex64), A, "adjoint")
    with pytest.raises(ValueError, match="all zero"):
        ni.reconstruct(np.zeros((2, 8, 8), np.complex64), A, "adjoint")
    with pytest.raises(ValueError, match="trajectory"):
        mri.NonCartesianMRI(np.zeros((10, 3)), (8, 8))


@pytest.mark.parametrize("shape", [(8, 6), (7, 6), (4, 6, 10)])
@pytest.mark.parametrize("coils", [None, 3])
def test_cartesian_folded_shifts_match_centered_fft(shape, coils):
    """Even sizes fold the centering shifts into the maps and mask; odd sizes keep them: both are M ⊙ F(S x)."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    mask = rng.random(shape) < 0.5
    maps = None if coils is None else (rng.standard_normal((coils,) + shape)
                                       + 1j * rng.standard_normal((coils,) + shape)).astype(np.complex64)
    A = mri.CartesianMRI(mask, coil_maps=maps)
    sx = x if maps is None else maps * x
    axes = tuple(range(-len(shape), 0))
    ref = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(sx, axes=axes), axes=axes, norm="ortho"), axes=axes) * mask
    np.testing.assert_allclose(A.forward(x), ref, atol=1e-5)
    y = (rng.standard_normal(A.out_shape) + 1j * rng.standard_normal(A.out_shape)).astype(np.complex64)
    lhs, rhs = np.vdot(A.forward(x), y), np.vdot(x, A.adjoint(y))
    assert abs(lhs - rhs) < 1e-4 * abs(lhs)
    xt = torch.from_numpy(x)
    np.testing.assert_allclose(A.normal(xt).numpy(), A.adjoint(A.forward(x)), atol=1e-5)


@pytest.mark.parametrize("shape, coils", [((24, 20), 4), ((17, 12), 0), ((6, 10, 12), 3)])
def test_gathered_cartesian_adjoint_and_equivalence(shape, coils):
    """The compact operator keeps only the sampled points: adjoint identity, and the same values as the full
    operator there (odd and even sizes, single and multi-coil, real mask weights)."""
    rng = np.random.default_rng(7)
    mask = np.where(rng.random(shape) < 0.4, rng.uniform(0.5, 2.0, shape), 0.0).astype(np.float32)
    full = mri.CartesianMRI(mask, coil_maps=_cplx(rng, (coils,) + shape) if coils else None)
    A, gather = full.compact()
    assert isinstance(A, mri.GatheredCartesianMRI)
    assert A.out_shape == full.coil_shape + (int((mask > 0).sum()),) and A.n_measured() == full.n_measured()
    x = torch.from_numpy(_cplx(rng, shape)).to(torch.complex128)
    y = torch.from_numpy(_cplx(rng, A.out_shape)).to(torch.complex128)
    lhs = torch.vdot(A._forward(x).reshape(-1), y.reshape(-1))
    rhs = torch.vdot(x.reshape(-1), A._adjoint(y).reshape(-1))
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)
    np.testing.assert_allclose(A._forward(x).numpy(), gather(full._forward(x)).numpy(), atol=1e-5)
    k = full._forward(x)
    np.testing.assert_allclose(A._adjoint(gather(k)).numpy(), full._adjoint(k).numpy(), atol=1e-5)
    assert float(full._forward(x).abs().sum()) == pytest.approx(float(gather(full._forward(x)).abs().sum()))
    np.testing.assert_allclose(A.normal(x).numpy(), A._adjoint(A._forward(x)).numpy(), atol=1e-5)
    assert mri.GatheredCartesianMRI.from_params(**A._params()).out_shape == A.out_shape


@pytest.mark.parametrize("axis", [-1, -2])
def test_gathered_cartesian_on_whole_lines_prunes_the_fft_and_agrees(axis):
    """A mask of whole lines (equispaced phase encodes, real weights) takes the pruned-FFT path: the same values and
    adjoint as the full operator."""
    rng = np.random.default_rng(11)
    shape, picked = (16, 20), [0, 3, 4, 9, 15]
    mask = np.zeros(shape, np.float32)
    weights = rng.uniform(0.5, 2.0, len(picked)).astype(np.float32)
    if axis == -1:
        mask[:, picked] = weights
    else:
        mask[picked, :] = weights[:, None]
    full = mri.CartesianMRI(mask, coil_maps=_cplx(rng, (3,) + shape))
    A, gather = full.compact()
    assert A.lines is not None and A.lines[0] == axis and A.hybrid  # constant weight along each line: hybrid space
    x = torch.from_numpy(_cplx(rng, shape)).to(torch.complex128)
    y = torch.from_numpy(_cplx(rng, A.out_shape)).to(torch.complex128)
    np.testing.assert_allclose(A._forward(x).numpy(), gather(full._forward(x)).numpy(), atol=1e-10)
    k = full._forward(x)
    np.testing.assert_allclose(A._adjoint(gather(k)).numpy(), full._adjoint(k).numpy(), atol=1e-10)
    lhs = torch.vdot(A._forward(x).reshape(-1), y.reshape(-1))
    rhs = torch.vdot(x.reshape(-1), A._adjoint(y).reshape(-1))
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)
    # hybrid space is a unitary change of the data: norms kept, to_kspace undoes it, k-space views agree
    kk = A._take(k)
    assert not torch.allclose(gather(k), kk)
    assert float(gather(k).abs().norm()) == pytest.approx(float(kk.abs().norm()), rel=1e-10)
    np.testing.assert_allclose(A.to_kspace(gather(k)).numpy(), kk.numpy(), atol=1e-10)
    np.testing.assert_allclose(A.combine_rss(gather(k)).numpy(), full.combine_rss(k).numpy(), atol=1e-10)
    assert A.estimate_noise(gather(k)) == pytest.approx(full.estimate_noise(k), rel=1e-6)
    # a weight that varies along a line: no hybrid space, the pruned FFT along the lines as before
    varying = mask.copy()
    varying[(slice(None), picked[0]) if axis == -1 else (picked[0], slice(None))] *= np.linspace(0.5, 1.5, shape[axis - 1 if axis == -1 else -1])
    B, gather_b = mri.CartesianMRI(varying, coil_maps=full.coil_maps_array).compact()
    assert B.lines is not None and not B.hybrid
    kb = mri.CartesianMRI(varying, coil_maps=full.coil_maps_array)._forward(x)
    np.testing.assert_allclose(B._forward(x).numpy(), gather_b(kb).numpy(), atol=1e-10)


def test_variational_methods_on_gathered_kspace_equal_the_full_operator():
    """``tv`` and ``wavelet`` solve on the sampled points only (``A.compact()``): the same iterates as on the
    full k-space grid, to float rounding."""
    x = mri.brain((48, 48), seed=1)
    sc = mri.simulate_kspace(x, 4, kind="poisson", acceleration=4, snr_db=30, seed=0)
    noise = ni.noise.Gaussian(sc.sigma)
    for method in ("tv", "wavelet"):
        fast = ni.reconstruct(sc.kspace, sc.operator, method, noise=noise, iterations=40)
        slow_op = mri.CartesianMRI(sc.mask, sc.coil_maps)
        slow_op.compact = lambda op=slow_op: (op, lambda y: y)  # the full-grid path
        slow = ni.reconstruct(sc.kspace, slow_op, method, noise=noise, iterations=40)
        assert fast.info["iterations"] == slow.info["iterations"]
        err = np.abs(fast.mean - slow.mean).max() / np.abs(slow.mean).max()
        assert err < 1e-4, (method, err)


def test_cpu_only_operators_say_so_in_the_info():
    rng = np.random.default_rng(5)
    A = mri.NonCartesianMRI(rng.uniform(-np.pi, np.pi, (120, 2)), (12, 12))
    y = A.forward(_cplx(rng, (12, 12)).astype(np.complex64))
    rec = ni.reconstruct(y, A, "adjoint", noise=ni.noise.Gaussian(0.01))
    assert "finufft runs on the CPU" in rec.info["host_round_trip"]
    assert mri.CartesianMRI(np.ones((4, 4), bool)).host_round_trip is None  # pure torch: runs on any device


def test_line_masks_take_the_tuned_primal_dual_to_the_same_solution_sooner():
    """Masks of whole lines ask for the over-relaxed primal–dual with a larger step (``primal_dual_steps``), Poisson
    masks for the plain one; on a small equispaced problem both reach the same constrained solution (same λ, image to
    1e-3), the tuned one in fewer iterations."""
    from napari_invimg.methods._proximal import (
        initial_image,
        primal_dual,
        scale_problem,
    )
    from napari_invimg.methods.variational import measured_count
    from napari_invimg.priors.hessian import HessianSchatten
    from napari_invimg.priors.tv import TotalVariation
    from napari_invimg.priors.wavelet import WaveletSparsity

    x = mri.brain((48, 48), seed=1)
    tv = TotalVariation(2)
    assert mri.simulate_kspace(x, 4, kind="poisson", acceleration=4, seed=0).operator.primal_dual_steps(tv) == {}
    sc = mri.simulate_kspace(x, 4, kind="equispaced", acceleration=4, snr_db=30, seed=0)
    steps = sc.operator.primal_dual_steps(tv)
    assert steps["relaxation"] > 1 and steps["step"] > 0.05
    assert sc.operator.primal_dual_steps(WaveletSparsity(2))["data_share"] > 0.5
    assert sc.operator.primal_dual_steps(HessianSchatten(2)) == {}  # not measured: the plain iteration
    assert mri.CartesianMRI(sc.mask).primal_dual_steps(tv) == {}  # single coil: not measured
    A, gather = sc.operator.compact()
    assert A.primal_dual_steps(tv) == steps
    sp = scale_problem(torch.from_numpy(sc.kspace), ni.noise.Gaussian(sc.sigma))
    data = ni.operators.DataTerm(gather(sp.y), A, sp.noise, measured=measured_count(sc.operator, sp.y))
    x0 = initial_image(data.y, A, None)
    plain, info_plain = primal_dual(data, tv, x0, None, 0.8, None, 4000, 1e-6)
    tuned, info_tuned = primal_dual(data, tv, x0, None, 0.8, None, 4000, 1e-6, **steps)
    assert info_plain["iterations"] < 4000  # both converged
    assert info_tuned["iterations"] < 0.7 * info_plain["iterations"]
    assert float((tuned - plain).abs().norm() / plain.abs().norm()) < 1e-3
    assert info_tuned["lam"] == pytest.approx(info_plain["lam"], rel=0.02)


def test_wavelet_step_growth_on_line_masks_reaches_the_same_solution():
    """With wavelets on a line mask the primal step may grow once the misfit is at its target (``max_step``): the
    constrained solution is the same (image, λ) and τ did grow; without ``max_step`` the step stays fixed. (Fewer
    iterations at the default tolerance are measured on the 256² benchmark, RESULTS §6; at tol 1e-6 on 48² the grown
    step takes more.)"""
    from napari_invimg.methods._proximal import initial_image, primal_dual, scale_problem
    from napari_invimg.methods.variational import measured_count
    from napari_invimg.priors.wavelet import WaveletSparsity

    sc = mri.simulate_kspace(mri.shepp_logan((48, 48)), 4, kind="equispaced", acceleration=4, snr_db=30, seed=0)
    wavelet = WaveletSparsity(2, wavelet="haar")
    steps = sc.operator.primal_dual_steps(wavelet)
    assert steps["max_step"] > steps["step"] and steps["growth"] > 1 and steps["growth_slack"] > 0
    fixed = {k: v for k, v in steps.items() if k != "max_step"}
    A, gather = sc.operator.compact()
    sp = scale_problem(torch.from_numpy(sc.kspace), ni.noise.Gaussian(sc.sigma))
    data = ni.operators.DataTerm(gather(sp.y), A, sp.noise, measured=measured_count(sc.operator, sp.y))
    x0 = initial_image(data.y, A, None)
    ref, info_ref = primal_dual(data, wavelet, x0, None, 0.8, None, 4000, 1e-6, **fixed)
    grown, info_grown = primal_dual(data, wavelet, x0, None, 0.8, None, 4000, 1e-6, **steps)
    assert info_ref["step"] == steps["step"] and info_grown["step"] > steps["step"]
    assert info_ref["iterations"] < 4000 and info_grown["iterations"] < 4000
    assert float((grown - ref).abs().norm() / ref.abs().norm()) < 3e-3
    assert info_grown["lam"] == pytest.approx(info_ref["lam"], rel=0.05)
    with pytest.raises(ValueError, match="max_step"):
        primal_dual(data, wavelet, x0, None, 0.8, None, 5, 1e-6, step=0.15, max_step=0.1)
    with pytest.raises(ValueError, match="growth"):
        primal_dual(data, wavelet, x0, None, 0.8, None, 5, 1e-6, step=0.15, max_step=0.6, growth=1.0)
    with pytest.raises(ValueError, match="growth_slack"):
        primal_dual(data, wavelet, x0, None, 0.8, None, 5, 1e-6, step=0.15, max_step=0.6, growth_slack=-0.1)


def _low_rank_scan(n_coils: int = 8, rank: int = 4, snr_db: float | None = 30.0, kind: str = "poisson"):
    """A 48² brain scan whose ``n_coils`` maps are mixtures of ``rank`` birdcage maps: the coils span ``rank``
    dimensions, so compressing to ``rank`` virtual coils drops noise only."""
    rng = np.random.default_rng(5)
    x = mri.brain((48, 48), seed=1)
    mix = (rng.standard_normal((n_coils, rank)) + 1j * rng.standard_normal((n_coils, rank))) / np.sqrt(2 * rank)
    maps = np.tensordot(mix, mri.birdcage(rank, x.shape), axes=1).astype(np.complex64)
    m = mri.mask(kind, x.shape, 4.0, None, 0)
    A = mri.CartesianMRI(m, maps)
    clean = A.forward(x.astype(np.complex64))
    sigma = mri.noise_sigma_for_snr(clean, m > 0, snr_db) if snr_db is not None else 0.0
    noise = np.random.default_rng(6).standard_normal((2,) + clean.shape) * sigma
    y = (clean + (noise[0] + 1j * noise[1]) * (np.broadcast_to(m, clean.shape) > 0)).astype(np.complex64)
    return x, A, y, sigma


def test_coil_compression_is_exact_when_the_dropped_coils_hold_no_signal():
    """Noise-free data from 8 coils spanning 4 dimensions: ``compressed`` keeps 4 virtual coils (the rest hold no
    energy), ``Uᴴ`` maps the data onto the compressed operator's output exactly, the misfit of any image is unchanged,
    and a reconstruction with a given λ is the same image; ``energy = 1`` is the operator itself."""
    x, A, y, _ = _low_rank_scan(snr_db=None)
    G, gather = A.compact()
    yt = gather(torch.from_numpy(y))
    sigma = 1e-3 * float(yt.abs().max())
    assert G.compressed(yt, sigma, 1.0) == (G, yt, {"coils": 8, "of": 8, "energy": 1.0})
    B, yc, info = G.compressed(yt, sigma, 0.9999)
    assert (info["coils"], info["of"]) == (4, 8) and info["energy"] > 0.9999
    assert isinstance(B, mri.GatheredCartesianMRI) and B.n_coils == 4 and B.n_measured() == A.n_measured() // 2
    xt = torch.from_numpy(x.astype(np.complex64))
    torch.testing.assert_close(B.apply(xt), yc, atol=1e-4 * float(yc.abs().max()), rtol=0)
    z = torch.from_numpy(mri.brain((48, 48), seed=3).astype(np.complex64))  # another image: same misfit
    full_r, comp_r = float((G.apply(z) - yt).abs().norm()), float((B.apply(z) - yc).abs().norm())
    assert comp_r == pytest.approx(full_r, rel=1e-4)
    noise = ni.noise.Gaussian(sigma)
    kw = dict(noise=noise, lam=0.02, iterations=150, tol=1e-7)
    full = ni.reconstruct(y, A, "tv", coil_energy=1.0, **kw)
    comp = ni.reconstruct(y, A, "tv", coil_energy=0.9999, **kw)
    assert comp.info["coil_compression"]["coils"] == 4 and full.info["coil_compression"]["coils"] == 8
    assert comp.info["iterations"] == full.info["iterations"]
    assert float(np.abs(comp.mean - full.mean).max()) < 1e-3 * float(np.abs(full.mean).max())


def test_coil_compression_keeps_the_discrepancy_principle_and_the_image():
    """Noisy data from 8 coils spanning 4 dimensions: compressed to 4 virtual coils, the discrepancy target leaves out
    the dropped coils' noise (τM − (M − M')), so λ and the image stay those of the full problem; counting the target
    on the kept values alone (τM') would regularize more (measured: λ ×1.5, −0.7 dB)."""
    from napari_invimg.methods._proximal import initial_image, primal_dual, scale_problem
    from napari_invimg.priors.tv import TotalVariation

    x, A, y, sigma = _low_rank_scan()
    noise = ni.noise.Gaussian(sigma)
    full = ni.reconstruct(y, A, "tv", noise=noise, coil_energy=1.0, tol=1e-6, iterations=600)
    comp = ni.reconstruct(y, A, "tv", noise=noise, coil_energy=0.999, tol=1e-6, iterations=600)
    assert (comp.info["coil_compression"]["coils"], comp.info["coil_compression"]["of"]) == (4, 8)
    assert comp.info["lam"] == pytest.approx(full.info["lam"], rel=0.05)
    p_full, p_comp = (ni.metrics.psnr(np.abs(r.mean), np.abs(x)) for r in (full, comp))
    assert abs(p_comp - p_full) < 0.1, (p_full, p_comp)
    # the naive target on the compressed data: a much larger λ
    G, gather = A.compact()
    sp = scale_problem(torch.from_numpy(y), noise)
    B, yc, _ = G.compressed(gather(sp.y), sp.noise.sigma, 0.999)
    data = ni.operators.DataTerm(yc, B, sp.noise, measured=B.n_measured())
    xn, naive = primal_dual(data, TotalVariation(2), initial_image(yc, B, None), None, 0.8, None, 600, 1e-6)
    assert naive["lam"] / sp.scale > 1.3 * full.info["lam"]
    assert ni.metrics.psnr(np.abs(xn.numpy() * sp.scale), np.abs(x)) < p_full - 0.3


def test_coil_compression_default_option_info_and_checks():
    """Off by default on Cartesian data (every coil kept, reported in ``info``); ``coil_energy`` < 1 keeps fewer
    virtual coils on the 8-coil birdcage (0.9999: 7 of 8, within 0.1 dB; 0.995 measured 3 coils, −1.4 dB); the radial operator compresses the same way; single-coil
    data report nothing; energies outside (0, 1] are refused."""
    x = mri.brain((48, 48), seed=1)
    sc = mri.simulate_kspace(x, 8, kind="poisson", acceleration=4, snr_db=30, seed=0)
    noise = ni.noise.Gaussian(sc.sigma)
    ref = ni.reconstruct(sc.kspace, sc.operator, "tv", noise=noise)
    assert ref.info["coil_compression"] == {"coils": 8, "of": 8, "energy": 1.0}
    comp = ni.reconstruct(sc.kspace, sc.operator, "wavelet", noise=noise, coil_energy=0.9999)
    assert 1 <= comp.info["coil_compression"]["coils"] < 8 and comp.info["coil_compression"]["energy"] >= 0.9999
    wav = ni.reconstruct(sc.kspace, sc.operator, "wavelet", noise=noise)
    assert ni.metrics.psnr(np.abs(comp.mean), np.abs(x)) > ni.metrics.psnr(np.abs(wav.mean), np.abs(x)) - 0.1
    single = mri.simulate_kspace(x, 1, kind="poisson", acceleration=4, snr_db=30, seed=0)
    assert "coil_compression" not in ni.reconstruct(single.kspace, single.operator, "tv",
                                                     noise=ni.noise.Gaussian(single.sigma), iterations=5).info
    traj = mri.radial_trajectory(24, 96)
    R = mri.NonCartesianMRI(traj, (48, 48), coil_maps=sc.coil_maps)
    yr = R.forward(x.astype(np.complex64))
    n = np.random.default_rng(2).standard_normal((2,) + yr.shape)
    yr = (yr + 0.01 * np.abs(yr).max() * (n[0] + 1j * n[1])).astype(np.complex64)
    rad = ni.reconstruct(yr, R, "tv", noise=ni.noise.Gaussian(0.01 * float(np.abs(yr).max())), coil_energy=0.99,
                         iterations=30)
    assert rad.info["coil_compression"]["coils"] < 8 and np.isfinite(rad.mean).all()
    with pytest.raises(ValueError, match="coil energy"):
        sc.operator.compressed(torch.from_numpy(sc.kspace), sc.sigma, 0.0)
    with pytest.raises(ValueError):
        ni.reconstruct(sc.kspace, sc.operator, "tv", noise=noise, coil_energy=1.5)


def test_operator_inputs_that_are_not_numbers_and_silent_coils():
    """Masks and trajectories that are not numbers get our message, not numpy's; a coil whose map is all zero
    contributes nothing (its k-space is ignored): a warning names it."""
    with pytest.raises(ValueError, match="sampling mask"):
        mri.CartesianMRI([[1, "a"], [1, 1]])
    with pytest.raises(ValueError, match="(?i)trajectory"):
        mri.NonCartesianMRI([["a", 1.0]], (8, 8))
    with pytest.raises(ValueError, match="(?i)coil maps"):
        mri.CartesianMRI(np.ones((8, 8), bool), coil_maps=np.full((2, 8, 8), "x"))
    maps = mri.birdcage(3, (8, 8))
    maps[1] = 0
    with pytest.warns(UserWarning, match="coil 1 is all zero"):
        A = mri.CartesianMRI(np.ones((8, 8), bool), coil_maps=maps)
    assert A.n_coils == 3
    with pytest.warns(UserWarning, match="coil 1 is all zero"):
        mri.NonCartesianMRI(mri.radial_trajectory(4, 16), (8, 8), coil_maps=maps)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mri.CartesianMRI(np.ones((8, 8), bool), coil_maps=mri.birdcage(3, (8, 8)))
    traj = mri.radial_trajectory(4, 16)
    with pytest.raises(ValueError, match="density weights are all zero"):  # was a zero image from adjoint/cg_sense
        mri.NonCartesianMRI(traj, (8, 8), density=np.zeros(len(traj)))


def test_kspace_of_every_precision_gives_the_same_image_and_real_kspace_is_refused():
    """complex64, complex128, numpy's clongdouble and torch's complex32 k-space: the same result (float32 rounding);
    real k-space of any precision: our ValueError."""
    x = mri.brain((16, 16)).astype(np.complex64)
    sc = mri.simulate_kspace(x, 2, kind="equispaced", acceleration=4, snr_db=30.0, seed=0)
    noise = ni.noise.Gaussian(sc.sigma)
    ref = ni.reconstruct(sc.kspace, sc.operator, "tv", noise=noise, iterations=5).mean
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "ComplexHalf support is experimental")
        half = torch.from_numpy(sc.kspace).to(torch.complex32)
    for k in (sc.kspace.astype(np.complex128), sc.kspace.astype(np.clongdouble), half):
        rec = ni.reconstruct(k, sc.operator, "tv", noise=noise, iterations=5).mean
        tol = 2e-3 if isinstance(k, torch.Tensor) else 1e-5  # complex32 keeps 11 bits
        assert rec.dtype == np.complex64 and np.abs(rec - ref).max() <= tol * np.abs(ref).max()
    for dtype in (np.float16, np.float32, np.float64):
        with pytest.raises(ValueError, match="must be complex"):
            ni.reconstruct(sc.kspace.real.astype(dtype), sc.operator, "tv", noise=noise, iterations=5)
