import numpy as np
import pytest
import torch

import napari_invimg as ni
import napari_invimg.blackhole as bh
from napari_invimg.blackhole.posterior import GMRFPosterior
from napari_invimg.methods._hmc import Metric

NPIX, FOV = 16, 160.0


@pytest.fixture(scope="module")
def ring():
    truth = bh.models.ring(NPIX, FOV)
    return truth, bh.simulate(truth, FOV, seed=0), bh.simulate(truth, FOV, gain_error=0.1, phase_error=True, seed=0)


def test_gmrf_field_has_unit_variance_and_its_correlation_length():
    obs = bh.simulate(bh.models.ring(NPIX, FOV), FOV, seed=0)
    post = GMRFPosterior(torch.as_tensor(obs.vis), bh.Interferometer(obs, NPIX, FOV), ni.noise.Gaussian(obs.sigma),
                         prior_fwhm_uas=80.0, order=1, total_flux=None, flux_uncertainty=0.1)
    g = torch.Generator().manual_seed(0)
    eps = torch.randn((400, NPIX, NPIX), generator=g, dtype=torch.float64)
    short = post.field(eps, torch.tensor(np.log(0.5), dtype=torch.float64))
    long = post.field(eps, torch.tensor(np.log(6.0), dtype=torch.float64))
    assert float(short.var()) == pytest.approx(1.0, rel=0.05) and float(long.var()) == pytest.approx(1.0, rel=0.05)
    lag = lambda f: float((f * f.roll(1, -1)).mean())
    assert lag(long) > 0.5 > lag(short) + 0.2
    theta = post.start().unsqueeze(0)
    x = post.image(theta)
    assert float(x.sum()) == pytest.approx(post.flux0, rel=1e-6) and bool((x > 0).all())


def test_metric_maps_back_and_forth():
    g = torch.Generator().manual_seed(1)
    d = 12
    V, _ = torch.linalg.qr(torch.randn(d, 4, generator=g, dtype=torch.float64))
    m = Metric(torch.randn(d, generator=g, dtype=torch.float64), torch.rand(d, generator=g, dtype=torch.float64) + 0.5,
               V, torch.rand(4, generator=g, dtype=torch.float64) * 10)
    w = torch.randn(3, d, generator=g, dtype=torch.float64)
    assert torch.allclose(m.to_w(m.to_theta(w)), w, atol=1e-10)


@pytest.mark.parametrize("data", ["visibilities", "closures"])
def test_gmrf_hmc_returns_a_posterior(ring, data):
    truth, obs, bad = ring
    if data == "visibilities":
        A, y, noise = bh.Interferometer(obs, NPIX, FOV), obs.vis, ni.noise.Gaussian(obs.sigma)
    else:
        A = bh.Closures(bad, NPIX, FOV)
        y, noise = A.data, ni.noise.Gaussian(A.sigma)
    rec = ni.reconstruct(y, A, "gmrf_hmc", noise=noise, seed=0, iterations=12, warmup=12, chains=2, n_samples=8,
                         max_leapfrog=8)
    assert rec.mean.shape == (NPIX, NPIX) and rec.samples.shape == (8, NPIX, NPIX)
    assert np.isfinite(rec.std).all() and (rec.std > 0).all() and np.isfinite(rec.samples).all()
    assert rec.info["uncertainty"] == "posterior" and rec.info["data"] == data
    assert {"rhat_max", "ess_min"} <= set(rec.info["mixing"]) and 0 < rec.info["acceptance"] <= 1
    assert bh.nxcorr_aligned(rec.mean, truth) > (0.5 if data == "visibilities" else 0.3)  # 24 transitions only
    assert "gmrf_hmc" in ni.methods(domain="blackhole")


def test_gmrf_hmc_softplus_link_gives_positive_images(ring):
    _, obs, _ = ring
    rec = ni.reconstruct(obs.vis, bh.Interferometer(obs, NPIX, FOV), "gmrf_hmc", noise=ni.noise.Gaussian(obs.sigma),
                         seed=0, iterations=8, warmup=8, chains=2, n_samples=4, max_leapfrog=4, link="softplus")
    assert (rec.samples > 0).all() and rec.info["total_flux"] == pytest.approx(0.6, rel=0.3)


def test_gmrf_hmc_rml_mean_image_and_flux_free_field(ring):
    truth, obs, _ = ring
    rec = ni.reconstruct(obs.vis, bh.Interferometer(obs, NPIX, FOV), "gmrf_hmc", noise=ni.noise.Gaussian(obs.sigma),
                         seed=0, iterations=8, warmup=8, chains=2, n_samples=4, max_leapfrog=4, mean_image="rml",
                         systematic=0.0)
    # linear link: the field carries no flux, so every sample's flux is the sampled F
    assert np.allclose(rec.samples.sum((1, 2)), rec.samples.sum((1, 2)).mean(), rtol=0.1)
    assert rec.info["total_flux"] == pytest.approx(0.6, rel=0.1) and bh.nxcorr_aligned(rec.mean, truth) > 0.8


def test_compact_mean_image_leaves_out_a_haze_and_keeps_the_source():
    """rml's closure images carry a low-level haze off the source; the mean image keeps the source, not the haze."""
    from napari_invimg.blackhole.posterior import compact_mean_image

    n, res = 32, 20.0
    source = bh.models.double(n, FOV, separation_uas=50.0, pa_deg=30.0, fwhm_uas=(16.0, 20.0), ratio=0.6)
    hazy = source + 0.3 * source.sum() / n**2  # 23% of the flux spread evenly over the field
    blurred_source = bh.blur_to_resolution(source, FOV, res)
    off = blurred_source < 0.05 * blurred_source.max()
    share = lambda m: float(m[off].sum() / m.sum())
    assert share(compact_mean_image(hazy, FOV, res, 0.0)) > 0.2  # threshold 0: the blurred point estimate, haze kept
    m = compact_mean_image(hazy, FOV, res, 0.1)
    assert share(m) < 0.06 and bh.nxcorr_aligned(m, blurred_source) > 0.99
    assert np.allclose(compact_mean_image(source, FOV, res, 0.0), blurred_source, atol=1e-6)
    with pytest.raises(ValueError, match="no positive flux"):
        compact_mean_image(np.zeros((n, n)), FOV, res, 0.1)
    # blur: m blurred to a fraction of the resolution (the support still chosen at the resolution): sharper, closer
    # to the unblurred source, the same haze cut
    sharp = compact_mean_image(hazy, FOV, res, 0.1, blur=0.5)
    assert sharp.max() > 1.2 * m.max() and share(sharp) < 0.06
    assert bh.nxcorr_aligned(sharp, source) > bh.nxcorr_aligned(m, source) + 0.01
    assert np.allclose(compact_mean_image(source, FOV, res, 0.0, blur=0.5), bh.blur_to_resolution(source, FOV, res / 2),
                       atol=1e-6)
    with pytest.raises(ValueError, match="blur"):
        compact_mean_image(hazy, FOV, res, 0.1, blur=0.0)


def test_gmrf_hmc_refuses_other_operators():
    A = ni.operators.Blur(ni.psf.gaussian((5, 5), 1.0), (16, 16))
    with pytest.raises(ValueError, match="Interferometer"):
        ni.reconstruct(np.zeros((16, 16), np.float32), A, "gmrf_hmc", noise=ni.noise.Gaussian(0.1))


def test_interweaving_keeps_the_image_and_finds_the_field_strength():
    """ASIS move of (log σ, log ρ) with g = σK_ρε fixed: the image is unchanged, and σ goes back to the strength
    that generated g when started e¹ too large (its conditional given g has sd ≈ 1/√(2N²))."""
    obs = bh.simulate(bh.models.ring(NPIX, FOV), FOV, seed=0)
    post = GMRFPosterior(torch.as_tensor(obs.vis), bh.Interferometer(obs, NPIX, FOV), ni.noise.Gaussian(obs.sigma),
                         prior_fwhm_uas=80.0, order=1, total_flux=None, flux_uncertainty=0.1, link="linear")
    g = torch.Generator().manual_seed(3)
    theta = post.start().unsqueeze(0).repeat(64, 1)
    theta[:, : NPIX * NPIX] = torch.randn(64, NPIX * NPIX, generator=g, dtype=torch.float64) * np.exp(-1.0)
    theta[:, -3] = 1.0  # the field was drawn with log σ = 0
    moved = post.interweave(theta, g, moves=300)
    assert torch.allclose(post.image(moved), post.image(theta), atol=1e-12)
    assert float(moved[:, -3].mean()) == pytest.approx(0.0, abs=0.15)  # 64 chains, each with sd ≈ 0.15 (ρ unknown)
    assert torch.equal(moved[:, -1], theta[:, -1])  # the flux is not touched


def test_hmc_adapts_each_chain_and_holds_frozen_coordinates():
    """Per-chain dual averaging reaches the target acceptance on an anisotropic Gaussian; the averaged step is the one
    returned; a coordinate with inverse mass 0 never moves; the draws have the target's variances."""
    from napari_invimg.methods._hmc import hmc, warmup_windows
    from napari_invimg.methods.registry import Context

    scales = torch.tensor([1.0, 0.5, 2.0, 1.0, 3.0], dtype=torch.float64)
    potential = lambda v: 0.5 * ((v / scales) ** 2).sum(-1)
    ctx = Context(torch.device("cpu"), 0)
    inv_mass = scales**2
    inv_mass[-1] = 0.0
    w = torch.zeros(3, 5, dtype=torch.float64)
    w[:, -1] = 0.7
    w, step, acc = hmc(potential, w, ctx, iterations=150, adapt=True, step=0.05, inv_mass=inv_mass, target=0.8)
    assert step.shape == (3,) and (step > 0.2).all() and (acc > 0.6).all()
    kept = []
    w, _, acc = hmc(potential, w, ctx, iterations=400, adapt=False, step=step, inv_mass=inv_mass, offset=1,
                    record=lambda v, k: kept.append(v.clone()))
    draws = torch.stack(kept)
    assert torch.equal(draws[..., -1], torch.full_like(draws[..., -1], 0.7))
    assert (acc.mean() - 0.8).abs() < 0.15
    assert torch.allclose(draws[..., :4].reshape(-1, 4).std(0), scales[:4], rtol=0.25)
    first, windows, last = warmup_windows(200)
    assert first + sum(windows) + last == 200 and windows == sorted(windows)
