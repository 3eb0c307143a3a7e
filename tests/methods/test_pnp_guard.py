"""The plug-and-play guard (divergence monitor with restarts), per-iteration flips, and info['prior_fit']."""

import numpy as np
import pytest
import torch

import napari_invimg as ni
from napari_invimg import datasets
from napari_invimg.methods.pnp import RL_START_END_NOISE, _Guard, _Problem, dihedral
from napari_invimg.metrics import psnr


@pytest.fixture(scope="module")
def problem():
    x = datasets.fluorescence((32, 32), seed=2)
    A = ni.operators.Blur(ni.psf.gaussian((7, 7), sigma=1.2), x.shape)
    noise = ni.noise.PoissonGaussian(gain=0.01, sigma=0.01)
    return x, A, noise, ni.simulate(x, A, noise, seed=0)


def test_dihedral_inverts_its_transform():
    x = torch.arange(12.0).reshape(3, 4)
    ramp = torch.linspace(0, 1, 12).reshape(3, 4)
    outs = []
    for k in range(8):
        assert torch.equal(dihedral(lambda t: 2 * t, x, k), 2 * x)  # equivariant f: unchanged
        outs.append(dihedral(lambda t: t + (ramp if t.shape == ramp.shape else ramp.T), x, k))
    assert len({tuple(o.flatten().tolist()) for o in outs}) > 1  # a position-dependent f sees the transforms


def test_guard_restarts_from_the_last_sound_iterate_then_stops(problem):
    x, A, noise, y = problem
    P = _Problem(torch.from_numpy(y), A, noise, positivity=True, denoiser="tv")
    G = _Guard(P, enabled=True)
    good = P.x0.clone()
    assert G.check(1, 0.1, (good,)) is None
    for n in range(1, 5):
        bad = good * 10.0  # range far above the first estimate's
        back = G.check(1 + n, 0.05, (bad,))
        assert back is not None and torch.equal(back[0], good)
        assert G.restarts[-1]["reason"].startswith(("range", "misfit")) and G.sigma(0.01) == pytest.approx(0.1)
    assert G.stopped and len(G.info()["restarts"]) == 4
    nan = torch.full_like(good, float("nan"))
    assert "non-finite" in (G.check(9, 0.05, (nan,)) is not None and G.restarts[-1]["reason"])
    off = _Guard(P, enabled=False)
    assert off.check(2, 0.1, (nan,)) is None and off.info()["restarts"] == []


def test_guarded_pnp_reports_guard_and_classical_has_no_prior_fit(problem):
    x, A, noise, y = problem
    for method in ("pnp_admm", "pnp_pgd"):
        rec = ni.reconstruct(y, A, method, noise=noise, denoiser="tv", iterations=6)
        assert rec.info["guard"]["enabled"] and "prior_fit" not in rec.info
        plain = ni.reconstruct(y, A, method, noise=noise, denoiser="tv", iterations=6, guard=False, equivariant=False)
        assert not plain.info["guard"]["enabled"] and np.isfinite(plain.mean).all()


def test_learned_prior_fit_and_misfit_warning(problem):
    x, A, noise, y = problem
    rec = ni.reconstruct(y, A, "pnp_admm", noise=noise, denoiser="drunet", iterations=6)
    fit = rec.info["prior_fit"]
    assert set(fit) == {"ood_score", "misfit_ratio", "warning"}
    assert np.isfinite(fit["ood_score"]) and 0 < fit["misfit_ratio"] < 2 and fit["warning"] is None
    # the same data claimed 20× less noisy than they are: no mean can fit them to that level
    wrong = ni.noise.Gaussian(0.0005)
    rec = ni.reconstruct(y, A, "pnp_pgd", noise=wrong, denoiser="drunet", iterations=4, guard=False)
    fit = rec.info["prior_fit"]
    assert fit["misfit_ratio"] > 2 and "misfits the data" in fit["warning"]


def test_ood_score_flags_noise_like_images():
    from napari_invimg.methods._prior_fit import prior_fit_report
    from napari_invimg.priors import get_denoiser

    den = get_denoiser("drunet")
    smooth = torch.from_numpy(datasets.fluorescence((64, 64), seed=5))
    rough = torch.rand(64, 64, generator=torch.Generator().manual_seed(0))  # white noise: nothing like the training data
    a, b = prior_fit_report(den, smooth, 1.0, 2), prior_fit_report(den, rough, 1.0, 2)
    assert b["ood_score"] > a["ood_score"] + 3 and b["ood_score"] > 3 and "unlike" in b["warning"]


@pytest.mark.parametrize("method,params", [("pnp_ula", {"iterations": 40, "n_samples": 8, "chains": 2, "burn_in": 8}),
                                           ("dps", {"iterations": 4, "n_samples": 2})])
def test_samplers_with_the_learned_prior_report_prior_fit(problem, method, params):
    x, A, noise, y = problem
    rec = ni.reconstruct(y, A, method, noise=noise, **params)
    fit = rec.info["prior_fit"]
    assert np.isfinite(fit["ood_score"]) and np.isfinite(fit["misfit_ratio"]) and fit["misfit_ratio"] > 0
    assert (fit["warning"] is None) == (fit["misfit_ratio"] <= 2 and fit["ood_score"] <= 3)


def test_learned_scheme_starts_from_richardson_lucy_injects_seeded_noise_and_averages(problem):
    _, A, noise, y = problem
    rec = ni.reconstruct(y, A, "pnp_admm", noise=noise, denoiser="drunet", iterations=6, seed=3)
    scheme = rec.info["scheme"]
    assert scheme["start"] == "richardson_lucy" and scheme["noise_injection"] == 0.5
    assert scheme["averaged"] == 2  # at most a third of the 6 iterations
    # after the Richardson–Lucy start the levels end at half the noise level (RESULTS §3, helper bm3d4)
    assert RL_START_END_NOISE == 0.5
    assert scheme["sigma_last"] == pytest.approx(max(0.5 * rec.info["sigma_end"] / rec.info["scale"], 1e-3))
    # inpainting keeps the noise level (its plug_and_play_defaults): the missing pixels have no data
    mask = np.ones(y.shape, bool)
    mask[::3] = False
    M = ni.operators.Inpainting(mask)
    inp = ni.reconstruct(M(y), M, "pnp_pgd", noise=noise, denoiser="drunet", iterations=2).info
    assert inp["scheme"]["start"] == "richardson_lucy"
    assert inp["scheme"]["sigma_last"] == pytest.approx(max(inp["sigma_end"] / inp["scale"], 1e-3))
    again = ni.reconstruct(y, A, "pnp_admm", noise=noise, denoiser="drunet", iterations=6, seed=3)
    other = ni.reconstruct(y, A, "pnp_admm", noise=noise, denoiser="drunet", iterations=6, seed=4)
    assert np.array_equal(again.mean, rec.mean) and not np.array_equal(other.mean, rec.mean)  # the injection is seeded
    plain = ni.reconstruct(y, A, "pnp_pgd", noise=noise, denoiser="drunet", iterations=6, start="adjoint",
                           noise_injection=0.0, average=1)
    scheme = dict(plain.info["scheme"])
    last = scheme.pop("sigma_last")
    assert 0 < last < 0.2 and last == pytest.approx(max(plain.info["sigma_end"] / plain.info["scale"], 1e-3))  # the noise level
    assert scheme == {"start": "adjoint", "sigma_start": 0.2, "lam": 0.23, "noise_injection": 0.0, "averaged": 1,
                      "phase": None}
    # classical denoisers keep the plain DPIR scheme
    tv = ni.reconstruct(y, A, "pnp_admm", noise=noise, denoiser="tv", iterations=6)
    assert tv.info["scheme"]["start"] == "adjoint" and tv.info["scheme"]["noise_injection"] == 0.0


def test_richardson_lucy_start_refuses_complex_problems():
    from napari_invimg import mri

    img = np.zeros((16, 16), np.complex64)
    img[4:12, 4:12] = 1.0
    A = mri.CartesianMRI(mri.mask("equispaced", (16, 16), 2.0), coil_maps=mri.birdcage(2, (16, 16)))
    y = A(img)
    with pytest.raises(ValueError, match="start='richardson_lucy'"):
        ni.reconstruct(y, A, "pnp_admm", noise=ni.noise.Gaussian(0.01), denoiser="drunet", iterations=2,
                       start="richardson_lucy")
    rec = ni.reconstruct(y, A, "pnp_admm", noise=ni.noise.Gaussian(0.01), denoiser="drunet", iterations=3)
    assert rec.info["scheme"]["start"] == "wavelet" and np.isfinite(rec.mean).all()  # the MRI operators' choice


def test_learned_red_takes_the_scheme(problem):
    """RED with a learned denoiser: Richardson–Lucy start, seeded injection, mean of the last iterates (issue #14)."""
    x, A, noise, y = problem
    rec = ni.reconstruct(y, A, "red", noise=noise, denoiser="drunet", iterations=6, seed=3)
    scheme = rec.info["scheme"]
    assert scheme["start"] == "richardson_lucy" and scheme["noise_injection"] == 0.5 and scheme["averaged"] == 2
    assert rec.info["iterations"] == 6 and np.isfinite(rec.mean).all() and float(rec.mean.min()) >= 0
    again = ni.reconstruct(y, A, "red", noise=noise, denoiser="drunet", iterations=6, seed=3)
    assert np.array_equal(again.mean, rec.mean)
    assert psnr(rec.mean, x) > psnr(y, x) + 1.0


def test_complex_images_are_denoised_with_their_low_resolution_phase_removed():
    """MRI: a smooth phase is taken out before the learned denoiser (real/imaginary parts of e^{iφ}·m oscillate);
    on a phase-ramped phantom the result is better than denoising the parts as they are."""
    from napari_invimg import mri
    from napari_invimg.methods.pnp import lowres_phase

    truth = mri.brain((48, 48), seed=3)
    phase = lowres_phase(torch.from_numpy(truth), 2)
    assert torch.allclose(phase.abs(), torch.ones(()), atol=1e-5)
    inside = np.abs(truth) > 0.3
    err = np.angle(truth[inside] * np.conj(phase.numpy()[inside]))
    assert float(np.median(np.abs(err))) < 0.3  # the smooth phase is found
    sc = mri.simulate_kspace(truth, 4, kind="poisson", acceleration=4, snr_db=30.0, seed=0)
    noise = ni.noise.Gaussian(sc.sigma)
    removed = ni.reconstruct(sc.kspace, sc.operator, "pnp_admm", noise=noise, denoiser="drunet", iterations=8)
    kept = ni.reconstruct(sc.kspace, sc.operator, "pnp_admm", noise=noise, denoiser="drunet", iterations=8, phase="keep")
    assert removed.info["scheme"]["phase"] == "removed" and kept.info["scheme"]["phase"] is None
    # no injection on complex images; the MRI operators average the last iterates (at most a third of them)
    assert removed.info["scheme"]["noise_injection"] == 0.0
    assert removed.info["scheme"]["averaged"] == min(mri.operators.PLUG_AND_PLAY["average"], 8 // 3)
    assert psnr(np.abs(removed.mean), np.abs(truth)) > psnr(np.abs(kept.mean), np.abs(truth)) + 0.5
