import numpy as np
import pytest
import torch

import napari_invimg as ni
import napari_invimg.blackhole as bh


@pytest.fixture(scope="module")
def ring():
    truth = bh.models.ring()
    return truth, bh.simulate(truth, seed=0), bh.simulate(truth, gain_error=0.1, phase_error=True, seed=0)


def test_rml_on_visibilities_images_the_ring(ring):
    truth, obs, _ = ring
    A = bh.Interferometer(obs)
    rec = ni.reconstruct(obs.vis, A, "rml", noise=ni.noise.Gaussian(obs.sigma), iterations=400, rounds=2)
    assert ni.metrics.nxcorr(rec.mean, truth) > 0.9
    assert rec.mean.min() >= 0 and rec.mean.sum() == pytest.approx(0.6, rel=0.1)
    assert rec.info["reduced_chi2"]["visibility"] < 2.5 and rec.info["uncertainty"] is None
    assert rec.info["starts"] == 1  # one start on visibilities
    dirty = A.dirty_image(obs.vis, A.weights(obs.sigma))
    assert ni.metrics.nxcorr(rec.mean, truth) > ni.metrics.nxcorr(dirty, truth) + 0.3


def test_rml_on_closures_despite_station_gains(ring):
    truth, _, bad = ring
    C = bh.Closures(bad)
    rec = ni.reconstruct(C.data, C, "rml", noise=ni.noise.Gaussian(C.sigma), iterations=400, rounds=1, starts=1)
    assert bh.nxcorr_aligned(rec.mean, truth) > 0.8
    chi2 = rec.info["reduced_chi2"]
    assert chi2["closure phase"] < 2 and chi2["log closure amplitude"] < 3
    short = ni.reconstruct(C.data, C, "rml", noise=ni.noise.Gaussian(C.sigma), iterations=5, rounds=1)
    assert short.info["starts"] == 3 and len(short.info["start_objectives"]) == 3  # closures: three starts by default


def test_rml_closure_iterations_grow_with_the_image_side():
    from napari_invimg.blackhole.rml import closure_iterations

    assert closure_iterations(16) == closure_iterations(32) == 150
    assert closure_iterations(64) == 300 and closure_iterations(128) == 600


def test_clean_beats_the_dirty_image(ring):
    truth, obs, _ = ring
    A = bh.Interferometer(obs)
    rec = ni.reconstruct(obs.vis, A, "clean", noise=ni.noise.Gaussian(obs.sigma))
    dirty = A.dirty_image(obs.vis, A.weights(obs.sigma))
    assert ni.metrics.nxcorr(rec.mean, truth) > max(0.6, ni.metrics.nxcorr(dirty, truth))
    assert rec.info["components"] > 10 and 10 < rec.info["restoring_beam_uas"] < 40


def test_methods_refuse_mismatched_data(ring):
    _, _, bad = ring
    C = bh.Closures(bad)
    with pytest.raises(ValueError, match="linear"):
        ni.reconstruct(C.data, C, "clean", noise=ni.noise.Gaussian(C.sigma))
    with pytest.raises(ValueError, match="closure data"):
        ni.reconstruct(C.data, C, "rml", noise=ni.noise.Gaussian(C.sigma), data="vis")
    assert "rml" in ni.methods(domain="blackhole") and ni.method_info("rml")["domain"] == "blackhole"


def test_rml_keeps_the_start_with_the_least_objective(ring):
    truth, _, bad = ring
    C = bh.Closures(bad)
    kw = {"noise": ni.noise.Gaussian(C.sigma), "iterations": 40, "rounds": 2}
    one = ni.reconstruct(C.data, C, "rml", starts=1, **kw)
    steps = []
    three = ni.reconstruct(C.data, C, "rml", starts=3, progress=lambda i, n, preview: steps.append((i, n)), **kw)
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]  # every 20 iterations of the 2 rounds × 40
    # the three starts run as one batch (same iterations), and the kept one has the least J of the three
    assert len(one.info["start_objectives"]) == 1 and len(three.info["start_objectives"]) == 3
    assert three.info["iterations"] == one.info["iterations"]
    objectives, kept = three.info["start_objectives"], three.info["kept_start"]
    assert three.info["objective"] == objectives[kept]
    if kept != int(np.argmin(objectives)):  # only when three starts are within the χ² noise of the least J
        assert sorted(objectives)[2] - min(objectives) <= np.sqrt(2 / C.n_phases + 2 / C.n_amplitudes)
    assert len(set(three.info["start_objectives"])) == 3  # the starts differ
    assert np.isfinite(three.mean).all() and bh.nxcorr_aligned(three.mean, truth) > 0.5


def test_rml_select_start_prefers_agreement_only_when_the_data_cannot_rank():
    from napari_invimg.blackhole.rml import select_start

    near, far = bh.models.get("double", 32, 160.0), bh.models.get("ring", 32, 160.0)
    images = torch.as_tensor(np.stack([far, near, np.roll(near, 2, axis=0), near]), dtype=torch.float32)
    # the least J (start 0) is kept when the others are beyond the tolerance, or only one other is within it
    assert select_start(images[:3], torch.tensor([1.0, 1.5, 1.6]), 0.16) == 0
    assert select_start(images[:3], torch.tensor([1.0, 1.1, 1.6]), 0.16) == 0
    # all three within it: one of the two (shifted) doubles the others agree on, never the ring
    assert select_start(images[:3], torch.tensor([1.0, 1.1, 1.12]), 0.16) in (1, 2)
    # equal agreement (the same double twice): the least J of those
    assert select_start(images[[0, 1, 3]], torch.tensor([1.0, 1.12, 1.1]), 0.16) == 2
    assert select_start(images[[0, 1, 3]], torch.tensor([1.0, 1.1, 1.12]), 0.16) == 1
    assert select_start(images[:3], torch.tensor([1.0, 1.5, float("nan")]), 0.16) == 0  # a non-finite J is never kept


@pytest.mark.parametrize("weights", [{}, {"l1": 0.02, "mem": 0.0}])
def test_rml_closure_gradient_in_closed_form_matches_autograd(weights):
    from napari_invimg.blackhole.rml import RMLObjective

    truth = bh.models.get("double", 16, 160.0)
    C = bh.Closures(bh.simulate(truth, 160.0, gain_error=0.1, phase_error=True, seed=1), 16, 160.0)
    params = {"data": "closures", "prior_fwhm_uas": 80.0, "total_flux": None, "mem": 0.1, "tv": 0.05, "tsv": 0.05,
              "l1": 0.0, "flux": 1.0, "centroid": 100.0, "blur_uas": None, "systematic": 0.0, **weights}
    objective = RMLObjective(torch.as_tensor(C.data), C, ni.noise.Gaussian(C.sigma), **params)
    assert objective.closure_fit is not None
    g = torch.Generator().manual_seed(0)
    z = torch.stack([objective.start() + 0.3 * torch.randn(16, 16, generator=g) for _ in range(2)])
    value, parts, gradient = objective.value_and_gradient(z)
    objective.closure_fit = None  # the autograd path
    value_ad, parts_ad, gradient_ad = objective.value_and_gradient(z)
    assert value.shape == (2,) and torch.allclose(value, value_ad, rtol=1e-5)
    for name in parts_ad:
        assert torch.allclose(parts[name], parts_ad[name], rtol=1e-5)
    assert float((gradient - gradient_ad).abs().max()) < 1e-4 * float(gradient_ad.abs().max())


def test_interferometer_separable_dft_is_the_direct_fourier_sum():
    """The DFT's two separable products equal V_k = h_k Σ_rc x_rc e^{2πi(u_k x_c + v_k y_r)} written out in numpy,
    and adjoint_parts is its exact transpose; the closure fit's model is the operator's own (one DFT)."""
    from napari_invimg.blackhole.operators import pixel_positions_rad

    truth = bh.models.get("crescent", 24, 160.0)
    A = bh.Interferometer(bh.simulate(truth, 160.0, seed=2), 24, 160.0, transform="dft")
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 24, 24, generator=g, dtype=torch.float64)
    xs, ys = pixel_positions_rad(24, 160.0)
    phase = 2 * np.pi * (A.u[:, None, None] * xs[None, None, :] + A.v[:, None, None] * ys[None, :, None])
    direct = np.einsum("krc,brc->bk", A.response[:, None, None] * np.exp(1j * phase), x.numpy())
    re, im = A.forward_parts(x)
    scale = np.abs(direct).max()
    assert np.abs(re.numpy() - direct.real).max() < 1e-12 * scale
    assert np.abs(im.numpy() - direct.imag).max() < 1e-12 * scale
    v = A.apply(x)
    assert torch.equal(v.real, re) and torch.equal(v.imag, im)
    matrix = A.real_matrix(torch.float64)
    assert np.abs((matrix @ x.reshape(2, -1).T).T.numpy() - np.concatenate([direct.real, direct.imag], 1)).max() < 1e-12 * scale
    r = torch.randn(2, v.shape[-1], generator=g, dtype=torch.complex128)
    back = A.adjoint_parts(r.real.contiguous(), r.imag.contiguous())
    assert torch.allclose(back, A.apply_adjoint(r))
    # the exact transpose: Re⟨A x, r⟩ = ⟨x, Aᴴ r⟩ to float64 rounding
    assert float((re * r.real + im * r.imag).sum()) == pytest.approx(float((x * back).sum()), rel=1e-12)
    with pytest.raises(ValueError, match="dft"):
        bh.Interferometer(bh.simulate(truth, 160.0, seed=2), 24, 160.0, transform="nufft").forward_parts(x)


def test_rml_final_scale_reweights_only_the_last_round():
    from napari_invimg.blackhole.rml import RMLObjective, _minimize
    from napari_invimg.methods.registry import Context

    truth = bh.models.get("ring", 16, 160.0)
    C = bh.Closures(bh.simulate(truth, 160.0, gain_error=0.1, phase_error=True, seed=2), 16, 160.0)
    params = {"data": "closures", "prior_fwhm_uas": 80.0, "total_flux": None, "mem": 0.1, "tv": 0.05, "tsv": 0.05,
              "l1": 0.0, "flux": 1.0, "centroid": 100.0, "blur_uas": None, "systematic": 0.0}
    objective = RMLObjective(torch.as_tensor(C.data), C, ni.noise.Gaussian(C.sigma), **params)
    before = dict(objective.weights)
    runs = {}
    for scale in (1.0, 4.0):
        x, chi2, _, value = _minimize(objective, Context(torch.device("cpu"), 0), 20, 2, objective.start(),
                                      final_scale=scale)
        assert objective.weights == before  # restored after the round
        z = torch.log(x)
        runs[scale] = (x, float(objective.penalty(z, x)), float(sum(chi2.values())), float(value))
    (x1, pen1, chi1, j1), (x4, pen4, chi4, j4) = runs[1.0], runs[4.0]
    assert torch.isfinite(x4).all() and not torch.equal(x1, x4)
    # the last round minimized J with the image regularizers × 4 (the J returned is that one), then the weights are back
    regs = objective.regularizers(torch.log(x4), x4)
    scaled = sum(w * (4.0 if k in ("mem", "tv", "tsv", "l1") else 1.0) * float(regs[k]) for k, w in before.items())
    assert j4 == pytest.approx(chi4 + scaled, rel=1e-4) and j1 == pytest.approx(chi1 + pen1, rel=1e-4)
    # one round: nothing to reweight, the same image as without
    one = [_minimize(objective, Context(torch.device("cpu"), 0), 10, 1, objective.start(), final_scale=s)[0]
           for s in (1.0, 4.0)]
    assert torch.equal(one[0], one[1])
    kw = {"noise": ni.noise.Gaussian(C.sigma), "iterations": 5, "rounds": 2, "starts": 1}
    default, doubled = (ni.reconstruct(C.data, C, "rml", **kw, **extra) for extra in ({}, {"final_scale": 2.0}))
    assert default.info["final_scale"] == 2.0 and np.array_equal(default.mean, doubled.mean)  # closures: 2 by default


def test_a_single_baseline_images_finite_in_a_wide_field():
    # one baseline (two stations): its resolution is ≈0.1″, so the field is far wider than the 80 µas prior; rml and
    # gmrf_hmc (the collapsed sampler) used to return NaN / raise torch's LinAlgError from a 0/0 prior image
    obs = bh.simulate(bh.models.ring(), seed=0)
    one = obs.select(np.flatnonzero((obs.station1 == obs.station1[0]) & (obs.station2 == obs.station2[0])))
    assert len(one.station_names) == 2
    A = bh.Interferometer(one, npix=16, fov_uas=3 * one.resolution_uas)
    with pytest.raises(ValueError, match="no closed triangle"):
        bh.Closures(one, npix=16, fov_uas=3 * one.resolution_uas)
    for method, kw in (("rml", dict(iterations=5)),
                       ("gmrf_hmc", dict(iterations=8, warmup=4, chains=1, n_samples=2, mean_image="gaussian"))):
        with pytest.warns(RuntimeWarning, match="below one pixel"):
            rec = ni.reconstruct(one.vis, A, method, noise=ni.noise.Gaussian(one.sigma), **kw)
        assert np.isfinite(rec.mean).all() and rec.mean.sum() > 0, method
        assert rec.std is None or np.isfinite(rec.std).all()
