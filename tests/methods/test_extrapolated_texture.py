"""The data-only predictor of the texture a blur removed (benchmarks/bench_bayes_dip.py, helper ``bdip8``): on a
field with a known 1/|k|^α spectrum it recovers α, the cutoff's energy and where the texture is."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

import napari_invimg as ni

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module("bench_bayes_dip")
    finally:
        sys.path.pop(0)


def power_law_field(n: int, alpha: float, seed: int) -> np.ndarray:
    """A Gaussian random field with power spectrum ∝ |k|^−α, unit RMS."""
    rng = np.random.default_rng(seed)
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij"))
    amp = np.where(k > 0, np.maximum(k, 1.0 / n) ** (-alpha / 2), 0.0)
    f = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * amp))
    return f / f.std()


def beyond(x: np.ndarray, kc: float) -> np.ndarray:
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(x.shape[0]), np.fft.fftfreq(x.shape[1]), indexing="ij"))
    return np.real(np.fft.ifft2(np.fft.fft2(x) * (k >= kc)))


def measure(x: np.ndarray, sigma: float, seed: int):
    psf = ni.psf.gaussian((11, 11), sigma=1.5)
    A = ni.operators.Blur(psf, x.shape, boundary="circular")
    return np.asarray(ni.simulate(x.astype(np.float32), A, ni.noise.Gaussian(sigma), seed=seed)), psf


def test_fits_the_slope_and_predicts_the_energy_beyond_the_cutoff(bench):
    x = 0.1 * power_law_field(128, 2.0, seed=0)
    y, psf = measure(x, 0.005, seed=1)
    t2, fit = bench.extrapolated_texture(y, psf, 0.005)
    assert abs(fit["alpha"] - 2.0) < 0.3
    assert 0.1 < fit["kc"] < 0.4
    true = float(np.mean(beyond(x, fit["kc"]) ** 2))
    assert 0.5 < float(t2.mean()) / true < 2.0  # the extrapolation's own scale, no constant fitted
    assert t2.shape == y.shape and np.all(np.isfinite(t2)) and t2.min() >= 0


def test_puts_the_texture_where_it_is(bench):
    x = power_law_field(128, 2.0, seed=3)
    x = 0.1 * x * np.where(np.arange(128) < 64, 3.0, 1.0)[None, :]  # three times the amplitude on the left
    y, psf = measure(x, 0.005, seed=4)
    t2, fit = bench.extrapolated_texture(y, psf, 0.005)
    left, right = t2[:, 8:56].mean(), t2[:, 72:120].mean()
    assert left > 4.0 * right  # 9× in the truth
    b2 = beyond(x, fit["kc"]) ** 2
    assert 0.5 < left / b2[:, 8:56].mean() < 2.0


def test_pure_noise_is_refused(bench):
    y = np.random.default_rng(0).normal(0.0, 0.05, (64, 64))
    with pytest.raises(ValueError, match="Too little signal"):
        bench.extrapolated_texture(y, ni.psf.gaussian((11, 11), sigma=1.5), 0.05)
