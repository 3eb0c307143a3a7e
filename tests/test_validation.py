"""Bad input and numerics (issue #15): one parametrized test per class of failure, every method where it applies.

Each class: silent wrong results (λ = 0, negative data under a Poisson model, σ maps, units, PSFs summing to zero),
raw exceptions turned into ours (float16, one-pixel images, devices, seeds, shapes), global random state and
threads, the iteration count. Tiny images and few iterations keep it quick.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import napari_invimg as ni
from napari_invimg import core
from napari_invimg.methods import registry

SHAPE = (16, 16)

#: a few iterations (and samples) per method: enough to exercise the code, small enough to be quick
FAST: dict[str, dict] = {
    "richardson_lucy": dict(iterations=8), "rl_tv": dict(iterations=8), "tikhonov_cg": dict(iterations=8),
    "tv": dict(iterations=8), "wavelet": dict(iterations=8, levels=1), "hessian": dict(iterations=8), "wiener": {},
    "adjoint": {}, "red": dict(iterations=3), "pnp_admm": dict(iterations=3), "pnp_pgd": dict(iterations=3),
    "dip": dict(iterations=4, width=4, depth=2), "deep_decoder": dict(iterations=4, channels=4, levels=2),
    "mc_dropout_dip": dict(iterations=4, width=4, depth=2, n_samples=2),
    "bayes_dip": dict(iterations=4, posterior_iterations=4, width=4, depth=2, n_samples=2, members=1),
    "ensemble": dict(n_samples=2, base_params='{"iterations": 4, "width": 4, "depth": 2}'),
    "ula": dict(iterations=24, n_samples=4, chains=1, burn_in=8, thinning=4),
    "mala": dict(iterations=24, n_samples=4, chains=1, burn_in=8, thinning=4),
    "pnp_ula": dict(iterations=24, n_samples=4, chains=1, burn_in=8, thinning=4),
    "vb": dict(iterations=6, n_samples=2), "dps": dict(iterations=3, n_samples=1),
    "diffpir": dict(iterations=3, n_samples=1), "neural_field": dict(iterations=4, features=8, width=8, layers=1),
}
#: methods that need trained weights (tests/methods/test_supervised*.py train them); here they only refuse clearly
NEEDS_WEIGHTS = ("care", "unrolled")
STOCHASTIC_NETS = ("dip", "mc_dropout_dip", "deep_decoder", "bayes_dip")


@pytest.fixture(scope="module")
def problem():
    x = ni.datasets.fluorescence(SHAPE, seed=0)
    A = ni.operators.Blur(ni.psf.gaussian((5, 5), sigma=1.0), SHAPE)
    noise = ni.noise.PoissonGaussian(gain=0.01, sigma=0.01)
    return x, A, noise, ni.simulate(x, A, noise, seed=0)


def imaging_methods(A) -> list[str]:
    """The package's imaging methods (not toy methods that other tests register)."""
    return [m for m in ni.methods(A) if registry.get(m).domain == "imaging"
            and registry.get(m).__module__.startswith("napari_invimg.")]


def test_every_imaging_method_has_fast_settings(problem):
    """The parametrized tests below cover every registered imaging method (a new one needs an entry)."""
    assert set(imaging_methods(problem[1])) - set(NEEDS_WEIGHTS) <= set(FAST)


# -- 1. silent wrong results ----------------------------------------------------------------------------------

@pytest.mark.parametrize("solver", ["primal_dual", "fista", "admm"])
@pytest.mark.parametrize("method", ["tv", "wavelet", "hessian", "rl_tv", "tikhonov_cg", "wiener"])
def test_lam_zero_is_finite(problem, method, solver):
    _, A, noise, y = problem
    extra = {"solver": solver} if method in ("tv", "wavelet", "hessian") else {}
    if solver != "primal_dual" and not extra:
        pytest.skip("one solver only")
    rec = ni.reconstruct(y, A, method, noise=noise, lam=0.0, **FAST[method], **extra)
    assert np.isfinite(rec.mean).all() and rec.mean.std() > 0


@pytest.mark.parametrize("method", ["tv", "hessian", "wavelet", "rl_tv", "richardson_lucy", "tikhonov_cg", "wiener",
                                    "ula", "dip"])
def test_negative_data_with_a_poisson_model_is_refused(problem, method):
    _, A, noise, y = problem
    with pytest.raises(ValueError, match="Poisson camera"):
        ni.reconstruct(y - 0.3, A, method, noise=noise, **FAST[method])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_poisson_floor_is_six_read_noise_sigmas_less_a_tolerance_of_the_largest_magnitude(dtype):
    """``check_counts`` refuses data below −6σ − 1e-6 · max|y| and accepts them above (both read from one pass)."""
    from napari_invimg.validation import check_counts

    y = np.full((16, 16), 0.5, dtype)
    y[3, 4] = 1000.0  # max |y|: the tolerance is 1e-3
    for noise, floor in ((ni.noise.PoissonGaussian(gain=0.01, sigma=0.01), -0.06 - 1e-3),
                         (ni.noise.Poisson(0.01), -1e-3)):
        for data in (y, torch.from_numpy(y)):
            data[7, 2] = floor * 0.99
            check_counts(data, noise)
            data[7, 2] = floor * 1.01
            with pytest.raises(ValueError, match="Poisson camera"):
                check_counts(data, noise)
    y[3, 4], y[5, 5] = 0.5, -2000.0  # the largest magnitude negative (and far below any floor): refused
    with pytest.raises(ValueError, match="goes down to -2000"):
        check_counts(y, ni.noise.Poisson(0.01))


def test_read_noise_below_zero_is_accepted_and_an_estimated_model_falls_back(problem, monkeypatch):
    _, A, noise, y = problem
    dark = ni.simulate(np.zeros(SHAPE, np.float32), A, noise, seed=1)  # read noise dips below zero
    assert dark.min() < 0
    ni.reconstruct(dark + 0.02, A, "richardson_lucy", noise=noise, iterations=3)  # the −6σ floor lets it pass
    # an estimated Poisson–Gaussian model that the data contradict falls back to a Gaussian one, with a warning
    monkeypatch.setattr(core, "estimate", lambda a, model="auto": (
        ni.noise.estimate(a, "gaussian") if model == "gaussian" else ni.noise.PoissonGaussian(0.01, 0.01)))
    rec = ni.reconstruct(y - 0.3, A, "richardson_lucy", iterations=3)
    assert rec.info["noise"]["type"] == "Gaussian" and "offset" in rec.info["noise_warning"]
    assert np.isfinite(rec.mean).all()


@pytest.mark.parametrize("sigma", [0.0, -0.05], ids=["zero", "negative"])
def test_sigma_map_with_a_zero_or_negative_value_is_refused(sigma):
    smap = np.full(SHAPE, 0.05, np.float32)
    smap[3, 3] = sigma
    with pytest.raises(ValueError, match="σ map must be positive|non-negative"):
        ni.noise.Gaussian(smap)


@pytest.mark.parametrize("method", ["tv", "ula", "tikhonov_cg", "wiener", None])
def test_sigma_map_of_the_wrong_shape_is_refused(problem, method):
    x, A, _, y = problem
    bad = ni.noise.Gaussian(np.full((8, 8), 0.05, np.float32))
    with pytest.raises(ValueError, match="σ map has shape"):
        if method is None:
            ni.simulate(x, A, bad)
        else:
            ni.reconstruct(y, A, method, noise=bad, **FAST[method])


#: tikhonov_cg on this tiny problem takes λ at the bottom of its bracket: nearly unregularized, so the float32
#: rounding of y·s (1e-7) comes back amplified by the conditioning
TOLERANCE = {"tikhonov_cg": 2e-2}


def _scaled(noise, s):
    return noise.scaled(s)


@pytest.mark.parametrize("estimated", [False, True], ids=["given", "estimated"])
@pytest.mark.parametrize("method", sorted(FAST))
def test_results_do_not_depend_on_the_data_units(problem, method, estimated):
    """rec(y·s)/s = rec(y) for s = 1e-6 and 1e3, with the noise model scaled alike (or estimated from the data)."""
    _, A, noise, y = problem
    if method not in ni.methods(A):
        pytest.skip(f"{method} does not take {A.name}")
    if estimated and method in STOCHASTIC_NETS + ("ensemble", "vb", "pnp_ula", "mala"):
        pytest.skip("the given-noise case covers it")
    base = ni.reconstruct(y, A, method, noise=None if estimated else noise, **FAST[method]).mean
    for s in (1e-6, 1e3):
        rec = ni.reconstruct(y * s, A, method, noise=None if estimated else _scaled(noise, s), **FAST[method])
        err = np.abs(rec.mean / s - base).max() / np.abs(base).max()
        assert err < TOLERANCE.get(method, 2e-3), f"{method} at scale {s}: relative difference {err:.3g}"


def test_noise_estimate_scales_with_the_data(problem):
    y = problem[3]
    for model in ("auto", "gaussian"):
        a = ni.noise.estimate(y, model).sigma_scalar
        b = ni.noise.estimate(y * 1e-9, model).sigma_scalar
        assert b / 1e-9 == pytest.approx(a, rel=1e-4)


@pytest.mark.parametrize("make", [lambda p: p - p.mean(), lambda p: p - 0.999 * p.sum() / p.size],
                         ids=["zero-sum", "almost-zero-sum"])
def test_psf_summing_to_about_zero_is_refused(make):
    psf = ni.psf.gaussian((7, 7), sigma=1.5)
    with pytest.raises(ValueError, match="sums to"):
        ni.operators.Blur(make(psf), SHAPE)


# -- 2. raw exceptions become ours ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("method", ["tv", "richardson_lucy", "wiener", "tikhonov_cg", "dip"])
def test_float16_data_are_computed_in_float32(problem, method, kind):
    x, A, noise, y = problem
    y16 = y.astype(np.float16) if kind == "numpy" else torch.from_numpy(y).half()
    rec = ni.reconstruct(y16, A, method, noise=noise, **FAST[method])
    assert rec.mean.dtype == np.float32 and np.isfinite(rec.mean).all()
    assert np.isfinite(ni.simulate(x.astype(np.float16), A, noise)).all()
    assert A.forward(x.astype(np.float16)).dtype == np.float32


@pytest.mark.parametrize("method", ["tv", "hessian", "wavelet", "tikhonov_cg", "richardson_lucy"])
@pytest.mark.parametrize("shape", [(16, 1), (1, 16), (1, 1)])
def test_one_pixel_wide_images(method, shape):
    y = np.random.default_rng(0).uniform(0.2, 1.0, shape).astype(np.float32)
    rec = ni.reconstruct(y, ni.operators.Identity(shape), method, noise=ni.noise.Gaussian(0.05), **FAST[method])
    assert rec.mean.shape == shape and np.isfinite(rec.mean).all()


@pytest.mark.parametrize("device", ["cuda:7", "mps" if not torch.backends.mps.is_available() else "cuda:99", "gpu7"])
def test_unavailable_device_lists_the_devices_there_are(problem, device):
    _, A, noise, y = problem
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has that many GPUs")
    with pytest.raises(ValueError, match="this machine has: cpu"):
        ni.reconstruct(y, A, "tv", noise=noise, device=device, iterations=2)


@pytest.mark.parametrize("seed", ["abc", -1, 1.5, [1]])
def test_bad_seed_is_refused(problem, seed):
    x, A, noise, y = problem
    with pytest.raises(ValueError, match="seed must be"):
        ni.reconstruct(y, A, "tv", noise=noise, seed=seed, iterations=2)
    with pytest.raises(ValueError, match="seed must be"):
        ni.simulate(x, A, noise, seed=seed)


@pytest.mark.parametrize("make", [
    lambda: ni.operators.Identity((0, 0)), lambda: ni.operators.Identity((-3, 4)),
    lambda: ni.operators.Identity(()), lambda: ni.operators.Identity((2.5, 4)),
    lambda: ni.operators.Blur(ni.psf.gaussian((3, 3), 1.0), (0, 8)),
    lambda: ni.operators.Downsampling((1, 8), factor=2),
], ids=["zero", "negative", "empty", "fractional", "blur-zero", "downsampled-to-zero"])
def test_operators_refuse_empty_or_negative_shapes(make):
    with pytest.raises(ValueError):
        make()


# -- 3. global random state and threads -----------------------------------------------------------------------

@pytest.mark.parametrize("method", sorted(FAST))
def test_methods_leave_the_global_random_streams_alone(problem, method):
    _, A, noise, y = problem
    if method not in ni.methods(A):
        pytest.skip(f"{method} does not take {A.name}")
    torch.manual_seed(123)
    np.random.seed(123)
    expected = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    ni.reconstruct(y, A, method, noise=noise, seed=5, **FAST[method])
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])


@pytest.mark.parametrize("method", list(STOCHASTIC_NETS) + ["ula", "dps"])
def test_two_runs_in_threads_equal_the_runs_alone(problem, method):
    _, A, noise, y = problem
    alone = [ni.reconstruct(y, A, method, noise=noise, seed=s, **FAST[method]).mean for s in (1, 2)]
    out: dict[int, np.ndarray] = {}

    def run(s):
        out[s] = ni.reconstruct(y, A, method, noise=noise, seed=s, **FAST[method]).mean

    threads = [threading.Thread(target=run, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert np.array_equal(out[1], alone[0]) and np.array_equal(out[2], alone[1])


#: options added in later sessions, run like the methods above: (method, settings)
OPTIONS = {
    "dip-half": ("dip", dict(FAST["dip"], resolution="half")),
    "bayes_dip-learned_share": ("bayes_dip", dict(FAST["bayes_dip"], learned_share=0.4)),
    "neural_field-members": ("neural_field", dict(FAST["neural_field"], members=2)),
}


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_options_are_unit_free_seeded_and_thread_safe(problem, option):
    """An option's mean and std scale with the data (1e-6 and 1e3), the same seed gives the same bits alone and in
    a thread beside another run, and torch's and numpy's global streams are left alone."""
    _, A, noise, y = problem
    method, kw = OPTIONS[option]
    torch.manual_seed(123)
    np.random.seed(123)
    expected = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    base = ni.reconstruct(y, A, method, noise=noise, seed=1, **kw)
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])
    for s in (1e-6, 1e3):
        rec = ni.reconstruct(y * s, A, method, noise=_scaled(noise, s), seed=1, **kw)
        for got, ref in ((rec.mean, base.mean), (rec.std, base.std)):
            if ref is None:  # dip returns no std
                assert got is None
                continue
            assert np.abs(got / s - ref).max() < 2e-3 * np.abs(ref).max(), f"{option} at scale {s}"
    out: dict[int, ni.Reconstruction] = {}

    def run(s):
        out[s] = ni.reconstruct(y, A, method, noise=noise, seed=s, **kw)

    threads = [threading.Thread(target=run, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert np.array_equal(out[1].mean, base.mean)
    assert (base.std is None and out[1].std is None) or np.array_equal(out[1].std, base.std)
    assert not np.array_equal(out[2].mean, base.mean)


@pytest.mark.parametrize("method", ["dip", "ula"])
def test_seed_none_is_fresh_and_recorded(problem, method):
    _, A, noise, y = problem
    a = ni.reconstruct(y, A, method, noise=noise, seed=None, **FAST[method])
    b = ni.reconstruct(y, A, method, noise=noise, seed=None, **FAST[method])
    assert isinstance(a.info["seed"], int) and a.info["seed"] != b.info["seed"]
    assert not np.array_equal(a.mean, b.mean)
    replay = ni.reconstruct(y, A, method, noise=noise, seed=a.info["seed"], **FAST[method])
    assert np.array_equal(replay.mean, a.mean)


# -- 6. the iteration count -----------------------------------------------------------------------------------

@pytest.mark.parametrize("lam", [None, 0.1])
@pytest.mark.parametrize("method", ["rl_tv", "tv", "richardson_lucy", "tikhonov_cg"])
def test_reported_iterations_do_not_exceed_the_budget(problem, method, lam):
    _, A, noise, y = problem
    extra = {} if method == "richardson_lucy" else {"lam": lam}
    rec = ni.reconstruct(y, A, method, noise=noise, iterations=10, **extra)
    assert 1 <= rec.info["iterations"] <= 10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_check_finite_finds_one_bad_value_in_a_tensor(dtype, bad):
    from napari_invimg.validation import check_finite
    t = torch.rand(1000, dtype=dtype)
    check_finite(t)
    t[637] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_finite(t)


def test_check_finite_accepts_finite_values_whose_sum_overflows():
    from napari_invimg.validation import check_finite
    check_finite(torch.full((10,), 3e38, dtype=torch.float32))  # the float32 sum is inf; every value is finite
    check_finite(torch.full((10,), 1e308, dtype=torch.float64))
    check_finite(torch.arange(5))


@pytest.mark.parametrize("t", [torch.rand(300, 301), torch.randn(70, dtype=torch.complex64), torch.tensor([1e30, 2e30]),
                               torch.arange(7)])
def test_data_scale_is_the_rms_in_double_precision(t):
    from napari_invimg.validation import data_scale
    z = t.to(torch.complex128 if t.is_complex() else torch.float64)
    assert data_scale(t) == pytest.approx(float(z.abs().pow(2).mean().sqrt()), rel=1e-12)
    assert data_scale(torch.zeros(4)) == 1.0


def test_unit_range_scale_scales_with_the_data_and_refuses_non_finite_or_empty_data():
    """The unit of a unit-range run (``bayes_dip``'s learned draws too): 10× data, 10× unit; all-zero data: 1 (no
    scale to take); a NaN, an infinity or no values is our ValueError, not a silent 1 or an IndexError."""
    from napari_invimg.validation import unit_range_scale

    y = torch.rand(32, 32, generator=torch.Generator().manual_seed(0))
    assert unit_range_scale(10 * y) == pytest.approx(10 * unit_range_scale(y), rel=1e-6)
    assert unit_range_scale(torch.zeros(4, 4)) == 1.0
    for bad in (torch.tensor([1.0, float("nan"), 2.0]), torch.tensor([1.0, float("inf")])):
        with pytest.raises(ValueError, match="NaN or infinite"):
            unit_range_scale(bad)
    with pytest.raises(ValueError, match="no values"):
        unit_range_scale(torch.zeros(0))


def test_a_pure_poisson_model_on_non_integer_counts_is_run_with_a_warning_in_info():
    x = ni.datasets.fluorescence((32, 32), seed=2).astype(np.float64)
    A = ni.operators.Blur(ni.psf.gaussian((5, 5), 1.0), x.shape)
    counts = ni.simulate(50 * x, A, ni.noise.Poisson(1.0), seed=1)
    import warnings as _warnings
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")
        rec = ni.reconstruct(counts, A, "richardson_lucy", noise=ni.noise.Poisson(1.0), iterations=2)
        scaled = ni.reconstruct(0.02 * counts, A, "richardson_lucy", noise=ni.noise.Poisson(0.02), iterations=2)
    assert "noise_warning" not in rec.info and "noise_warning" not in scaled.info  # counts × gain: silent
    with pytest.warns(UserWarning, match="whole number of photons"):
        bad = ni.reconstruct(counts / counts.max(), A, "richardson_lucy", noise=ni.noise.Poisson(1.0), iterations=2)
    assert "whole number of photons" in bad.info["noise_warning"] and np.isfinite(bad.mean).all()
