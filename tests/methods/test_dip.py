import numpy as np
import pytest
import torch

import napari_invimg as ni
from napari_invimg.methods.dip import StoppingRule
from napari_invimg.operators.base import LinearOperator, Operator


@pytest.fixture(scope="module")
def denoising():
    x = ni.datasets.fluorescence((48, 48), seed=1)
    A = ni.operators.Identity(x.shape)
    noise = ni.noise.Gaussian(0.1)
    return x, A, noise, ni.simulate(x, A, noise, seed=0)


def test_dip_improves_on_the_measurement(denoising):
    x, A, noise, y = denoising
    rec = ni.reconstruct(y, A, "dip", noise, iterations=100, window=20, seed=0)
    assert rec.mean.shape == x.shape and rec.mean.dtype == np.float32
    assert ni.metrics.psnr(rec.mean, x) > ni.metrics.psnr(y, x) + 2.0
    assert len(rec.info["history"]["loss"]) == rec.info["iterations"]
    assert rec.info["uncertainty"] is None


def test_discrepancy_stops_early_and_says_why(denoising):
    _x, A, noise, y = denoising
    rec = ni.reconstruct(y, A, "dip", noise, iterations=300, stop="discrepancy", tau=1.6, window=10)
    assert rec.info["stopped"].startswith("discrepancy")
    assert rec.info["iterations"] < 300
    assert rec.info["stop_iteration"] == rec.info["iterations"]
    assert rec.info["history"]["misfit"][-1] <= 1.6


def test_variance_rule_selects_the_minimum_and_waits_for_patience():
    its = np.arange(1, 401)
    history = {"misfit": list(np.full(400, 5.0)), "variance": list((its - 150.0) ** 2 + 1.0)}
    rule = StoppingRule.replay(history, "auto", tau=1.0, window=20, patience=100)
    assert rule.done and rule.selected == 150 and rule.reason.startswith("running variance")
    # discrepancy first when the misfit reaches τ before the variance minimum is confirmed
    history["misfit"][99:] = [0.9] * 301
    rule = StoppingRule.replay(history, "auto", tau=1.0, window=20, patience=100)
    assert rule.selected == 100 and rule.reason.startswith("discrepancy")
    rule = StoppingRule.replay(history, "none")
    assert not rule.done and rule.selected == 400 and rule.reason.startswith("maximum")
    with pytest.raises(ValueError, match="stop must be"):
        StoppingRule("sometimes", 1.0, 10, 10)


def test_cancel_keeps_the_selected_iterate(denoising):
    x, A, noise, y = denoising

    def progress(i, total, preview):
        return i < 25

    with pytest.raises(ni.Cancelled) as caught:
        ni.reconstruct(y, A, "dip", noise, iterations=500, progress=progress)
    partial = caught.value.partial
    assert partial is not None and partial.mean.shape == x.shape
    assert np.isfinite(partial.mean).all() and partial.info["cancelled"]
    assert partial.info["iteration"] == 25  # the running mean kept just before step 25 was refused


def test_deep_decoder_denoises(denoising):
    x, A, noise, y = denoising
    rec = ni.reconstruct(y, A, "deep_decoder", noise, iterations=150, channels=16, levels=3, lr=0.02,
                         window=20)
    assert rec.info["parameters"] < x.size
    assert ni.metrics.psnr(rec.mean, x) > ni.metrics.psnr(y, x) + 2.0


def test_dip_3d():
    x = ni.datasets.fluorescence((8, 24, 24), seed=0)
    A = ni.operators.Blur(ni.psf.gaussian((3, 5, 5), 1.0), x.shape)
    noise = ni.noise.PoissonGaussian(gain=0.01, sigma=0.01)
    y = ni.simulate(x, A, noise)
    rec = ni.reconstruct(y, A, "dip", noise, iterations=15, depth=2, width=4)
    assert rec.mean.shape == x.shape and (rec.mean >= 0).all()


class _UnitaryFFT(LinearOperator):
    """Complex images to their orthonormal 2D Fourier transform (an MRI-like operator for the test)."""

    in_complex = out_complex = True

    def __init__(self, shape):
        super().__init__(shape, shape)

    def _forward(self, x):
        return torch.fft.fft2(x, norm="ortho")

    def _adjoint(self, y):
        return torch.fft.ifft2(y, norm="ortho")

    def _params(self):
        return {"shape": self.in_shape}


class _Saturating(Operator):
    """Non-linear detector response ``A(x) = x / (1 + x)`` (no adjoint)."""

    def __init__(self, shape):
        super().__init__(shape, shape)

    def _forward(self, x):
        return x / (1 + x)

    def _params(self):
        return {"shape": self.in_shape}


def test_complex_images_and_nonlinear_operators():
    x = ni.datasets.fluorescence((24, 24), seed=2) * np.exp(1j * 0.5)
    A = _UnitaryFFT(x.shape)
    noise = ni.noise.Gaussian(0.02)
    y = ni.simulate(x.astype(np.complex64), A, noise)
    rec = ni.reconstruct(y, A, "dip", noise, iterations=40, stop="none", depth=2, width=8)
    assert np.iscomplexobj(rec.mean) and rec.mean.shape == x.shape
    misfit = rec.info["history"]["misfit"]
    assert misfit[-1] < 0.2 * misfit[0]

    B = _Saturating((24, 24))
    xr = 2 * ni.datasets.fluorescence((24, 24), seed=3)
    yr = ni.simulate(xr, B, noise, seed=1)
    assert "dip" in ni.methods(B) and "richardson_lucy" not in ni.methods(B)
    rec = ni.reconstruct(yr, B, "dip", noise, iterations=40, stop="none", depth=2, width=8)
    misfit = rec.info["history"]["misfit"]
    assert misfit[-1] < 0.2 * misfit[0]


def test_dip_family_is_not_offered_on_mri_kspace():
    from napari_invimg import mri
    from napari_invimg.methods import registry

    A = mri.CartesianMRI(np.ones((16, 16), bool), coil_maps=np.ones((2, 16, 16), np.complex64) / np.sqrt(2))
    offered = ni.methods(A)
    for name in ("dip", "deep_decoder", "bayes_dip", "mc_dropout_dip"):
        assert "not offered on MRI k-space" in registry.get(name).supports(A)
        assert "not offered on MRI k-space" in registry.get(name).supports(mri.CartesianMRI)
        assert name not in offered
    assert "tv" in offered


def test_gradient_preconditioner_is_a_symmetric_positive_filter_with_unit_gain_at_dc():
    from napari_invimg.methods.dip import gradient_preconditioner

    gen = torch.Generator().manual_seed(0)
    for shape, psf in (((20, 14), ni.psf.gaussian((7, 7), sigma=1.5)), ((6, 10, 8), ni.psf.gaussian((3, 5, 5), sigma=1.0))):
        for boundary in ("reflect", "circular"):
            A = ni.operators.Blur(psf, shape, boundary=boundary)
            P = gradient_preconditioner(A, 0.1)
            u, v = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
            assert float((P(u) * v).sum()) == pytest.approx(float((u * P(v)).sum()), rel=1e-4)
            assert float((P(u) * u).sum()) > 0
            # attenuated frequencies are amplified, never more than (1 + ε)^½ / ε^½
            assert 1.0 < float(P(u).norm() / u.norm()) < (1.1 / 0.1) ** 0.5
            if boundary == "circular":
                torch.testing.assert_close(P(torch.ones(shape)), torch.ones(shape), atol=1e-5, rtol=0)
    # nothing to precondition: a flat transfer function, an operator without a circulant model, ε = 0
    assert gradient_preconditioner(ni.operators.Identity((8, 8)), 0.1) is None
    assert gradient_preconditioner(ni.operators.Blur(ni.psf.gaussian((5, 5), sigma=1.0), (8, 8)), 0.0) is None
    assert gradient_preconditioner(ni.operators.Inpainting(np.ones((8, 8), bool)), 0.1) is None


def test_preconditioned_dip_fits_a_blur_sooner_and_leaves_denoising_unchanged(denoising):
    x, A, noise, y = denoising
    kw = {"iterations": 20, "stop": "none", "seed": 0, "width": 8, "depth": 3}
    np.testing.assert_array_equal(ni.reconstruct(y, A, "dip", noise, precondition=0.1, **kw).mean,
                                  ni.reconstruct(y, A, "dip", noise, precondition=0.0, **kw).mean)
    B = ni.operators.Blur(ni.psf.gaussian((9, 9), sigma=2.0), x.shape)
    noise = ni.noise.Gaussian(0.01)
    yb = ni.simulate(x, B, noise, seed=0)
    kw["iterations"] = 120
    misfit = {eps: ni.reconstruct(yb, B, "dip", noise, precondition=eps, **kw).info["history"]["misfit"]
              for eps in (0.0, 0.1)}
    assert np.isfinite(misfit[0.1]).all()
    assert np.mean(misfit[0.1][-20:]) < 0.95 * np.mean(misfit[0.0][-20:])


def test_discrepancy_target_is_the_misfit_expected_at_the_noise_level():
    """At a few photons the mean Poisson deviance of the truth is above 1: τ = 1 alone would ask for a fit into the
    noise. The rule's target is τ × ``noise.expected_misfit`` (exactly τ for Gaussian noise), and the method stops
    where a replay of its logged misfits with that target stops."""
    x = ni.datasets.fluorescence((32, 32), seed=2)
    A = ni.operators.Identity(x.shape)
    noise = ni.noise.PoissonGaussian(gain=0.005, sigma=0.01)  # RESULTS §4's camera: dark pixels ≈ 4 photons
    y = ni.simulate(x, A, noise, seed=0)
    kw = {"iterations": 80, "window": 10, "depth": 2, "width": 8, "lr": 0.05, "seed": 0}
    path = ni.reconstruct(y, A, "dip", noise, stop="none", **kw)
    target = path.info["discrepancy_target"]
    assert target == pytest.approx(noise.expected_misfit(torch.as_tensor(y))) and target > 1.03
    tau = 1.02 * min(path.info["history"]["misfit"][30:]) / target  # a τ that the path meets after the window
    replayed = StoppingRule.replay(path.info["history"], "discrepancy", tau=tau * target, window=10)
    assert replayed.done and replayed.reason.startswith("discrepancy")
    stopped = ni.reconstruct(y, A, "dip", noise, stop="discrepancy", tau=tau, **kw)
    assert stopped.info["stopped"].startswith("discrepancy")
    assert stopped.info["stop_iteration"] == replayed.selected
    assert ni.reconstruct(y, ni.operators.Identity(x.shape), "dip", ni.noise.Gaussian(0.1), iterations=3,
                          tau=1.3).info["discrepancy_target"] == 1.3


def test_variance_margin_stops_a_slowly_falling_variance():
    """A running variance that keeps falling by 0.2 % per 10 iterations (the preconditioned blur path) never stops the
    plain rule; with ``margin`` 0.02 a new minimum must be 2 % lower, so the rule selects the last such one and stops
    ``patience`` later. ``dip`` uses margin 0.02, patience 150; the other methods keep the plain rule."""
    its = np.arange(1, 1001)
    history = {"misfit": [5.0] * 1000, "variance": list(0.9998 ** its)}
    assert not StoppingRule.replay(history, "auto", window=20, patience=50).done
    rule = StoppingRule.replay(history, "auto", window=20, patience=50, margin=0.02)
    assert rule.done and rule.reason.startswith("running variance")
    assert rule.selected == 21  # the next minimum 2 % lower would come ~100 iterations later, after the patience
    defaults = {p["name"]: p["default"] for p in ni.method_info("dip")["parameters"]}
    assert defaults["margin"] == 0.02 and defaults["patience"] == 150
    assert "margin" not in {p["name"] for p in ni.method_info("deep_decoder")["parameters"]}


def test_half_resolution_dip_fits_a_blur_with_a_half_size_network():
    """``resolution="half"``: the full network's coarser levels run on a half-size input (smooth maps upsampled and
    mixed at full resolution, plus a sub-pixel residual), fit the blurred data about as well as the full network in
    the same iterations and return a non-negative full-size image, in 2D and 3D; the default stays the full network."""
    x = ni.datasets.fluorescence((33, 40), seed=1)  # odd size: the half grid is rounded up, the image cropped
    A = ni.operators.Blur(ni.psf.gaussian((9, 9), sigma=2.0), x.shape)
    noise = ni.noise.Gaussian(0.01)
    y = ni.simulate(x, A, noise, seed=0)
    kw = {"iterations": 150, "stop": "none", "seed": 0, "width": 8, "depth": 3}
    half = ni.reconstruct(y, A, "dip", noise, resolution="half", **kw)
    assert half.mean.shape == x.shape and (half.mean >= 0).all() and np.isfinite(half.mean).all()
    misfit = half.info["history"]["misfit"]
    assert np.mean(misfit[-10:]) < 0.2 * misfit[0]
    full = ni.reconstruct(y, A, "dip", noise, **kw)
    assert ni.metrics.psnr(half.mean, x) > max(ni.metrics.psnr(y, x) + 1.0, ni.metrics.psnr(full.mean, x) - 0.5)
    # the network: the full one's levels below full resolution on a half-size input, 8 smooth + 4 sub-pixel maps
    from napari_invimg.methods.dip import DIP, HALF_SMOOTH, DIPProblem
    from napari_invimg.nets.dip import HalfResolution

    problem = DIPProblem.for_operator(torch.as_tensor(y), A, noise, True)
    net, in_shape = DIP().build(problem, 16, 4, "half")
    assert isinstance(net, HalfResolution) and in_shape == (8, 17, 20)
    assert [d[1][0].out_channels for d in net.net.down] == [16, 32, 64] and net.net.head.out_channels == HALF_SMOOTH + 4
    assert net(torch.rand(1, *in_shape)).shape == (1, 1, 33, 40)
    defaults = {p["name"]: p["default"] for p in ni.method_info("dip")["parameters"]}
    assert defaults["resolution"] == "full"
    x3 = ni.datasets.fluorescence((9, 14, 15), seed=0)
    B = ni.operators.Blur(ni.psf.gaussian((3, 5, 5), 1.0), x3.shape)
    y3 = ni.simulate(x3, B, noise, seed=0)
    rec3 = ni.reconstruct(y3, B, "dip", noise, iterations=10, depth=2, width=4, resolution="half")
    assert rec3.mean.shape == x3.shape and np.isfinite(rec3.mean).all()


@pytest.mark.parametrize("resolution", ["full", "half"])
def test_dip_takes_odd_thin_and_one_slice_images_and_refuses_too_small_ones_clearly(resolution):
    """Odd sizes, one-pixel-high images and one-slice stacks reconstruct at their own size; an image too small for the
    network's levels is refused with a ValueError that says to lower ``depth`` (not a torch error)."""
    noise = ni.noise.Gaussian(0.05)
    kw = {"iterations": 3, "width": 4, "resolution": resolution}
    for shape, depth in (((63, 65), 4), ((1, 40), 4), ((2, 40), 3), ((1, 12, 14), 2), ((8, 8), 2)):
        y = np.random.default_rng(0).uniform(0.2, 1.0, shape).astype(np.float32)
        rec = ni.reconstruct(y, ni.operators.Identity(shape), "dip", noise, depth=depth, **kw)
        assert rec.mean.shape == shape and np.isfinite(rec.mean).all(), shape
    y = np.random.default_rng(0).uniform(0.2, 1.0, (8, 8)).astype(np.float32)
    for method in ("dip", "bayes_dip"):
        extra = kw if method == "dip" else {"iterations": 3, "width": 4, "posterior_iterations": 2, "n_samples": 2}
        with pytest.raises(ValueError, match="too small for .* levels.*depth"):
            ni.reconstruct(y, ni.operators.Identity((8, 8)), method, noise, depth=4, **extra)
