import numpy as np
import pytest

import napari_invimg as ni


@pytest.fixture(scope="module")
def deblurring():
    x = ni.datasets.fluorescence((32, 32), seed=1)
    A = ni.operators.Blur(ni.psf.gaussian((7, 7), 1.5), x.shape)
    noise = ni.noise.Gaussian(0.02)
    return x, A, noise, ni.simulate(x, A, noise, seed=0)


def test_ensemble_over_lambda_is_labeled_ensemble(deblurring):
    x, A, noise, y = deblurring
    rec = ni.reconstruct(y, A, "ensemble", noise, base_method="tikhonov_cg", vary="lam", n_samples=4,
                         base_params='{"iterations": 30}')
    assert rec.uncertainty == "ensemble"
    assert "not a posterior" in ni.method_info("ensemble")["description"]
    assert rec.samples.shape == (4, *x.shape) and rec.std.shape == x.shape
    lams = rec.info["member_lams"]
    assert np.allclose(np.diff(np.log(lams)), np.log(lams[1] / lams[0]))  # log-spaced around the automatic λ
    assert lams[-1] / lams[0] == pytest.approx(9.0)
    assert rec.std.max() > 0
    np.testing.assert_allclose(rec.mean, rec.samples.mean(0), atol=1e-6)


def test_ensemble_over_seeds_of_dip(deblurring):
    x, A, noise, y = deblurring
    rec = ni.reconstruct(y, A, "ensemble", noise, base_method="dip", vary="seed", n_samples=2,
                         base_params='{"iterations": 10, "depth": 2, "width": 4}')
    assert rec.info["member_seeds"] == [0, 1] and rec.std.max() > 0


def test_ensemble_refuses_what_it_cannot_do(deblurring):
    x, A, noise, y = deblurring
    with pytest.raises(ValueError, match="no regularization weight"):
        ni.reconstruct(y, A, "ensemble", noise, base_method="richardson_lucy", vary="lam")
    with pytest.raises(ValueError, match="JSON"):
        ni.reconstruct(y, A, "ensemble", noise, base_method="wiener", base_params="{iterations: 3")
    with pytest.raises(ValueError, match="Unknown method"):
        ni.reconstruct(y, A, "ensemble", noise, base_method="magic")


def test_ensemble_cancel_keeps_the_members_so_far(deblurring):
    x, A, noise, y = deblurring
    steps = []

    def progress(i, total, preview):
        steps.append(i)
        return i < 2500  # cancel during the third member

    with pytest.raises(ni.Cancelled) as caught:
        ni.reconstruct(y, A, "ensemble", noise, base_method="tikhonov_cg", vary="lam", n_samples=4,
                       lam_low=1e-4, lam_high=1e-2, base_params='{"iterations": 20}', progress=progress)
    partial = caught.value.partial
    assert partial.samples.shape == (2, *x.shape) and partial.std is not None
    assert steps == sorted(steps)


def test_ensemble_over_diffpir_lam_spans_the_starts_default(deblurring):
    from napari_invimg.priors import denoiser_names

    if "drunet" not in denoiser_names():
        pytest.skip("the learned denoiser is not in this build")
    _, A, noise, y = deblurring
    base = '{"iterations": 2, "n_samples": 2, "start": "richardson_lucy"}'
    # diffpir's empty λ is its start's (1.5 after Richardson–Lucy): the members span 1.5 ÷/× lam_spread
    rec = ni.reconstruct(y, A, "ensemble", noise, base_method="diffpir", vary="lam", n_samples=3, lam_spread=2.0,
                         base_params=base, seed=0)
    np.testing.assert_allclose(rec.info["member_lams"], [0.75, 1.5, 3.0])
    assert np.isfinite(rec.mean).all() and rec.std.max() > 0
    # a span leaving diffpir's λ range [1e-3, 1e4] names lam_spread (it failed inside a member, on 'lam')
    with pytest.raises(ValueError, match="lam_spread=1e\\+06"):
        ni.reconstruct(y, A, "ensemble", noise, base_method="diffpir", vary="lam", n_samples=2, lam_spread=1e6,
                       base_params=base)
