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
    assert three.info["objective"] == min(three.info["start_objectives"])
    assert len(set(three.info["start_objectives"])) == 3  # the starts differ
    assert np.isfinite(three.mean).all() and bh.nxcorr_aligned(three.mean, truth) > 0.5


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


def test_rml_separable_dft_is_the_interferometer_dft():
    from napari_invimg.blackhole.rml import _SeparableDFT

    truth = bh.models.get("crescent", 24, 160.0)
    A = bh.Interferometer(bh.simulate(truth, 160.0, seed=2), 24, 160.0)
    dft = _SeparableDFT(A, torch.device("cpu"))
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 24, 24, generator=g, dtype=torch.float64)
    re, im = dft.forward(x)
    v = A.apply(x)  # the K × n² matrix (float32 entries, so agreement to float32 rounding)
    scale = float(v.abs().max())
    assert float((re - v.real).abs().max()) < 1e-6 * scale and float((im - v.imag).abs().max()) < 1e-6 * scale
    r = torch.randn(2, v.shape[-1], generator=g, dtype=torch.complex128)
    back = dft.adjoint(r.real.contiguous(), r.imag.contiguous())
    assert float((back - A.apply_adjoint(r)).abs().max()) < 1e-6 * float(back.abs().max())
    # the exact transpose: Re⟨A x, r⟩ = ⟨x, Aᴴ r⟩ to float64 rounding
    assert float((re * r.real + im * r.imag).sum()) == pytest.approx(float((x * back).sum()), rel=1e-12)


def test_rml_closures_unchanged_by_the_separable_dft(monkeypatch):
    """The separable DFT regroups the matrix product's sums: on a tiny case the objective, its gradient and the
    image rml returns agree with the matrix path's in quality (the image to NXCORR 0.99 after 2 rounds × 30 iterations)."""
    from napari_invimg.blackhole import rml as rml_module

    truth = bh.models.get("double", 16, 160.0)
    C = bh.Closures(bh.simulate(truth, 160.0, gain_error=0.1, phase_error=True, seed=1), 16, 160.0)
    kw = {"noise": ni.noise.Gaussian(C.sigma), "iterations": 30, "rounds": 2, "starts": 2}
    params = {"data": "closures", "prior_fwhm_uas": 80.0, "total_flux": None, "mem": 0.1, "tv": 0.05, "tsv": 0.05,
              "l1": 0.0, "flux": 1.0, "centroid": 100.0, "blur_uas": None, "systematic": 0.0}
    objective = rml_module.RMLObjective(torch.as_tensor(C.data), C, ni.noise.Gaussian(C.sigma), **params)
    z = objective.start() + 0.3 * torch.randn(16, 16, generator=torch.Generator().manual_seed(0))
    assert objective.closure_fit.dft is not None
    value, _, gradient = objective.value_and_gradient(z)
    objective.closure_fit.dft = None  # the K × n² matrix
    value_m, _, gradient_m = objective.value_and_gradient(z)
    assert torch.allclose(value, value_m, rtol=1e-5)
    assert float((gradient - gradient_m).abs().max()) < 1e-4 * float(gradient_m.abs().max())

    fast = ni.reconstruct(C.data, C, "rml", **kw)
    init = rml_module._ClosureFit.__init__

    def matrix_init(self, *args, **kwargs):  # the same run through the Interferometer's matrix
        init(self, *args, **kwargs)
        self.dft = None

    monkeypatch.setattr(rml_module._ClosureFit, "__init__", matrix_init)
    slow = ni.reconstruct(C.data, C, "rml", **kw)
    # L-BFGS amplifies float32 rounding along its path (13.0 against 13.7 after 2 × 30 iterations), not the quality
    assert fast.info["objective"] == pytest.approx(slow.info["objective"], rel=0.1)
    assert bh.nxcorr_aligned(fast.mean, truth) > bh.nxcorr_aligned(slow.mean, truth) - 0.01
    assert ni.metrics.nxcorr(fast.mean, slow.mean) > 0.99
