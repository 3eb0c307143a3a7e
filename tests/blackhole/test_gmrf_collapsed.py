"""The collapsed sampler of gmrf_hmc on visibilities: ε integrated out, (σ, ρ, F) from their marginal, ε exactly."""

import math

import numpy as np
import pytest
import torch

import napari_invimg as ni
import napari_invimg.blackhole as bh
from napari_invimg.blackhole.collapsed import CollapsedGMRF
from napari_invimg.blackhole.posterior import GMRFPosterior

NPIX, FOV = 16, 160.0


@pytest.fixture(scope="module")
def model():
    obs = bh.simulate(bh.models.ring(NPIX, FOV), FOV, seed=0)
    mean_image = bh.gaussian_image(NPIX, FOV, 40.0) + 0.3 * bh.models.ring(NPIX, FOV)
    post = GMRFPosterior(torch.as_tensor(obs.vis), bh.Interferometer(obs, NPIX, FOV), ni.noise.Gaussian(obs.sigma),
                         prior_fwhm_uas=80.0, order=1, total_flux=None, flux_uncertainty=0.1, link="linear",
                         mean_image=mean_image, systematic=0.02)
    return post, CollapsedGMRF(post)


def _dense(post, col, hyper):
    """Brute force: K_ρ as a dense matrix, B_θ = Fσ G K_ρ, the conditional precision Λ = I + BᵀB."""
    n2 = NPIX * NPIX
    K = post.field(torch.eye(n2, dtype=torch.float64).reshape(n2, NPIX, NPIX), hyper[0, 1]).reshape(n2, n2)
    B = math.exp(float(hyper[0, 0] + hyper[0, 2])) * col.G @ K.T
    return K, B, torch.eye(n2, dtype=torch.float64) + B.T @ B


@pytest.mark.parametrize("hyper", [(0.3, 1.0, math.log(0.55)), (-1.0, 0.2, math.log(0.7))])
def test_marginal_and_conditional_agree_with_the_joint_model(model, hyper):
    """For every ε: −log p(y, ε, θ) (the joint that HMC samples) = −log p(θ | y) − log p(ε | θ, y) + const, with the
    marginal from the data-space Cholesky and the conditional N(μ, Λ⁻¹) in closed form (dense, 16²). This holds for
    every ε only if the implemented image is exactly linear in ε given θ; the Fourier form of G K² Gᵀ is checked
    against the dense product."""
    post, col = model
    h = torch.tensor([hyper], dtype=torch.float64)
    K, B, Lam = _dense(post, col, h)
    assert torch.allclose(col.data_covariance(h[:, 1])[0], col.G @ K @ K.T @ col.G.T, rtol=1e-9, atol=1e-9)
    value, chol = col.neg_log_posterior(h)
    mu = col.conditional_mean(h, chol)[0]
    assert torch.allclose(mu, torch.linalg.solve(Lam, B.T @ (col.y - math.exp(hyper[2]) * col.a)), atol=1e-8)
    half_logdet = float(torch.log(chol[0].diagonal()).sum())
    g = torch.Generator().manual_seed(1)
    for _ in range(2):
        eps = torch.randn(NPIX * NPIX, generator=g, dtype=torch.float64)
        joint = float(post(torch.cat([eps, h[0]]).unsqueeze(0))[0])
        conditional = 0.5 * float((eps - mu) @ Lam @ (eps - mu))  # − ½ log det Λ = − ½ log det Σ_θ
        assert joint - conditional + half_logdet == pytest.approx(float(value[0]), rel=1e-9, abs=1e-6)


def test_conditional_draws_have_the_closed_form_moments(model):
    post, col = model
    h = torch.tensor([[0.0, 0.7, math.log(0.6)]], dtype=torch.float64)
    _, _, Lam = _dense(post, col, h)
    _, chol = col.neg_log_posterior(h)
    g = torch.Generator().manual_seed(2)
    # 3000 draws in batches of 100: one batch of 3000 Cholesky copies and its temporaries took 15 GB
    draws = torch.cat([col.draw_field(h.repeat(100, 1), chol.repeat(100, 1, 1), g) for _ in range(30)])
    mu = col.conditional_mean(h, chol)[0]
    cov = torch.linalg.inv(Lam)
    se = cov.diagonal().sqrt() / math.sqrt(3000)
    assert float(((draws.mean(0) - mu) / se).abs().max()) < 4.5
    v = torch.randn(6, NPIX * NPIX, generator=g, dtype=torch.float64)
    v[0] = B_row = col.G[0] @ post.field(torch.eye(NPIX * NPIX, dtype=torch.float64).reshape(-1, NPIX, NPIX),
                                          h[0, 1]).reshape(NPIX * NPIX, -1).T  # a direction the data constrain
    empirical = ((draws - mu) @ v.T).var(0)
    exact = torch.einsum("ij,jk,ik->i", v, cov, v)
    assert torch.allclose(empirical, exact, rtol=0.12)
    assert float(exact[0]) < 0.05 * float(v[0] @ v[0])  # and the data shrink it well below the prior's


def test_gmrf_hmc_collapses_on_visibilities():
    truth = bh.models.ring(NPIX, FOV)
    obs = bh.simulate(truth, FOV, seed=0)
    A, noise = bh.Interferometer(obs, NPIX, FOV), ni.noise.Gaussian(obs.sigma)
    rec = ni.reconstruct(obs.vis, A, "gmrf_hmc", noise=noise, seed=0, iterations=40, warmup=40, chains=2,
                         n_samples=8, systematic=0.0)
    i = rec.info
    assert i["sampler"] == "collapsed" and i["data"] == "visibilities" and rec.samples.shape == (8, NPIX, NPIX)
    assert np.isfinite(i["mixing"]["rhat_max"]) and np.isfinite(i["mixing_hyperparameters"]["rhat_max"])
    assert 0 < i["acceptance"] <= 1 and i["total_flux"] == pytest.approx(0.6, rel=0.05)
    assert bh.nxcorr_aligned(rec.mean, truth) > 0.9 and (rec.std > 0).all()
    q = i["hyperparameter_intervals"]  # 5/50/95% of σ, ρ (µas), F
    assert set(q) == {"sigma_log_intensity", "correlation_length_uas", "total_flux"}
    assert all(lo < mid < hi for lo, mid, hi in q.values()) and q["total_flux"][1] == pytest.approx(i["total_flux"], rel=0.01)
    with pytest.raises(ValueError, match="collapsed"):
        ni.reconstruct(obs.vis, A, "gmrf_hmc", noise=noise, sampler="collapsed", link="softplus")


@pytest.fixture(scope="module")
def closure_model():
    obs = bh.simulate(bh.models.ring(NPIX, FOV), FOV, gain_error=0.1, phase_error=True, seed=0)
    A = bh.Closures(obs, NPIX, FOV)
    mean_image = bh.gaussian_image(NPIX, FOV, 40.0) + 0.3 * bh.models.ring(NPIX, FOV)
    post = GMRFPosterior(torch.as_tensor(A.data), A, ni.noise.Gaussian(A.sigma), prior_fwhm_uas=80.0, order=1,
                         total_flux=None, flux_uncertainty=0.1, link="linear", mean_image=mean_image, systematic=0.0)
    col = CollapsedGMRF(post)
    g = torch.Generator().manual_seed(3)
    col.linearize(col.unit_image(torch.tensor([[-1.0, 0.5, 0.0]], dtype=torch.float64),
                                 torch.randn(1, NPIX * NPIX, generator=g, dtype=torch.float64))[0])  # not at m
    return post, col


@pytest.mark.parametrize("hyper", [(-0.5, 1.0, math.log(0.55)), (-1.5, 0.2, math.log(0.7))])
def test_closure_linearization_and_weight_give_the_exact_joint(closure_model, hyper):
    """Closures: for every ε, the exact joint (what HMC samples) = the linearized model's marginal of θ + its
    conditional of ε − the log weight (exact over linearized likelihood), with the scale-free likelihood (F enters
    through its prior only): the identity the exact correction of the linearized collapsed sampler rests on."""
    post, col = closure_model
    h = torch.tensor([hyper], dtype=torch.float64)
    K = post.field(torch.eye(NPIX * NPIX, dtype=torch.float64).reshape(-1, NPIX, NPIX), h[0, 1]).reshape(
        NPIX * NPIX, -1)
    B = math.exp(hyper[0]) * col.G @ K.T  # σ G K: no F on closures
    Lam = torch.eye(NPIX * NPIX, dtype=torch.float64) + B.T @ B
    value, chol = col.neg_log_posterior(h)
    mu = col.conditional_mean(h, chol)[0]
    assert torch.allclose(mu, torch.linalg.solve(Lam, B.T @ col.y), atol=1e-8)
    half_logdet = float(torch.log(chol[0].diagonal()).sum())
    g = torch.Generator().manual_seed(4)
    weights = []
    for scale in (0.0, 0.3, 1.0):
        eps = mu + scale * torch.randn(NPIX * NPIX, generator=g, dtype=torch.float64)
        joint = float(post(torch.cat([eps, h[0]]).unsqueeze(0))[0])
        log_w = float(col.log_weight(h, eps.unsqueeze(0))[0])
        conditional = 0.5 * float((eps - mu) @ Lam @ (eps - mu))
        assert joint + log_w - conditional + half_logdet == pytest.approx(float(value[0]), rel=1e-9, abs=1e-6)
        weights.append(log_w)
    assert weights[2] != pytest.approx(0.0, abs=1e-3)  # the closures are not linear: the weight does matter
    # Matheron's map of auxiliary normals is linear in them and lands on the conditional mean at aux = 0
    aux = torch.zeros(1, NPIX * NPIX + col.d, dtype=torch.float64)
    assert torch.allclose(col.field_of(h, chol, aux)[0], mu, atol=1e-10)
    # the auxiliary normals drawn given ε map back to ε (the Gibbs step of the linearized move)
    eps = mu + torch.randn(NPIX * NPIX, generator=g, dtype=torch.float64)
    aux = col.aux_given_field(h.repeat(2, 1), chol.repeat(2, 1, 1), eps.repeat(2, 1), g)
    assert torch.allclose(col.field_of(h.repeat(2, 1), chol.repeat(2, 1, 1), aux), eps.repeat(2, 1), atol=1e-8)
    assert not torch.allclose(aux[0], aux[1])


def test_gmrf_hmc_moves_closure_hyperparameters_by_the_linearized_model():
    truth = bh.models.ring(NPIX, FOV)
    obs = bh.simulate(truth, FOV, gain_error=0.1, phase_error=True, seed=0)
    A = bh.Closures(obs, NPIX, FOV)
    rec = ni.reconstruct(A.data, A, "gmrf_hmc", noise=ni.noise.Gaussian(A.sigma), seed=0, iterations=20, warmup=20,
                         chains=2, n_samples=8, systematic=0.0, max_leapfrog=16)
    i = rec.info
    assert i["sampler"] == "hmc_within_gibbs_linearized" and i["data"] == "closures"
    assert rec.samples.shape == (8, NPIX, NPIX) and np.isfinite(i["mixing_hyperparameters"]["rhat_max"])
    assert 0 < i["acceptance"] <= 1 and 0 < i["linearized_move_acceptance"] <= 1
    assert bh.nxcorr_aligned(rec.mean, truth) > 0.7 and (rec.std > 0).all() and np.isfinite(rec.samples).all()
    # closures leave the flux to its ±10% prior: its 90% interval spans exp(2 × 1.645 × 0.1) = 1.39, the samples' too
    lo, mid, hi = i["hyperparameter_intervals"]["total_flux"]
    assert 1.2 < hi / lo < 1.6 and lo < i["total_flux_prior"] < hi
    f_lo, f_hi = bh.flux_interval(rec, 0.9)
    assert 1.1 < f_hi / f_lo < 1.8
    # the centroid prior holds every sample's position (closures alone leave it free; without the prior the samples'
    # centroids scatter by 0.13 px here, measured with centroid_sd=10): within 2 sd of the prior (0.05 px)
    rows = np.arange(NPIX)
    s = np.asarray(rec.samples, dtype=np.float64)
    centroids = np.stack([(s.sum(2) * rows).sum(1), (s.sum(1) * rows).sum(1)], 1) / s.sum((1, 2))[:, None]
    sd_px = 0.02 * obs.resolution_uas / (FOV / NPIX)
    assert centroids.std(0).max() < 2 * sd_px


def test_closure_flux_is_drawn_from_its_prior(closure_model):
    """Closures do not change when the image is scaled, so F's conditional is its prior: the Gibbs draw keeps ε, σ, ρ
    and the residuals, and its draws have the prior's mean and sd; on visibilities it is refused."""
    post, _ = closure_model
    g = torch.Generator().manual_seed(5)
    theta = torch.cat([torch.randn(NPIX * NPIX, generator=g, dtype=torch.float64),
                       torch.tensor([-0.5, 1.0, 0.0], dtype=torch.float64)]).repeat(4000, 1)
    drawn = post.draw_flux(theta, g)
    assert torch.equal(drawn[:, :-1], theta[:, :-1])
    log_f = drawn[:, -1]
    assert float(log_f.mean()) == pytest.approx(math.log(post.flux0), abs=0.01)
    assert float(log_f.std()) == pytest.approx(post.flux_sd, rel=0.05)
    assert torch.allclose(post.residuals(drawn[:2]), post.residuals(theta[:2]), atol=1e-9)


def test_flux_draw_is_refused_on_visibilities(model):
    post, _ = model
    with pytest.raises(ValueError, match="closure"):
        post.draw_flux(post.start().unsqueeze(0), torch.Generator().manual_seed(0))


def test_closure_centroid_prior_fixes_the_position(closure_model, model):
    """Closures do not see a shift of the image: a Gaussian prior on the centroid (about the mean image's) fixes it.
    Its whitened residual is 0 at m, moves by 1/s_c per pixel of shift, and (linear link: Σx = F) is affine in ε, so
    the linearized closure model carries it exactly; visibilities have no such term."""
    post, _ = closure_model
    m = post.m.unsqueeze(0)
    assert torch.allclose(post.centroid_residuals(m), torch.zeros(1, 2, dtype=post.dtype), atol=1e-12)
    one = post.centroid_residuals(torch.roll(m, 1, dims=-1)) - post.centroid_residuals(m)
    assert float(one[0, 1]) == pytest.approx(1.0 / post.centroid_sd_px, rel=0.2)  # up to the wrapped edge pixels
    assert post.centroid_sd_px == pytest.approx(0.02 * math.exp(post.rho0))
    g = torch.Generator().manual_seed(6)
    h = torch.tensor([-0.3, 0.8, math.log(0.6)], dtype=torch.float64)
    e1, e2 = (torch.randn(NPIX * NPIX, generator=g, dtype=torch.float64) for _ in range(2))
    c = [post.centroid(post.image(torch.cat([e, h]).unsqueeze(0)))[0] for e in (e1, e2, 0.5 * (e1 + e2))]
    assert torch.allclose(c[2], 0.5 * (c[0] + c[1]), atol=1e-10)  # affine in ε
    assert not torch.allclose(c[0], c[1])
    n_closures = post.A.out_shape[0]
    assert post.residuals(torch.cat([e1, h]).unsqueeze(0)).shape[-1] == n_closures + 2
    vis_post, _ = model
    assert vis_post.residuals(vis_post.start().unsqueeze(0)).shape[-1] == 2 * vis_post.y.shape[0]


def test_linearized_move_proposes_sigma_and_rho_only(closure_model):
    """The closure θ-move: several moves per call, of (log σ, log ρ) only (F is free of the closures and drawn from its
    prior elsewhere); accepted chains carry ε = ε(θ', a), a finite state of the exact target; warm-up adapts the scale."""
    from napari_invimg.blackhole.posterior import _LinearizedMove

    post, _ = closure_model
    g = torch.Generator().manual_seed(11)
    mode = post.start()
    mode[: NPIX * NPIX] = 0.1 * torch.randn(NPIX * NPIX, generator=g, dtype=torch.float64)
    move = _LinearizedMove(post, mode, g, moves=3)
    assert move.cov.shape == (2, 2) and move.moves == 3
    theta = mode.repeat(6, 1)
    theta[:, -3] += 0.2 * torch.randn(6, generator=g, dtype=torch.float64)
    scale = move.log_scale
    new, rate = move(theta, adapt=True)
    assert torch.equal(new[:, -1], theta[:, -1]) and 0 < rate <= 1 and move.log_scale != scale
    moved = (new[:, -3:-1] != theta[:, -3:-1]).any(1)
    assert moved.any() and torch.isfinite(post(new)).all()
    assert not torch.allclose(new[moved, : NPIX * NPIX], theta[moved, : NPIX * NPIX])


@pytest.mark.parametrize("gain, amplitude", [(10.0, None), (0.0, "ring"), (5.0, "ring")])
def test_amplitude_image_and_high_frequency_gain_keep_the_exact_closure_identity(gain, amplitude):
    """The field's amplitude a apart from the mean m (x = F (m + σ a ⊙ P_a K ε)) and the prior power beyond the
    resolution raised by 1 + g (1 − |B̂|²): the image stays affine in ε with Σx = F, and the linearized collapsed
    model (G = J A P_a, the boosted spectrum) still gives the exact joint for every ε — which fails if the collapsed
    model and the image disagree on a or on the spectrum."""
    obs = bh.simulate(bh.models.ring(NPIX, FOV), FOV, gain_error=0.1, phase_error=True, seed=0)
    A = bh.Closures(obs, NPIX, FOV)
    mean_image = bh.gaussian_image(NPIX, FOV, 40.0) + 0.3 * bh.models.ring(NPIX, FOV)
    amp = None if amplitude is None else bh.gaussian_image(NPIX, FOV, 60.0) + bh.models.ring(NPIX, FOV)
    post = GMRFPosterior(torch.as_tensor(A.data), A, ni.noise.Gaussian(A.sigma), prior_fwhm_uas=80.0, order=1,
                         total_flux=None, flux_uncertainty=0.1, link="linear", mean_image=mean_image, systematic=0.0,
                         amplitude_image=amp, high_frequency_gain=gain)
    assert (amplitude is None) == (post.a is post.m)
    col = CollapsedGMRF(post)
    g = torch.Generator().manual_seed(5)
    h = torch.tensor([[-0.7, 0.8, math.log(0.6)]], dtype=torch.float64)
    e1, e2 = (torch.randn(NPIX * NPIX, generator=g, dtype=torch.float64) for _ in range(2))
    x = [post.image(torch.cat([e, h[0]]).unsqueeze(0))[0] for e in (e1, e2, 0.5 * (e1 + e2))]
    assert torch.allclose(x[2], 0.5 * (x[0] + x[1]), atol=1e-12)  # affine in ε
    assert float(x[0].sum()) == pytest.approx(0.6, rel=1e-9)  # the field carries no flux
    # the field's deviation from F m is a ⊙ (something): zero where a is scaled away
    dev = (x[0] - 0.6 * post.m) / post.a
    assert float(dev.abs().max()) < 50 and float(dev.std()) > 0.05
    col.linearize(col.unit_image(h, e1.unsqueeze(0))[0])
    K = post.field(torch.eye(NPIX * NPIX, dtype=torch.float64).reshape(-1, NPIX, NPIX), h[0, 1]).reshape(
        NPIX * NPIX, -1)
    B = math.exp(float(h[0, 0])) * col.G @ K.T
    Lam = torch.eye(NPIX * NPIX, dtype=torch.float64) + B.T @ B
    value, chol = col.neg_log_posterior(h)
    assert torch.allclose(col.data_covariance(h[:, 1])[0], col.G @ K @ K.T @ col.G.T, rtol=1e-9, atol=1e-9)
    mu = col.conditional_mean(h, chol)[0]
    half_logdet = float(torch.log(chol[0].diagonal()).sum())
    for scale in (0.0, 0.5):
        eps = mu + scale * torch.randn(NPIX * NPIX, generator=g, dtype=torch.float64)
        joint = float(post(torch.cat([eps, h[0]]).unsqueeze(0))[0])
        log_w = float(col.log_weight(h, eps.unsqueeze(0))[0])
        conditional = 0.5 * float((eps - mu) @ Lam @ (eps - mu))
        assert joint + log_w - conditional + half_logdet == pytest.approx(float(value[0]), rel=1e-9, abs=1e-6)


def test_amplitude_image_equal_to_the_mean_gives_the_default_model():
    """An amplitude image equal to the mean image is floored like the mean (a fraction of its peak times the broad
    Gaussian), so it gives the default model a = m — also where a compact mean image is zero and only the floor is
    left (before 2026-12-08 the amplitude's floor was taken relative to the already-floored mean: 100× lower in the far
    background, where the band then shrank to nothing; RESULTS §7, helper closure8)."""
    obs = bh.simulate(bh.models.ring(NPIX, FOV), FOV, gain_error=0.1, phase_error=True, seed=0)
    A = bh.Closures(obs, NPIX, FOV)
    compact = bh.models.ring(NPIX, FOV)  # zero far from the ring: only the floor is left there
    assert (compact == 0).mean() > 0.3
    kw = dict(prior_fwhm_uas=80.0, order=1, total_flux=None, flux_uncertainty=0.1, link="linear", systematic=0.0,
              mean_image=compact)
    args = (torch.as_tensor(A.data), A, ni.noise.Gaussian(A.sigma))
    post = GMRFPosterior(*args, **kw)
    same = GMRFPosterior(*args, amplitude_image=compact, **kw)
    assert same.a is not same.m
    assert torch.allclose(same.a, post.m, rtol=1e-12, atol=0.0)
    assert float(same.a.min()) > 0


def test_high_frequency_gain_moves_the_field_power_beyond_the_resolution():
    """g lowers the prior power below the resolution (|k| < 1/(4 FWHM), where the blurred mean image keeps its
    structure) against the rest (unit variance per pixel kept);
    g = 0 is the plain GMRF spectrum; a negative gain and a floor outside [0, 1) are refused."""
    obs = bh.simulate(bh.models.ring(NPIX, FOV), FOV, seed=0)
    kw = dict(prior_fwhm_uas=80.0, order=1, total_flux=None, flux_uncertainty=0.1, link="linear")
    args = (torch.as_tensor(obs.vis), bh.Interferometer(obs, NPIX, FOV), ni.noise.Gaussian(obs.sigma))
    t = torch.tensor(math.log(2.0), dtype=torch.float64)
    k = torch.fft.fftfreq(NPIX, dtype=torch.float64)
    low = (k[:, None] ** 2 + k[: NPIX // 2 + 1][None, :] ** 2).sqrt() < 0.25 / math.exp(GMRFPosterior(*args, **kw).rho0)
    shares = []
    for gain in (0.0, 3.0, 10.0):
        post = GMRFPosterior(*args, high_frequency_gain=gain, **kw)
        spec, w = post._spectrum(t)
        assert float((spec * w).sum()) / NPIX**2 == pytest.approx(1.0, rel=1e-12)  # unit variance per pixel
        shares.append(float((spec * w)[low].sum() / (spec * w).sum()))
        g = torch.Generator().manual_seed(0)
        f = post.field(torch.randn((300, NPIX, NPIX), generator=g, dtype=torch.float64), t)
        assert float(f.var()) == pytest.approx(1.0, rel=0.05)
    assert shares[0] > shares[1] > shares[2] and shares[2] < 0.5 * shares[0]  # 0.22, 0.10, 0.07 at 16²
    with pytest.raises(ValueError, match="high_frequency_gain"):
        GMRFPosterior(*args, high_frequency_gain=-1.0, **kw)
    with pytest.raises(ValueError, match="mean_floor"):
        GMRFPosterior(*args, mean_image=bh.models.ring(NPIX, FOV), mean_floor=1.0, **kw)


@pytest.mark.parametrize("bad", [
    {"mean_floor": float("nan")}, {"mean_floor": float("inf")}, {"mean_floor": -0.5}, {"flux_uncertainty": 0.0},
    {"flux_uncertainty": -0.1}, {"systematic": -0.02}, {"systematic": float("nan")}, {"order": 0},
    {"prior_fwhm_uas": 0.0}, {"high_frequency_gain": float("inf")},
], ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()))
def test_gmrf_posterior_refuses_bad_scalars_naming_them(bad):
    """Every scalar of the model is checked where it is given, also where the API's bounds do not guard it (the class
    is public): a NaN floor made the amplitude image NaN and a zero flux sd the posterior NaN, a negative systematic
    error or floor was silently taken as its square or as 1e-6; now each is a ValueError naming the argument."""
    obs = bh.simulate(bh.models.ring(NPIX, FOV), FOV, seed=0)
    kw = dict(prior_fwhm_uas=80.0, order=1, total_flux=None, flux_uncertainty=0.1, link="linear",
              amplitude_image=bh.models.ring(NPIX, FOV))
    args = (torch.as_tensor(obs.vis), bh.Interferometer(obs, NPIX, FOV), ni.noise.Gaussian(obs.sigma))
    post = GMRFPosterior(*args, **kw)
    assert math.isfinite(float(post(post.start()[None])))
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        GMRFPosterior(*args, **{**kw, **bad})
