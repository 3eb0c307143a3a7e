import numpy as np
import pytest

import napari_invimg as ni


@pytest.fixture(scope="module")
def blurred():
    x = ni.datasets.fluorescence((96, 96), seed=4)
    A = ni.operators.Blur(ni.psf.gaussian((11, 11), 1.6), x.shape)
    noise = ni.noise.PoissonGaussian(0.005, 0.005)
    return x, A, noise, ni.simulate(x, A, noise, seed=1)


@pytest.mark.parametrize("method", ["wiener", "richardson_lucy", "tikhonov_cg"])
def test_deconvolution_beats_the_measurement(blurred, method):
    x, A, noise, y = blurred
    rec = ni.reconstruct(y, A, method, noise=noise)
    assert rec.mean.shape == x.shape and rec.mean.dtype == np.float32
    assert ni.metrics.psnr(rec.mean, x) > ni.metrics.psnr(y, x) + 1.0
    assert rec.info["method"] == method and rec.info["uncertainty"] is None
    # with the noise estimated from the data the result stays good
    rec2 = ni.reconstruct(y, A, method)
    assert rec2.info["noise_source"] == "estimated"
    assert ni.metrics.psnr(rec2.mean, x) > ni.metrics.psnr(y, x) + 0.5


def test_richardson_lucy_stops_on_the_discrepancy(blurred):
    x, A, noise, y = blurred
    rec = ni.reconstruct(y, A, "richardson_lucy", noise=noise, iterations=500)
    assert rec.info["iterations"] < 500
    assert "discrepancy" in rec.info["stopped"]
    assert rec.mean.min() >= 0


def test_3d_stack_and_inpainting_and_downsampling():
    x = ni.datasets.fluorescence((12, 32, 32), seed=0)
    A = ni.operators.Blur(ni.psf.gaussian((5, 7, 7), (1.0, 1.2, 1.2)), x.shape)
    y = ni.simulate(x, A, ni.noise.Gaussian(0.01), seed=0)
    rec = ni.reconstruct(y, A, "tikhonov_cg", noise=ni.noise.Gaussian(0.01))
    assert ni.metrics.psnr(rec.mean, x) > ni.metrics.psnr(y, x)
    x2 = ni.datasets.fluorescence((64, 64), seed=0)
    D = ni.operators.Downsampling(x2.shape, factor=2)
    y2 = ni.simulate(x2, D, ni.noise.Gaussian(0.005), seed=0)
    rec2 = ni.reconstruct(y2, D, "richardson_lucy", noise=ni.noise.Gaussian(0.005))
    assert rec2.mean.shape == x2.shape


def test_parameter_validation_and_operator_support():
    A = ni.operators.CompressedSensing((16, 16), m=100)
    y = np.zeros(100, dtype=np.float32)
    with pytest.raises(ValueError, match="works with"):
        ni.reconstruct(y, A, "richardson_lucy", noise=ni.noise.Gaussian(0.1))
    B = ni.operators.Identity((16, 16))
    with pytest.raises(ValueError, match="no parameter"):
        ni.reconstruct(np.ones((16, 16)), B, "wiener", noise=ni.noise.Gaussian(0.1), bogus=1)
    with pytest.raises(ValueError, match="≥"):
        ni.reconstruct(np.ones((16, 16)), B, "richardson_lucy", noise=ni.noise.Gaussian(0.1), iterations=0)
    with pytest.raises(ValueError, match="Unknown method"):
        ni.reconstruct(np.ones((16, 16)), B, "nope")


def test_progress_cancel_keeps_the_best_iterate(blurred):
    x, A, noise, y = blurred
    seen = []

    def progress(i, n, preview):
        seen.append(i)
        return i < 3

    with pytest.raises(ni.Cancelled) as err:
        ni.reconstruct(y, A, "richardson_lucy", noise=noise, stop="none", progress=progress)
    assert seen == [1, 2, 3]
    partial = err.value.partial
    assert partial is not None and partial.mean.shape == x.shape and partial.info["cancelled"]


def test_method_info_describes_parameters():
    info = ni.method_info("richardson_lucy")
    names = [p["name"] for p in info["parameters"]]
    assert "iterations" in names and info["returns_std"] is False
    assert set(["wiener", "richardson_lucy", "tikhonov_cg"]) <= set(ni.methods())
    assert "richardson_lucy" not in ni.methods(ni.operators.CompressedSensing((8, 8), m=10))
