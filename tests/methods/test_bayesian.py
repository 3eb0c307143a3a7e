import numpy as np
import pytest

import napari_invimg as ni


@pytest.fixture(scope="module")
def denoising():
    x = ni.datasets.fluorescence((24, 24), seed=1)
    A = ni.operators.Identity(x.shape)
    noise = ni.noise.Gaussian(0.1)
    return x, A, noise, ni.simulate(x, A, noise, seed=0)


@pytest.mark.parametrize("method,extra", [("bayes_dip", {"kl_weight": 1.0, "posterior_iterations": 10, "members": 1}), ("mc_dropout_dip", {"dropout": 0.2})])
def test_stochastic_dip_returns_posterior_samples(denoising, method, extra):
    x, A, noise, y = denoising
    rec = ni.reconstruct(y, A, method, noise, iterations=25, n_samples=5, depth=2, width=4, seed=0, **extra)
    assert rec.uncertainty == "posterior" and ni.method_info(method)["returns_std"]
    assert rec.mean.shape == x.shape and rec.std.shape == x.shape
    assert rec.samples.shape == (5, *x.shape)
    assert (rec.std > 0).all() and np.isfinite(rec.samples).all()
    np.testing.assert_allclose(rec.mean, rec.samples.mean(0), atol=1e-5)
    misfit = rec.info["history"]["misfit"]
    assert misfit[-1] < 0.5 * misfit[0]  # the samples' network was fitted to the data
    # the same seed gives the same result
    again = ni.reconstruct(y, A, method, noise, iterations=25, n_samples=5, depth=2, width=4, seed=0, **extra)
    np.testing.assert_allclose(again.mean, rec.mean, atol=1e-6)


def test_mc_dropout_says_it_is_approximate():
    assert "approximate" in ni.method_info("mc_dropout_dip")["description"]


def test_bayes_dip_mean_is_dips_estimate_and_samples_spread_around_it(denoising):
    """Phase 1 is plain DIP (same network, seeds and stop), so the mean is `dip`'s result; the samples are that
    estimate plus the weight posterior's centered spread."""
    x, A, noise, y = denoising
    defaults = {p["name"]: p["default"] for p in ni.method_info("bayes_dip")["parameters"]}
    dip_defaults = {p["name"]: p["default"] for p in ni.method_info("dip")["parameters"]}
    assert 0 < defaults["kl_weight"] < 1 and defaults["n_samples"] >= 32 and defaults["posterior_iterations"] > 0
    assert all(defaults[k] == dip_defaults[k] for k in ("iterations", "lr", "stop", "tau", "input_noise"))
    kw = {"iterations": 30, "depth": 2, "width": 4, "seed": 0}
    rec = ni.reconstruct(y, A, "bayes_dip", noise, posterior_iterations=15, n_samples=6, members=1, **kw)
    dip = ni.reconstruct(y, A, "dip", noise, **kw)
    np.testing.assert_array_equal(rec.mean, dip.mean)
    np.testing.assert_allclose(rec.samples.mean(0), rec.mean, atol=1e-5)
    assert rec.samples.shape == (6, *x.shape) and (rec.std > 0).all() and np.isfinite(rec.std).all()
    history = rec.info["history"]
    assert len(history["posterior_loss"]) == 15 and history["misfit"] == dip.info["history"]["misfit"]
    assert rec.info["posterior_iterations"] == 15 and rec.info["weight_sigma_median"] > 1e-3  # σ grew from 1e-3


def test_bayes_from_point_copies_the_fitted_network():
    """With negligible weight spreads the Bayesian copy computes what the fitted plain network computes."""
    import torch

    from napari_invimg.methods.bayesian import bayes_from_point
    from napari_invimg.nets.dip import BayesConv, SkipNet
    from napari_invimg.nets.init import materialize

    gen = torch.Generator().manual_seed(1)
    with torch.device("meta"):
        plain = SkipNet(3, 1, 2, (4, 4, 8), skip=2)
    plain = materialize(plain, gen)
    with torch.no_grad():  # norms away from their initial values, so that copying them is tested
        for m in plain.modules():
            if isinstance(m, torch.nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.5, 0.5, generator=gen)
    bayes = bayes_from_point(plain, prior_sigma=0.1, init_sigma=1e-8)
    assert all(m.prior_sigma == 0.1 for m in bayes.modules() if isinstance(m, BayesConv))
    z = torch.rand((1, 3, 16, 16), generator=gen)
    with torch.no_grad():
        np.testing.assert_allclose(bayes(z).numpy(), plain(z).numpy(), atol=1e-4)


def test_weight_posterior_widens_with_the_kl_weight_and_keeps_the_means(denoising):
    """Only ρ moves in phase 2; a larger β (the prior's pull, σ → σ_p) gives wider weights and a wider std."""
    _, A, noise, y = denoising
    kw = {"iterations": 20, "depth": 2, "width": 4, "seed": 0, "posterior_iterations": 40, "posterior_lr": 0.2,
          "n_samples": 8, "members": 1}
    narrow = ni.reconstruct(y, A, "bayes_dip", noise, kl_weight=0.01, **kw)
    wide = ni.reconstruct(y, A, "bayes_dip", noise, kl_weight=10.0, **kw)
    np.testing.assert_array_equal(narrow.mean, wide.mean)
    assert wide.info["weight_sigma_median"] > 2 * narrow.info["weight_sigma_median"]
    assert wide.std.mean() > narrow.std.mean()


def test_bayes_dip_ensemble_is_the_mixture_of_independent_dip_fits(denoising):
    """With K members the mean is the average of K `dip` runs on seeds s·K … s·K + K − 1, the samples are each
    member's estimate plus its own weight-posterior spread, and the std holds the members' disagreement."""
    x, A, noise, y = denoising
    kw = {"iterations": 20, "depth": 2, "width": 4}
    rec = ni.reconstruct(y, A, "bayes_dip", noise, posterior_iterations=5, n_samples=6, members=3, seed=1,
                         learned_share=0.0, **kw)  # the members' own spreads (the learned share mixes in another)
    dips = [ni.reconstruct(y, A, "dip", noise, seed=3 + k, **kw).mean for k in range(3)]
    np.testing.assert_allclose(rec.mean, np.mean(dips, 0), atol=1e-6)
    assert rec.samples.shape == (6, *x.shape) and rec.info["members"] == 3
    np.testing.assert_allclose(rec.samples.mean(0), rec.mean, atol=1e-5)
    # members' samples are centered on their own estimates
    for k in range(3):
        np.testing.assert_allclose(rec.samples[2 * k:2 * k + 2].mean(0), dips[k], atol=1e-5)
    between = np.std(dips, 0, ddof=0)
    assert (rec.std ** 2 >= between ** 2 * 3 / 5 - 1e-9).all()  # the std includes the spread between members
    assert len(rec.info["member_stop_iterations"]) == 3
    with pytest.raises(ValueError, match="at least 2 per ensemble member"):
        ni.reconstruct(y, A, "bayes_dip", noise, n_samples=5, members=3, seed=0, **kw)
    with pytest.warns(UserWarning, match="draws 6 samples, not 7: 2 per ensemble member"):
        rec7 = ni.reconstruct(y, A, "bayes_dip", noise, posterior_iterations=5, n_samples=7, members=3, seed=1,
                              learned_share=0.0, **kw)
    assert rec7.samples.shape == (6, *x.shape) and rec7.info["n_samples"] == 6
    np.testing.assert_allclose(rec7.samples.mean(0), rec7.mean, atol=1e-5)  # the mixture's mean, as with 6


def test_bayes_dip_members_advance_one_bar_and_leave_the_callers_context_alone(denoising):
    """Members run in child contexts: the bar only moves forward across members (and through each member's weight-
    posterior phase, also when its fit runs to the cap), ends full, the caller's seed is not touched, the history and
    evaluations of every member come back, and one member gives the same arrays as before (its run's own seed)."""
    import itertools

    import torch

    from napari_invimg.methods.bayesian import BayesDIP
    from napari_invimg.methods.registry import Context

    _, A, noise, y = denoising
    params = BayesDIP.validate({"iterations": 12, "depth": 2, "width": 4, "posterior_iterations": 4, "n_samples": 4,
                                "members": 2, "stop": "none", "learned_share": 0.0})
    steps = []
    ctx = Context(torch.device("cpu"), seed=5, progress=lambda i, total, preview: steps.append((i, total)))
    est = BayesDIP().run(torch.as_tensor(y), A, noise, ctx, **params)
    assert ctx.seed == 5
    fractions = [i / total for i, total in steps]
    assert all(b >= a for a, b in itertools.pairwise(fractions)) and fractions[-1] == 1.0
    assert len({total for _, total in steps}) == 1  # one bar for both members
    assert len(ctx.history["misfit"]) == 2 * 12 and len(ctx.history["posterior_loss"]) == 2 * 4
    assert ctx.evaluations == 2 * (12 + 4 + 2)  # fit steps, posterior steps and draws of both members
    assert est.samples.shape[0] == 4
    # one member, seed 0: the arrays of `dip` on seed 0, as before the members ran in child contexts
    one = ni.reconstruct(y, A, "bayes_dip", noise, iterations=12, depth=2, width=4, posterior_iterations=4,
                         n_samples=4, members=1, seed=0)
    dip = ni.reconstruct(y, A, "dip", noise, iterations=12, depth=2, width=4, seed=0)
    np.testing.assert_array_equal(one.mean, dip.mean)
    assert one.info["history"]["misfit"] == dip.info["history"]["misfit"]


def test_mix_learned_spread_is_the_variance_mix_around_the_estimate():
    """std² = (1 − w) s² + w m² exactly; the samples stay centered on the estimate; w = 0 is the weight posterior's
    spread alone and w = 1 the learned draws' spread alone."""
    import torch

    from napari_invimg.methods.bayesian import mix_learned_spread

    gen = torch.Generator().manual_seed(0)
    estimate = torch.rand((6, 5), generator=gen)
    spread = torch.randn((8, 6, 5), generator=gen) * 0.1
    spread -= spread.mean(0)
    learned = estimate + 0.05 + torch.randn((3, 6, 5), generator=gen) * 0.2  # biased: m² holds its offset too
    s2 = (spread ** 2).sum(0) / 7
    m2 = ((learned - estimate) ** 2).mean(0)
    for w in (0.0, 0.4, 1.0):
        samples, std = mix_learned_spread(estimate, spread, learned, w)
        torch.testing.assert_close(std ** 2, (1 - w) * s2 + w * m2)
        torch.testing.assert_close(samples.mean(0), estimate)
        assert samples.shape == spread.shape
    samples, _ = mix_learned_spread(estimate, spread, learned, 0.0)
    torch.testing.assert_close(samples, estimate + spread)
    samples, std = mix_learned_spread(estimate, spread, learned, 1.0)
    assert float((std - ((learned - estimate) ** 2).mean(0).sqrt()).abs().max()) < 1e-6
    assert float((std - s2.sqrt()).abs().max()) > 0.01  # the learned part is not the weight posterior's
    with pytest.raises(ValueError, match=r"learned_share must lie in \[0, 1\]"):
        mix_learned_spread(estimate, spread, learned, 1.5)


@pytest.fixture(scope="module")
def blurred():
    x = ni.datasets.camera()[::8, ::8][:32, :32].astype(np.float32)
    x = (x - x.min()) / (x.max() - x.min())
    A = ni.operators.Blur(ni.psf.gaussian((7, 7), sigma=1.0), x.shape)
    noise = ni.noise.Gaussian(0.05)
    return x, A, noise, ni.simulate(x, A, noise, seed=2)


def test_bayes_dip_learned_share_mixes_diffpir_draws_in_the_datas_units(blurred, monkeypatch):
    """The mean stays DIP's; the std is the mix of the weight posterior's and diffpir's spread about it (diffpir run
    as ni.reconstruct runs it), in the data's units; without the learned denoiser the share is skipped, and said so."""
    _, A, noise, y = blurred
    kw = {"iterations": 30, "posterior_iterations": 8, "n_samples": 8, "depth": 2, "width": 4, "seed": 0}
    last = ni.method_info("bayes_dip")["parameters"][-1]
    assert last["name"] == "learned_share" and last["default"] == 0.0  # an option: 0.4 over-covers inpainting
    off = ni.reconstruct(y, A, "bayes_dip", noise, learned_share=0.0, **kw)
    on = ni.reconstruct(y, A, "bayes_dip", noise, learned_share=0.4, **kw)
    np.testing.assert_array_equal(on.mean, off.mean)
    np.testing.assert_allclose(on.samples.mean(0), on.mean, atol=1e-5)
    assert on.info["learned_share"] == 0.4 and off.info["learned_share"] == 0.0
    learned = ni.reconstruct(y, A, "diffpir", noise, seed=0)
    m2 = ((learned.samples - on.mean) ** 2).mean(0)
    np.testing.assert_allclose(on.std ** 2, 0.6 * off.std ** 2 + 0.4 * m2, rtol=1e-3, atol=1e-8)
    # the data in other units: the same result in those units
    scaled = ni.reconstruct(10 * y, A, "bayes_dip", noise.scaled(10.0), learned_share=0.4, **kw)
    np.testing.assert_allclose(scaled.std / 10, on.std, rtol=2e-3, atol=1e-6)
    import napari_invimg.priors as priors

    monkeypatch.setattr(priors, "denoiser_names", lambda: ("tv", "wavelet"))
    skipped = ni.reconstruct(y, A, "bayes_dip", noise, learned_share=0.4, **kw)
    np.testing.assert_array_equal(skipped.std, off.std)
    assert skipped.info["learned_share"] == 0.0 and "not installed" in skipped.info["learned_share_skipped"]
