"""DPS and DiffPIR with the exact denoiser of a Gaussian prior, against the closed-form posterior."""

from __future__ import annotations

import time

import numpy as np
import pytest
from gaussian_toy import exact_coverage, make_toy

import napari_invimg as ni
from napari_invimg.methods.diffusion import noise_schedule


@pytest.fixture(scope="module")
def toy():
    return make_toy()


@pytest.mark.parametrize("method", ["dps", "diffpir"])
def test_diffusion_samplers_match_closed_form(toy, method):
    previews = []

    def progress(i, total, preview):
        previews.append(preview)

    # DiffPIR with the paper's λ = 7, ζ = 0.3 (the sharper defaults, tuned for the learned prior, under-disperse here);
    # the whole schedule from pure noise (the defaults' short schedule from a first estimate: the next test)
    extra = dict(lam=7.0, zeta=0.3) if method == "diffpir" else {}
    rec = ni.reconstruct(toy.y, toy.A, method, toy.noise, denoiser="gaussian_toy", iterations=60, n_samples=48,
                         seed=0, progress=progress, start="noise", sigma_max=1.0, sigma_min=0.003, **extra)
    # approximate samplers: the mean within a third of a posterior std, the std within 20%
    assert np.mean(np.abs(rec.mean - toy.mean) / toy.std) < 0.35
    assert 0.8 < np.median(rec.std / toy.std) < 1.2
    assert abs(exact_coverage(rec.mean, rec.std, toy.mean, toy.std, 0.9) - 0.9) < 0.06
    assert rec.samples.shape == (48, 16, 16) and rec.info["uncertainty"] == "posterior"
    assert rec.info["network_evaluations"] == 48 * 61
    assert len(previews) == 60 and previews[-1].shape == (16, 16)


@pytest.mark.parametrize("method", ["dps", "diffpir"])
def test_default_short_schedule_on_closed_form(toy, method):
    # the defaults: 8 steps from Richardson–Lucy plus noise at σ = 0.3, not far above this prior-dominated toy's
    # posterior std (0.18; the learned cases' are ~0.02–0.05): the mean holds, the spread is somewhat narrower
    rec = ni.reconstruct(toy.y, toy.A, method, toy.noise, denoiser="gaussian_toy", n_samples=48, seed=0)
    assert rec.info["start"] == "richardson_lucy" and rec.info["iterations"] == 8
    assert rec.info["network_evaluations"] == 48 * 9
    assert np.mean(np.abs(rec.mean - toy.mean) / toy.std) < 0.35
    assert 0.65 < np.median(rec.std / toy.std) < 1.2
    assert 0.7 < exact_coverage(rec.mean, rec.std, toy.mean, toy.std, 0.9) < 0.96


def test_start_choice():
    x = ni.datasets.fluorescence((16, 16), seed=0)
    noise = ni.noise.Gaussian(0.03)
    inpaint = ni.operators.Inpainting(ni.operators.sampling.random_mask((16, 16), 0.5, seed=1))
    y = ni.simulate(x, inpaint, noise, seed=0)
    kw = dict(denoiser="gaussian_toy", iterations=2, n_samples=2)
    # Richardson–Lucy leaves inpainting's holes at its start value: the smooth warm start fills them
    assert ni.reconstruct(y, inpaint, "diffpir", noise, **kw).info["start"] == "warm"
    assert ni.reconstruct(y, inpaint, "diffpir", noise, start="richardson_lucy", **kw).info["start"] == "richardson_lucy"
    assert ni.reconstruct(y, inpaint, "dps", noise, start="noise", **kw).info["start"] == "noise"
    with pytest.raises(ValueError, match="richardson_lucy"):
        ni.reconstruct(y - 1.0, inpaint, "diffpir", noise, start="richardson_lucy", **kw)


def test_any_image_size_3d_and_cancel():
    x = ni.datasets.fluorescence((8, 12, 20), seed=0)
    A = ni.operators.Blur(ni.psf.gaussian((3, 5, 5), sigma=1.0), x.shape)
    noise = ni.noise.Gaussian(0.05)
    y = ni.simulate(x, A, noise, seed=0)
    rec = ni.reconstruct(y, A, "diffpir", noise, denoiser="gaussian_toy", iterations=10, n_samples=20)
    assert rec.samples.shape == (20, 8, 12, 20) and np.isfinite(rec.std).all()
    with pytest.raises(ni.Cancelled) as exc:
        ni.reconstruct(y, A, "dps", noise, denoiser="gaussian_toy", iterations=10, n_samples=3,
                       progress=lambda i, total, preview: i < 4)
    assert exc.value.partial.samples.shape == (3, 8, 12, 20)


def test_schedule():
    s = noise_schedule(10, 1.0, 0.01)
    assert len(s) == 11 and s[0] == 1.0 and abs(s[-1] - 0.01) < 1e-12 and all(a > b for a, b in zip(s, s[1:]))
    with pytest.raises(ValueError):
        noise_schedule(10, 0.01, 1.0)


def _learned_blur_problem():
    """A small blur problem for the learned samplers (skips where the learned denoiser is not built in)."""
    from napari_invimg.priors import denoiser_names

    if "drunet" not in denoiser_names():
        pytest.skip("the learned denoiser is not in this build")
    x = ni.datasets.fluorescence((24, 40), seed=0)
    A = ni.operators.Blur(ni.psf.gaussian((5, 5), sigma=1.0), x.shape)
    noise = ni.noise.Gaussian(0.03)
    return x, A, noise, ni.simulate(x, A, noise, seed=0)


def test_shipped_denoiser_runs_every_learned_sampler():
    x, A, noise, y = _learned_blur_problem()
    for method, params in (("diffpir", dict(iterations=4, n_samples=2)), ("dps", dict(iterations=3, n_samples=2)),
                           ("pnp_ula", dict(iterations=16, n_samples=8, chains=2, burn_in=0)),
                           ("vb", dict(iterations=5, prior="denoiser"))):
        rec = ni.reconstruct(y, A, method, noise, **params)
        assert rec.mean.shape == x.shape and np.isfinite(rec.std).all(), method
        assert rec.info["network_evaluations"] > 0


def test_learned_denoiser_starts_at_pnp_admm():
    x, A, noise, y = _learned_blur_problem()
    # 'auto' with the learned denoiser: the chains start at PnP-ADMM's result with the closer schedule and Bayes'
    # guidance weight; its network passes are counted
    rec = ni.reconstruct(y, A, "dps", noise, iterations=2, n_samples=2)
    assert rec.info["start"] == "pnp_admm" and rec.info["start_network_evaluations"] == 24
    assert rec.info["sigma_schedule"] == pytest.approx((0.08, 0.02))
    assert rec.info["network_evaluations"] == 24 + 2 * 3
    # the chains run with the first estimate's robust maximum as 1 (the denoiser's training range), and the result
    # comes back in the data's units
    assert rec.info["image_unit"] != 1.0 and abs(float(rec.mean.max()) / float(x.max()) - 1) < 0.3
    assert abs(float(rec.samples.std(0, ddof=1).mean()) / float(rec.std.mean()) - 1) < 1e-4
    assert rec.info["guidance"] == 1.0
    # DiffPIR after PnP-ADMM stops later (σ_min 0.04) with a lighter prior weight in its data step (λ 0.5); an
    # explicit schedule or λ wins over the start's; another start keeps the wider schedule and λ 1.5
    rec = ni.reconstruct(y, A, "diffpir", noise, iterations=2, n_samples=2)
    assert rec.info["sigma_schedule"] == pytest.approx((0.08, 0.04)) and rec.info["lam"] == 0.5
    rec = ni.reconstruct(y, A, "diffpir", noise, iterations=2, n_samples=2, sigma_max=0.2, lam=2.0)
    assert rec.info["start"] == "pnp_admm" and rec.info["sigma_schedule"] == pytest.approx((0.2, 0.04))
    assert rec.info["lam"] == 2.0
    rec = ni.reconstruct(y, A, "diffpir", noise, iterations=2, n_samples=2, start="richardson_lucy")
    assert rec.info["start_network_evaluations"] == 0 and rec.info["sigma_schedule"] == pytest.approx((0.3, 0.01))
    assert rec.info["lam"] == 1.5
    rec = ni.reconstruct(y, A, "dps", noise, iterations=2, n_samples=2, start="richardson_lucy")
    assert rec.info["guidance"] == 1.5 and rec.info["sigma_schedule"] == pytest.approx((0.3, 0.01))


def test_diffpir_pnp_start_defaults_widen_the_spread():
    # the later stop (σ_min 0.04) with λ 0.5 is what widens DiffPIR's 90% interval after a PnP-ADMM start
    # (RESULTS §5, 2026-12-08: coverage 0.68 → 0.85 on fluorescence deblurring); same seed, same chains' noise
    x, A, noise, y = _learned_blur_problem()
    new = ni.reconstruct(y, A, "diffpir", noise, iterations=4, n_samples=8, seed=0)
    old = ni.reconstruct(y, A, "diffpir", noise, iterations=4, n_samples=8, seed=0, sigma_min=0.02, lam=1.5)
    assert float(np.median(new.std)) > 1.15 * float(np.median(old.std))
    assert ni.metrics.psnr(new.mean, x) > ni.metrics.psnr(old.mean, x) - 0.5


def test_pnp_admm_start_with_any_denoiser():
    # start='pnp_admm' asked for explicitly works with a classical (here: the toy's exact) denoiser too
    x = ni.datasets.fluorescence((16, 16), seed=0)
    A = ni.operators.Blur(ni.psf.gaussian((5, 5), sigma=1.0), x.shape)
    noise = ni.noise.Gaussian(0.03)
    y = ni.simulate(x, A, noise, seed=0)
    rec = ni.reconstruct(y, A, "dps", noise, denoiser="gaussian_toy", iterations=2, n_samples=2, start="pnp_admm")
    assert rec.info["start"] == "pnp_admm" and np.isfinite(rec.mean).all()
    assert ni.reconstruct(y, A, "dps", noise, denoiser="gaussian_toy", iterations=2,
                          n_samples=2).info["start"] == "richardson_lucy"


def test_cancel_during_the_first_estimate_stops_the_call():
    """The first estimate (PnP-ADMM, itself from Richardson–Lucy) runs as a part of the call: the user's cancel stops it
    at once, and the bar moves through it and on into the chains' steps without going back."""
    x, A, noise, y = _learned_blur_problem()
    calls = []

    def cancel_at_once(i, total, preview):
        calls.append((i, total))
        return False

    t0 = time.perf_counter()
    with pytest.raises(ni.Cancelled) as exc:
        ni.reconstruct(y, A, "dps", noise, iterations=2, n_samples=2, progress=cancel_at_once)
    assert len(calls) == 1 and exc.value.partial is None  # no diffusion step ran
    assert time.perf_counter() - t0 < 30
    steps = []
    rec = ni.reconstruct(y, A, "dps", noise, iterations=2, n_samples=2,
                         progress=lambda i, total, preview: steps.append((i, total, preview is not None)))
    assert rec.info["start"] == "pnp_admm" and len(steps) > 2 + 24  # PnP-ADMM's iterations report too
    fractions = [i / total for i, total, _ in steps]
    assert all(a <= b + 1e-9 for a, b in zip(fractions, fractions[1:])) and steps[-1][0] == steps[-1][1]
    assert steps[-2][1] == steps[-1][1] and all(p for _, _, p in steps[-2:])  # the chains' 2 steps end the bar


def test_cancel_during_pnp_ula_first_estimate():
    x, A, noise, y = _learned_blur_problem()
    with pytest.raises(ni.Cancelled) as exc:
        ni.reconstruct(y, A, "pnp_ula", noise, iterations=16, n_samples=4, chains=1, progress=lambda *a: False)
    assert exc.value.partial is None  # stopped inside Richardson–Lucy, before any chain step


def test_dps_bad_setups_are_named():
    x, A, noise, y = _learned_blur_problem()
    # DPS needs the denoiser's gradient: a proximal denoiser ran under no_grad and torch raised its own error
    with pytest.raises(ValueError, match="not differentiable"):
        ni.reconstruct(y, A, "dps", noise, denoiser="tv", iterations=2, n_samples=1)
    # an explicit sigma_max below the start's default sigma_min names where that sigma_min came from
    with pytest.raises(ValueError, match="sigma_min came from the defaults after a 'pnp_admm' start"):
        ni.reconstruct(y, A, "diffpir", noise, iterations=2, n_samples=1, sigma_max=0.03)
    # a one-pixel image (far below the network's receptive field) with one sample: finite (its spread was NaN)
    one = ni.operators.Identity((1, 1))
    for method in ("dps", "diffpir"):
        rec = ni.reconstruct(np.array([[0.5]], np.float32), one, method, noise, iterations=2, n_samples=1)
        assert np.isfinite(rec.mean).all() and np.isfinite(rec.std).all(), method
