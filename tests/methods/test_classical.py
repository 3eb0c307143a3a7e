import numpy as np
import pytest
import torch

import napari_invimg as ni

#: the reference tests feed continuous test images to a Poisson model on purpose (the loop's arithmetic, not the
#: counts, is what they compare); the count check has its own test in tests/test_validation.py
pytestmark = pytest.mark.filterwarnings("ignore:A pure Poisson model:UserWarning")


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



def test_richardson_lucy_returns_the_point_whose_fit_reached_the_noise_level(blurred):
    """On a discrepancy stop RL returns the extrapolated point whose deviance it measured at or below τ (before
    2026-12-08: the iterate before it, whose fit was never measured), and a run of n iterations returns what its n-th
    preview showed (the point extrapolated after iteration n)."""
    x, _, noise, _ = blurred
    A = ni.operators.Blur(ni.psf.gaussian((11, 11), 1.6), x.shape, boundary="reflect")  # symmetric: cosine transform
    y = ni.simulate(x, A, noise, seed=1)
    rec = ni.reconstruct(y, A, "richardson_lucy", noise=noise, object_domain="boundary")  # the object is the image
    assert rec.info["stopped"].startswith("discrepancy") and rec.info["result_weight"] > 0.1
    fit = noise.misfit(torch.from_numpy(y), A.apply(torch.from_numpy(rec.mean)))
    assert fit == pytest.approx(rec.info["history"]["misfit"][-1], rel=1e-3) and fit <= 1.0
    previews = []
    ni.reconstruct(y, A, "richardson_lucy", noise=noise, iterations=6, stop="none",
                   progress=lambda i, n, p: previews.append(np.array(p, copy=True)))
    four = ni.reconstruct(y, A, "richardson_lucy", noise=noise, iterations=4, stop="none")
    np.testing.assert_allclose(four.mean, previews[3], rtol=1e-6, atol=1e-7)
    assert np.abs(previews[4] - previews[3]).max() > 1e-3  # (the previews move)

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


def _reference_grid_operators(psf: np.ndarray, grid: tuple[int, ...], shape: tuple[int, ...]):
    """The blur from the padded ``grid`` to the data (the centre of the full linear convolution) and its adjoint,
    written independently of the package: scipy, float64, direct convolutions, no FFT."""
    import scipy.signal

    k = np.array(psf.shape) // 2
    crop = tuple(slice(2 * b, 2 * b + n) for b, n in zip(k, shape))

    def forward(x):
        return scipy.signal.convolve(x, psf, mode="full", method="direct")[crop]

    def adjoint(r):
        full = np.zeros(tuple(g + s - 1 for g, s in zip(grid, psf.shape)))
        full[crop] = r
        return scipy.signal.correlate(full, psf, mode="valid", method="direct")

    return forward, adjoint


def _reference_padded_grid_rl(y: np.ndarray, psf: np.ndarray, grid: tuple[int, int], c: float, iterations: int,
                              relax: tuple[float, int] = (1.0, 0)):
    """Bertero & Boccacci (2005) RL written independently: the object on ``grid``, the data the centre of the
    full linear convolution (scipy, float64, no FFT); x ← x · (Aᵀ(y/Ax) / Aᵀ1)^ω on pixels with Aᵀ1 > 1e-6 max,
    ω = ``relax[0]`` in the first ``relax[1]`` iterations (over-relaxed steps), then 1."""
    forward, adjoint = _reference_grid_operators(psf, grid, y.shape)
    norm = adjoint(np.ones_like(y))
    support = norm > 1e-6 * norm.max()
    yc = np.clip(y + c, 0, None)
    x = np.where(support, max(yc.mean(), 1e-6), 0.0)
    for k in range(1, iterations + 1):
        model = np.maximum(forward(x) + c, 1e-12)
        correction = np.maximum(adjoint(yc / model) / np.where(support, norm, 1.0), 0.0)
        x = np.where(support, x * correction ** (relax[0] if k <= relax[1] else 1.0), 0.0)
    return x


@pytest.mark.parametrize("boundary, relax", [("reflect", (2.0, 3)), ("zero", (2.0, 3)), ("reflect", (1.0, 0)),
                                             ("zero", (1.5, 5))])
def test_richardson_lucy_on_the_padded_grid_equals_a_reference(boundary, relax):
    rng = np.random.default_rng(3)
    psf = ni.psf.gaussian((7, 5), 1.3).astype(np.float64)
    psf /= psf.sum()
    y = rng.uniform(0.2, 1.0, (20, 23))
    A = ni.operators.Blur(psf, y.shape, boundary=boundary)
    rec = ni.reconstruct(y.astype(np.float32), A, "richardson_lucy", noise=ni.noise.Poisson(1.0), iterations=8,
                         stop="none", acceleration=False, offset=0.05, object_domain="padded",
                         relaxation=relax[0], relaxed_iterations=relax[1])
    ref = _reference_padded_grid_rl(y, psf, A.grid, 0.05, 8, relax)
    window = tuple(slice(b, b + n) for b, n in zip(A.before, y.shape))
    np.testing.assert_allclose(rec.mean, ref[window], rtol=2e-4, atol=1e-6)
    assert "padded grid" in rec.info["object_domain"]
    # accelerated, it fits the data at least as well in the same number of iterations
    fast = ni.reconstruct(y.astype(np.float32), A, "richardson_lucy", noise=ni.noise.Poisson(1.0), iterations=8,
                          stop="none", offset=0.05, object_domain="padded", relaxation=relax[0],
                          relaxed_iterations=relax[1])
    assert fast.info["history"]["misfit"][-1] <= rec.info["history"]["misfit"][-1] + 1e-6

    # the operator's own boundary model on the field of view stays available
    own = ni.reconstruct(y.astype(np.float32), A, "richardson_lucy", noise=ni.noise.Poisson(1.0), iterations=8,
                         stop="none", acceleration=False, offset=0.05, object_domain="boundary",
                         relaxation=relax[0], relaxed_iterations=relax[1])
    expected = "cosine transform" if boundary == "reflect" else "the operator's domain"  # the PSF is symmetric
    assert expected in own.info["object_domain"] and own.mean.shape == y.shape
    assert np.abs(own.mean - rec.mean).max() > 1e-4  # a different model near the borders
    # the fast deviance (log + dot, the noise model's shift) equals noise.misfit's at the flat first iterate,
    # which both models blur to the same flat image under the reflect boundary
    if boundary == "reflect":
        assert rec.info["history"]["misfit"][0] == pytest.approx(own.info["history"]["misfit"][0], rel=1e-4)


def _reference_accelerated_rl(y, psf, grid, c, shift, gain, iterations, operators=None, relax=(1.0, 0)):
    """Biggs–Andrews accelerated RL on the padded grid (float64, direct convolutions), with the mean Poisson
    deviance of the shifted data y + s against the model A v + c − (c − s) at each extrapolated point v.
    ``operators``: (forward, adjoint) of another model (the object then lives on the data's grid). The first
    ``relax[1]`` steps are over-relaxed, x ← v · (Aᵀ(y/Av)/Aᵀ1)^ω with ω = ``relax[0]``, without extrapolation; the
    next one extrapolates with the fixed weight 0.5. The result is the point extrapolated after the last iteration
    with the weight the next iteration would take (returned with the deviances, the weights and that weight)."""
    forward, adjoint = operators or _reference_grid_operators(psf, grid, y.shape)
    norm = adjoint(np.ones_like(y))
    support = norm > 1e-6 * norm.max()
    yc = np.clip(y + c, 0, None)
    counts = np.clip(y + shift, 0, None)
    x = np.where(support, yc.mean(), 0.0)
    x_prev, steps, deviances, alphas = x, [], [], []

    def weight(k):
        if relax[0] != 1.0 and k <= relax[1] + 1:  # none during the relaxed steps, then a fixed 0.5 once
            return 0.5 if k == relax[1] + 1 else 0.0
        if len(steps) >= 2:
            return float(np.clip(np.vdot(steps[-1], steps[-2]) / np.vdot(steps[-2], steps[-2]), 0.0, 0.95))
        return 0.0

    for k in range(1, iterations + 1):
        alpha = weight(k)
        v = np.maximum(x + alpha * (x - x_prev), 1e-12) if alpha > 0 else x
        model = forward(v) + c
        b = model - (c - shift)
        deviances.append(2 * np.sum(np.where(counts > 0, counts * np.log(np.where(counts > 0, counts, 1) / b), 0)
                                    - counts + b) / (gain * y.size))
        alphas.append(alpha)
        correction = np.maximum(adjoint(yc / model) / np.where(support, norm, 1.0), 0.0)
        x_new = np.where(support, v * correction ** (relax[0] if k <= relax[1] else 1.0), 0.0)
        steps.append(x_new - v)
        x_prev, x = x, x_new
    alpha = weight(iterations + 1)
    result = np.maximum(x + alpha * (x - x_prev), 1e-12) if alpha > 0 else x
    return result, np.array(deviances), np.array(alphas), alpha


@pytest.mark.parametrize("noise, offset", [(ni.noise.Poisson(0.01), None),  # the RL offset is the noise model's
                                           (ni.noise.PoissonGaussian(0.01, 0.02), 0.1)])  # it is not
@pytest.mark.parametrize("relaxation", [1.0, 2.0])
def test_accelerated_richardson_lucy_and_its_deviance_equal_a_reference(noise, offset, relaxation):
    rng = np.random.default_rng(5)
    psf = ni.psf.gaussian((7, 5), 1.3).astype(np.float64)
    psf /= psf.sum()
    y = rng.uniform(0.2, 1.0, (20, 23))
    A = ni.operators.Blur(psf, y.shape, boundary="reflect")
    rec = ni.reconstruct(y.astype(np.float32), A, "richardson_lucy", noise=noise, iterations=10, stop="none",
                         offset=offset, object_domain="padded", relaxation=relaxation)
    c = rec.info["offset"]
    shift = noise.sigma_scalar ** 2 / noise.gain
    assert (c == shift) == (offset is None)
    ref, deviances, alphas, last = _reference_accelerated_rl(y, psf, A.grid, c, shift, noise.gain, 10,
                                                             relax=(relaxation, 3))
    history = rec.info["history"]
    assert max(alphas) > 0.2 and last > 0.2  # the extrapolation is exercised, the result's too
    # (the squared steps' float32 rounding, see below, moves the eleventh weight by ~2e-3)
    assert rec.info["result_weight"] == pytest.approx(last, rel=1e-3 if relaxation == 1.0 else 5e-3, abs=1e-4)
    np.testing.assert_allclose(history["alpha"], alphas, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(history["misfit"], deviances, rtol=1e-4)
    window = tuple(slice(b, b + n) for b, n in zip(A.before, y.shape))
    # float32 against float64: the squared (over-relaxed) first steps amplify the rounding of pixels driven near zero
    # (1e-4 of the data's scale: a pixel of 2.5e-3 differs by 7e-5 after 10 iterations; the histories above agree)
    np.testing.assert_allclose(rec.mean, ref[window], rtol=2e-3, atol=1e-5 if relaxation == 1.0 else 1e-4)


def _reference_reflect_operators(psf: np.ndarray, shape: tuple[int, ...]):
    """The reflect blur as an explicit matrix, column by column from ``scipy.ndimage.convolve(mode="reflect")``
    (half-sample mirror, float64, direct), and its transpose: no cosine transform, no symmetry assumed."""
    import scipy.ndimage

    n = int(np.prod(shape))
    matrix = np.empty((n, n))
    for j in range(n):
        unit = np.zeros(n)
        unit[j] = 1.0
        matrix[:, j] = scipy.ndimage.convolve(unit.reshape(shape), psf, mode="reflect").ravel()
    return (lambda x: (matrix @ x.ravel()).reshape(shape)), (lambda r: (matrix.T @ r.ravel()).reshape(shape))


@pytest.mark.parametrize("shape, psf_shape", [((20, 23), (7, 5)), ((6, 9, 8), (3, 5, 3))])
@pytest.mark.parametrize("noise, offset", [(ni.noise.Poisson(0.01), None), (ni.noise.PoissonGaussian(0.01, 0.02), 0.1)])
@pytest.mark.parametrize("relaxation", [1.0, 2.0])
def test_reflect_richardson_lucy_by_the_cosine_transform_equals_a_reference(shape, psf_shape, noise, offset,
                                                                              relaxation, monkeypatch):
    """The default RL for a reflect blur with a symmetric PSF (the operator's own model, diagonal in the DCT-II):
    weights, deviances and result against an independent float64 matrix of ``scipy.ndimage.convolve`` (reflect), on
    the CPU route (scipy's cosine transforms) and the other devices' route (the image mirrored to 2N, FFT)."""
    from napari_invimg.methods import classical

    rng = np.random.default_rng(7)
    grids = np.meshgrid(*[np.arange(k) - k // 2 for k in psf_shape], indexing="ij")
    psf = np.exp(-sum(g.astype(float) ** 2 / (1.0 + i) for i, g in enumerate(grids)))
    psf /= psf.sum()
    y = rng.uniform(0.2, 1.0, shape)
    A = ni.operators.Blur(psf, shape, boundary="reflect")
    shift = noise.sigma_scalar ** 2 / noise.gain
    results = []
    for host in (True, False):
        monkeypatch.setattr(classical, "_host_transforms", lambda device, host=host: host)
        rec = ni.reconstruct(y.astype(np.float32), A, "richardson_lucy", noise=noise, iterations=10, stop="none",
                             offset=offset, object_domain="boundary" if len(shape) == 2 else "auto",
                             relaxation=relaxation)
        assert ("cosine transform" if host else "mirrored FFT") in rec.info["object_domain"]
        results.append(rec)
    c = results[0].info["offset"]
    ref, deviances, alphas, last = _reference_accelerated_rl(y, psf, None, c, shift, noise.gain, 10,
                                                             operators=_reference_reflect_operators(psf, shape),
                                                             relax=(relaxation, 3))
    assert max(alphas) > 0.2 and last > 0.2  # the extrapolation is exercised, the result's too
    for rec in results:
        assert rec.info["result_weight"] == pytest.approx(last, rel=1e-3 if relaxation == 1.0 else 5e-3, abs=1e-4)
        np.testing.assert_allclose(rec.info["history"]["alpha"], alphas, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(rec.info["history"]["misfit"], deviances, rtol=1e-4)
        np.testing.assert_allclose(rec.mean, ref, rtol=2e-3, atol=1e-5 if relaxation == 1.0 else 1e-4)  # (see above)
    # an asymmetric PSF has no cosine-transform diagonal: the padded grid
    skew = psf.copy()
    skew[(0,) * len(shape)] *= 3
    B = ni.operators.Blur(skew, shape, boundary="reflect")
    monkeypatch.setattr(classical, "_host_transforms", lambda device: True)
    assert "padded grid" in ni.reconstruct(y.astype(np.float32), B, "richardson_lucy", noise=noise, iterations=2,
                                           stop="none").info["object_domain"]
    if len(shape) == 2:  # auto in 2D: the padded grid (faster there on 2 cores), the cosine transform only on request
        assert "padded grid" in ni.reconstruct(y.astype(np.float32), A, "richardson_lucy", noise=noise,
                                               iterations=2, stop="none").info["object_domain"]


@pytest.mark.parametrize("shape, psf_shape", [((21,), (6,)), ((20, 23), (7, 4)), ((9, 12, 10), (5, 6, 3))])
@pytest.mark.filterwarnings("ignore:The PSF .* centroid:UserWarning")  # an even-sized PSF on purpose
def test_window_normalization_equals_the_fft_correlation_of_the_window(shape, psf_shape):
    """RL's exact ``Aᴴ1`` on the padded grid (a contraction with one box matrix per axis) against the FFT
    correlation of the field of view's indicator with the PSF (odd and even PSF sizes, 1D to 3D)."""
    import torch

    from napari_invimg.methods.classical import _window_normalization

    psf = np.random.default_rng(0).uniform(0.1, 1.0, psf_shape)
    A = ni.operators.Blur(psf / psf.sum(), shape, boundary="zero")
    indicator = torch.zeros(A.grid, dtype=torch.float64)
    indicator[tuple(slice(b, b + n) for b, n in zip(A.before, shape))] = 1.0
    dims = tuple(range(-len(shape), 0))
    fft = torch.fft.irfftn(torch.fft.rfftn(indicator, dim=dims) * A.otf.conj().to(torch.complex128), s=A.grid, dim=dims)
    exact = _window_normalization(A)
    assert exact.shape == tuple(A.grid)
    np.testing.assert_allclose(exact, fft.numpy(), atol=1e-6)
    assert exact.max() == pytest.approx(1.0) and (exact == 0).any()  # full reach inside, none in the grid's margin


def test_accelerated_rl_runs_on_shapes_whose_extrapolated_point_is_strided():
    """48×40 data with a 7×7 PSF (the CLI tests' case) once raised in the Biggs–Andrews step (a `.view` of a strided
    point); the accelerated run must finish and fit the data better than its start."""
    x = ni.datasets.fluorescence((48, 40), seed=3).astype(np.float32)
    A = ni.operators.Blur(ni.psf.gaussian((7, 7), 1.4), x.shape)
    y = ni.simulate(x, A, ni.noise.PoissonGaussian(0.02, 0.01), seed=1).astype(np.float32)
    rec = ni.reconstruct(y, A, "richardson_lucy", iterations=10, stop="none")
    assert rec.mean.shape == x.shape and np.isfinite(rec.mean).all()
    assert ni.metrics.psnr(rec.mean, x) > ni.metrics.psnr(y, x)


def test_poisson_gaussian_offset_is_the_noise_models_shift():
    from napari_invimg.methods.classical import RichardsonLucy

    shift = 0.02**2 / 0.01
    # a read-noise outlier below −σ²/g no longer raises the background: the data below it count as zero, as in the
    # noise model's own likelihood and deviance
    assert RichardsonLucy.offset_for(-0.5, ni.noise.PoissonGaussian(0.01, 0.02)) == pytest.approx(shift)
    assert RichardsonLucy.offset_for(0.3, ni.noise.PoissonGaussian(0.01, 0.02)) == pytest.approx(shift)
    # without a shift (pure Poisson, Gaussian) the offset still lifts the data to zero
    assert RichardsonLucy.offset_for(-0.5, ni.noise.Poisson(0.01)) == pytest.approx(0.5, rel=1e-5)
    assert RichardsonLucy.offset_for(-0.5, ni.noise.Gaussian(0.1)) == pytest.approx(0.5, rel=1e-5)
    assert RichardsonLucy.offset_for(0.3, ni.noise.Poisson(0.01)) == 0.0


def test_richardson_lucy_grid_is_the_shorter_fast_length_and_changes_nothing(monkeypatch):
    from napari_invimg.methods import classical

    rng = np.random.default_rng(3)
    psf = ni.psf.gaussian((7, 7), 1.2)
    y = rng.uniform(0.2, 1.0, (49, 30)).astype(np.float32)
    A = ni.operators.Blur(psf, y.shape, boundary="reflect")
    assert A.grid == (60, 36) and classical._rl_grid(A) == (56, 36)  # 55 → 56 = 2³·7 instead of 60
    assert classical._even_smooth7(542) == 560 and classical._even_smooth7(286) == 288
    kwargs = dict(noise=ni.noise.Poisson(0.01), iterations=8, stop="none", object_domain="padded")
    short = ni.reconstruct(y, A, "richardson_lucy", **kwargs)
    assert "(56, 36)" in short.info["object_domain"]
    monkeypatch.setattr(classical, "_rl_grid", lambda op: tuple(op.grid))
    wide = ni.reconstruct(y, A, "richardson_lucy", **kwargs)
    assert "(60, 36)" in wide.info["object_domain"]
    # any grid ≥ n + k − 1 is the same model: equal up to float32 rounding (amplified by the extrapolation on noise)
    np.testing.assert_allclose(short.mean, wide.mean, rtol=1e-3, atol=1e-4 * float(np.abs(wide.mean).max()))
    np.testing.assert_allclose(short.info["history"]["misfit"], wide.info["history"]["misfit"], rtol=1e-4)


def test_richardson_lucy_first_iteration_without_the_forward_convolution(monkeypatch):
    from napari_invimg.methods import classical

    rng = np.random.default_rng(4)
    psf = ni.psf.gaussian((9, 7), 1.5)
    y = rng.uniform(0.2, 1.0, (33, 28)).astype(np.float32)
    for boundary, domain in (("reflect", "padded"), ("circular", "auto"), ("reflect", "boundary")):
        A = ni.operators.Blur(psf, y.shape, boundary=boundary)
        calls = []
        grid = classical._ReflectDCT if domain == "boundary" else classical._BlurGrid
        original = grid._conv
        monkeypatch.setattr(grid, "_conv", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
        rec = ni.reconstruct(y, A, "richardson_lucy", noise=ni.noise.Poisson(0.01), iterations=3, stop="none",
                             object_domain=domain)
        monkeypatch.undo()
        assert len(calls) == 5  # 1 + 2 + 2 convolutions
        # the first misfit equals the deviance of the flat model computed directly
        start = float(y.mean())
        assert rec.info["history"]["misfit"][0] == pytest.approx(
            ni.noise.Poisson(0.01).misfit(torch.from_numpy(y), torch.full(y.shape, start)), rel=1e-4)


def test_richardson_lucy_keeps_two_iterate_buffers_and_extrapolates_in_place(monkeypatch):
    """The loop holds at most two convolution outputs when it convolves (the iterates x_{k−1} and x_{k−2}, the
    latter overwritten by the extrapolated point): the forward model is released before the adjoint convolution and
    the point is extrapolated into x_{k−2}'s buffer rather than a buffer of its own (fewer grid-sized buffers per
    call: fewer first-touch page faults; benchmarks/RESULTS.md §1). Results are unchanged (the references above)."""
    import weakref

    from napari_invimg.methods import classical

    x, noise = ni.datasets.fluorescence((40, 36), seed=2), ni.noise.PoissonGaussian(0.01, 0.01)
    for boundary, domain in (("reflect", "padded"), ("circular", "auto"), ("reflect", "boundary")):
        A = ni.operators.Blur(ni.psf.gaussian((7, 7), 1.4), x.shape, boundary=boundary)
        y = ni.simulate(x, A, noise, seed=3)
        grid = classical._ReflectDCT if domain == "boundary" else classical._BlurGrid
        original, outputs, alive_at_calls, inside = grid._conv, [], [], []

        def conv(self, *a, **k):
            alive_at_calls.append(sum(ref() is not None for ref in outputs))
            out = original(self, *a, **k)
            outputs.append(weakref.ref(out))
            return out

        def progress(i, n, preview):  # the preview is a view of the point: in one of the iterates' buffers
            live = [ref() for ref in outputs if ref() is not None]
            inside.append(any(np.may_share_memory(preview, t.numpy()) for t in live))

        monkeypatch.setattr(grid, "_conv", conv)
        rec = ni.reconstruct(y, A, "richardson_lucy", noise=noise, iterations=8, stop="none", object_domain=domain,
                             progress=progress)
        monkeypatch.undo()
        assert max(rec.info["history"]["alpha"]) > 0.1  # the extrapolation ran
        assert len(alive_at_calls) == 15 and max(alive_at_calls) <= 2, alive_at_calls  # (before: 3)
        assert all(inside), inside  # (before: a separate buffer whenever α > 0)


def test_over_relaxed_first_steps_reach_a_low_count_image_sooner():
    """RL's over-relaxed first steps x ← x · r² (relaxation=2, 3 iterations) come nearer the ground truth after 4 iterations
    than plain RL (ω = 1) on a ~100-photon blurred image, and a relaxation outside [1, 2] is refused."""
    x = ni.datasets.fluorescence((96, 96), seed=11)
    psf = ni.psf.gaussian((15, 15), 2.0)
    A = ni.operators.Blur(psf, x.shape, boundary="reflect")
    noise = ni.noise.PoissonGaussian(gain=0.01, sigma=0.01)
    y = ni.simulate(x, A, noise, seed=12)
    psnr = {rel: ni.metrics.psnr(ni.reconstruct(y, A, "richardson_lucy", noise=noise, iterations=4, stop="none",
                                                relaxation=rel).mean, x) for rel in (1.0, 2.0)}
    assert psnr[2.0] > psnr[1.0] + 0.3
    with pytest.raises(ValueError, match="relaxation"):
        ni.reconstruct(y, A, "richardson_lucy", noise=noise, iterations=2, relaxation=2.5)
