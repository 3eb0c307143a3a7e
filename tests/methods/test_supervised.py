"""care and unrolled (ni.train_supervised) and the untrained neural_field: tiny sizes, few steps."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import torch

import napari_invimg as ni
from napari_invimg.methods.supervised import load_supervised

SMALL = dict(width=8, depth=2, patch=32, batch_size=4)


@pytest.fixture(scope="module")
def blur_problem():
    A = ni.operators.Blur(ni.psf.gaussian((9, 9), 1.5), (48, 48))
    noise = ni.noise.PoissonGaussian(0.01, 0.01)
    truth = [ni.datasets.fluorescence((48, 48), seed=s) for s in (30, 31)]
    return A, noise, truth


@pytest.fixture(scope="module")
def care_weights(blur_problem, tmp_path_factory):
    A, noise, truth = blur_problem
    out = tmp_path_factory.mktemp("care") / "care.pt"
    return ni.train_supervised("care", truth=truth, operator=A, noise=noise, steps=60, seed=0, out=out, **SMALL)


def test_seeded_training_reproduces_its_weights(blur_problem, tmp_path):
    A, noise, truth = blur_problem
    paths = [ni.train_supervised("care", truth=truth, operator=A, noise=noise, steps=3, seed=s, out=tmp_path / f"{i}.pt",
                                 **SMALL) for i, s in enumerate((5, 5, 6))]
    blobs = [torch.load(p, weights_only=True)["state_dict"] for p in paths]
    assert all(torch.equal(blobs[0][k], blobs[1][k]) for k in blobs[0])
    assert not all(torch.equal(blobs[0][k], blobs[2][k]) for k in blobs[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.pt", "1.pt", "2.pt"]  # no temporary files left


def test_care_learns_deblurring_and_records_its_training(blur_problem, care_weights):
    A, noise, _ = blur_problem
    x = ni.datasets.fluorescence((48, 48), seed=2)  # held out
    y = ni.simulate(x, A, noise, seed=1)
    rec = ni.reconstruct(y, A, "care", noise=noise, weights=str(care_weights))
    assert rec.info["uncertainty"] == "ensemble" and rec.std.shape == x.shape and np.all(rec.std >= 0)
    assert ni.metrics.psnr(rec.mean, x) > ni.metrics.psnr(y, x) + 1.0
    _, meta = load_supervised(care_weights)
    assert meta["steps"] == 60 and meta["seed"] == 0 and meta["operator"]["type"] == "Blur"
    assert meta["noise"]["type"] == "PoissonGaussian" and len(meta["history"]["loss"]) == 60
    assert meta["history"]["val_psnr"] and "percentiles" in meta["normalization"]
    assert rec.info["operator_matches_training"] is True
    # results do not depend on the data's units
    rec10 = ni.reconstruct(10 * y, A, "care", noise=ni.noise.Gaussian(0.1), weights=str(care_weights))
    np.testing.assert_allclose(rec10.mean, 10 * rec.mean, rtol=1e-3, atol=1e-3 * float(np.abs(rec10.mean).max()))


def test_care_tiles_on_its_grid(blur_problem, care_weights):
    A, noise, _ = blur_problem
    x = ni.datasets.fluorescence((112, 112), seed=4)
    big = ni.operators.Blur(A.psf_array, x.shape)
    y = ni.simulate(x, big, noise, seed=0)
    whole = ni.reconstruct(y, big, "care", noise=noise, weights=str(care_weights))
    tiled = ni.reconstruct(da.from_array(y), A, "care", noise=noise, weights=str(care_weights), tile_shape=(56, 56))
    assert tiled.info["tiling"]["tiles"] == 4 and tiled.info["tiling"]["halo"][0] % 8 == 0
    resolved = tiled.info["tiling"]["resolved_params"]
    # the pilot tile's normalization is used everywhere; the untiled run with the same one agrees
    ref = ni.reconstruct(y, big, "care", noise=noise, weights=str(care_weights), offset=resolved["offset"],
                         scale=resolved["scale"])
    diff = np.abs(np.asarray(tiled.mean) - ref.mean).max() / np.ptp(ref.mean)
    assert diff < 2e-3
    assert ni.metrics.psnr(np.asarray(tiled.mean), x) > ni.metrics.psnr(whole.mean, x) - 0.5


def test_training_cancel_keeps_the_partial_model(blur_problem, tmp_path):
    A, noise, truth = blur_problem
    seen = []

    def progress(step, total, preview, status=None):
        seen.append(status)
        return step < 2

    with pytest.raises(ni.Cancelled) as info:
        ni.train_supervised("care", truth=truth, operator=A, noise=noise, steps=50, out=tmp_path / "c.pt",
                            progress=progress, **SMALL)
    path = info.value.partial
    assert path == tmp_path / "c.pt" and path.is_file()
    _, meta = load_supervised(path)
    assert meta["cancelled"] is True and meta["steps_done"] == 2 and "loss" in seen[0]


def test_acquired_pairs_and_3d(tmp_path):
    rng = np.random.default_rng(0)
    high = ni.datasets.fluorescence((40, 40), seed=1)
    low = (high + 0.1 * rng.standard_normal(high.shape)).astype(np.float32)
    p = ni.train_supervised("care", pairs=[(low, high)], steps=2, out=tmp_path / "pairs.pt", **SMALL)
    rec = ni.reconstruct(low, ni.operators.Identity(low.shape), "care", noise=ni.noise.Gaussian(0.1), weights=str(p))
    assert rec.mean.shape == low.shape and np.isfinite(rec.mean).all()
    stack = np.stack([ni.datasets.fluorescence((32, 32), seed=s) for s in range(6)])
    A3 = ni.operators.Blur(ni.psf.gaussian((3, 5, 5), 1.0), stack.shape)
    noise = ni.noise.Gaussian(0.02)
    p3 = ni.train_supervised("care", truth=[stack], operator=A3, noise=noise, steps=2, out=tmp_path / "3d.pt", **SMALL)
    rec3 = ni.reconstruct(ni.simulate(stack, A3, noise), A3, "care", noise=noise, weights=str(p3))
    assert rec3.mean.shape == stack.shape and rec3.std.shape == stack.shape
    with pytest.raises(ValueError, match="2D"):
        ni.reconstruct(low, ni.operators.Identity(low.shape), "care", noise=noise, weights=str(p3))


def test_bad_input_is_refused(blur_problem, tmp_path):
    A, noise, truth = blur_problem
    with pytest.raises(ValueError, match="care' or 'unrolled"):
        ni.train_supervised("dip", truth=truth, operator=A, noise=noise)
    with pytest.raises(ValueError, match="not both"):
        ni.train_supervised("care", pairs=[(truth[0], truth[0])], truth=truth, operator=A, noise=noise)
    with pytest.raises(ValueError, match="through the forward model"):
        ni.train_supervised("unrolled", pairs=[(truth[0], truth[0])])
    with pytest.raises(OSError, match="does not exist"):
        ni.train_supervised("care", truth=truth, operator=A, noise=noise, out=tmp_path / "no" / "c.pt")
    with pytest.raises(ValueError, match="train_supervised"):
        ni.reconstruct(ni.simulate(truth[0], A, noise), A, "care", noise=noise)


def test_unrolled_blur_and_mri(blur_problem, tmp_path):
    A, noise, truth = blur_problem
    p = ni.train_supervised("unrolled", truth=truth, operator=A, noise=noise, steps=30, out=tmp_path / "u.pt",
                            width=8, iterations=3, patch=32)
    x = ni.datasets.fluorescence((40, 40), seed=2)
    A40 = ni.operators.Blur(A.psf_array, x.shape)  # another image size: the operator given at test time is used
    y = ni.simulate(x, A40, noise, seed=0)
    rec = ni.reconstruct(y, A40, "unrolled", noise=noise, weights=str(p))
    assert ni.metrics.psnr(rec.mean, x) > ni.metrics.psnr(y, x) + 1.0
    phantoms = [ni.mri.brain((32, 32), seed=s) for s in (1, 2)]
    scan = ni.mri.simulate_kspace(ni.mri.brain((32, 32), seed=0), 4, kind="poisson", acceleration=4, seed=0)
    nm = ni.noise.Gaussian(scan.sigma)
    pm = ni.train_supervised("unrolled", truth=phantoms, operator=scan.operator, noise=nm, steps=2,
                             out=tmp_path / "m.pt", width=8, iterations=2)
    recm = ni.reconstruct(scan.kspace, scan.operator, "unrolled", noise=nm, weights=str(pm))
    assert np.iscomplexobj(recm.mean) and recm.mean.shape == (32, 32)
    with pytest.raises(ValueError, match="complex"):
        ni.reconstruct(y, A40, "unrolled", noise=noise, weights=str(pm))


def test_neural_field_frequency_from_the_data_spectrum():
    """The automatic Fourier-feature scale: lower for a smooth image than a detailed one under the same noise, the
    same in other units, converted to the fine grid of a binning operator, the fallback where the data are not an
    image on the field's grid; the run records what it used."""
    from scipy.ndimage import gaussian_filter

    from napari_invimg.methods.neural_field import FALLBACK_FREQUENCY, automatic_frequency, signal_bandwidth

    detailed = ni.datasets.fluorescence((64, 64), seed=2)
    smooth = gaussian_filter(detailed, 3.0)
    smooth = smooth / smooth.max() * detailed.max()
    A, noise = ni.operators.Identity(detailed.shape), ni.noise.Gaussian(0.05)
    f_detailed, how = automatic_frequency(torch.as_tensor(ni.simulate(detailed, A, noise, seed=0)), A, noise)
    f_smooth, _ = automatic_frequency(torch.as_tensor(ni.simulate(smooth, A, noise, seed=0)), A, noise)
    assert f_smooth < 0.7 * f_detailed and "signal bandwidth" in how
    y = ni.simulate(detailed, A, noise, seed=0)
    assert automatic_frequency(torch.as_tensor(250.0 * y), A, ni.noise.Gaussian(250.0 * 0.05))[0] == pytest.approx(f_detailed)
    # white noise alone: the spectrum is at the floor from the first ring on
    white = torch.as_tensor(np.random.default_rng(0).normal(0, 0.05, (64, 64)))
    assert signal_bandwidth(white, 0.05 ** 2) <= 2 / 64
    D = ni.operators.Downsampling((64, 64), factor=2)
    coarse = torch.as_tensor(D.forward(detailed))
    assert automatic_frequency(coarse, D, noise)[0] == pytest.approx(
        automatic_frequency(coarse, ni.operators.Identity((32, 32)), noise)[0] / 2)
    samples = torch.as_tensor(np.random.default_rng(1).normal(0, 1, 100))  # data not on the field's grid
    assert automatic_frequency(samples, A, noise)[0] == FALLBACK_FREQUENCY
    thin = ni.operators.Identity((1, 40))  # an image, but too thin for a spectrum: said so
    f, why = automatic_frequency(torch.ones(1, 40), thin, noise)
    assert f == FALLBACK_FREQUENCY and "fewer than 8" in why
    rec = ni.reconstruct(y, A, "neural_field", noise=noise, iterations=3)
    assert rec.info["frequency"] == pytest.approx(f_detailed) and rec.info["frequency_from"] == how
    assert ni.reconstruct(y, A, "neural_field", noise=noise, iterations=3, frequency=0.05).info["frequency_from"] == "given"


def test_neural_field_fits_upsamples_and_handles_stacks():
    x = ni.datasets.fluorescence((32, 32), seed=1)
    A, noise = ni.operators.Identity(x.shape), ni.noise.Gaussian(0.05)
    y = ni.simulate(x, A, noise, seed=0)
    rec = ni.reconstruct(y, A, "neural_field", noise=noise, iterations=800, members=2)
    assert ni.metrics.psnr(rec.mean, x) > ni.metrics.psnr(y, x) + 2
    # the discrepancy is tested on the members' running means (the last to arrive), which lag behind the iterates;
    # the returned mean of the members then fits at least as well (the misfit is convex)
    h, k = rec.info["history"], rec.info["stop_iteration"]
    assert rec.info["stopped"].startswith("discrepancy") and h["member_misfit"][k - 1] <= 1.0
    assert all(m > 1.0 for m in h["member_misfit"][20:k - 1]) and min(h["misfit"][20:k]) <= 1.0
    assert h["mean_misfit"][k - 1] <= h["member_misfit"][k - 1]
    assert np.isclose(ni.noise.Gaussian(0.05).misfit(torch.as_tensor(y), torch.as_tensor(rec.mean)),
                      h["mean_misfit"][k - 1], rtol=1e-3)
    D = ni.operators.Downsampling((32, 32), factor=2)
    up = ni.reconstruct(D.forward(x), D, "neural_field", noise=noise, iterations=20, upsample=2)
    assert up.mean.shape == (64, 64) and up.info["grid_shape"] == [64, 64]
    stack = np.stack([x, x[::-1], x[:, ::-1]])
    A3 = ni.operators.Identity(stack.shape)
    rec3 = ni.reconstruct(ni.simulate(stack, A3, noise), A3, "neural_field", noise=noise, iterations=5)
    assert rec3.mean.shape == stack.shape and np.isfinite(rec3.mean).all()


def test_neural_field_ensemble_of_independent_fields():
    """members > 1: independent fields (own frequencies and weights), each fitted to the data alone; the mean is
    returned with their spread, labeled an ensemble; the stop tests the returned mean; members=1 is one field."""
    x = ni.datasets.fluorescence((24, 24), seed=1)
    A, noise = ni.operators.Identity(x.shape), ni.noise.Gaussian(0.05)
    y = ni.simulate(x, A, noise, seed=0)
    assert ni.method_info("neural_field")["uncertainty"] == "ensemble"
    # width 64: 60 iterations fit these members into the image (the default 32-unit members are slower to start)
    rec = ni.reconstruct(y, A, "neural_field", noise=noise, iterations=60, members=3, stop="none", seed=2, width=64)
    assert rec.samples.shape == (3, 24, 24) and rec.info["members"] == 3
    np.testing.assert_allclose(rec.mean, rec.samples.mean(0), atol=1e-6)
    np.testing.assert_allclose(rec.std, rec.samples.std(0, ddof=1), rtol=1e-4, atol=1e-7)
    assert np.isfinite(rec.std).all() and rec.std.mean() > 0
    # the members differ (independent draws), and the mean of three beats the average member
    member_psnr = [ni.metrics.psnr(s, x) for s in rec.samples]
    assert max(member_psnr) - min(member_psnr) > 0.01 and ni.metrics.psnr(rec.mean, x) > np.mean(member_psnr)
    assert np.isclose(noise.misfit(torch.as_tensor(y), torch.as_tensor(rec.mean)), rec.info["history"]["mean_misfit"][-1],
                      rtol=1e-3)
    single = ni.reconstruct(y, A, "neural_field", noise=noise, iterations=60, members=1, stop="none", seed=2, width=64)
    assert single.std is None and single.samples is None
    np.testing.assert_array_equal(ni.reconstruct(y, A, "neural_field", noise=noise, iterations=60, members=3,
                                                 stop="none", seed=2, width=64).mean, rec.mean)


def test_neural_field_members_are_narrow_mlps():
    """The default member is a 32-unit MLP (WIDTH): the registry's default, the parameters the run reports (each member
    256 Fourier inputs → 32 → 32 → 32 → 1), and ``width`` still sets it; a narrow ensemble denoises a sparse image."""
    from napari_invimg.methods.neural_field import WIDTH

    assert WIDTH == 32 and {p["name"]: p["default"] for p in ni.method_info("neural_field")["parameters"]}["width"] == WIDTH
    x = ni.datasets.fluorescence((32, 32), seed=5)
    A, noise = ni.operators.Identity(x.shape), ni.noise.Gaussian(0.05)
    y = ni.simulate(x, A, noise, seed=0)

    def count(width, features=128, layers=3):
        dims = [2 * features] + [width] * layers + [1]
        return sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))

    short = ni.reconstruct(y, A, "neural_field", noise=noise, iterations=2, members=3)
    assert short.info["parameters"] == 3 * count(32)
    assert ni.reconstruct(y, A, "neural_field", noise=noise, iterations=2, members=3, width=64).info["parameters"] == 3 * count(64)
    rec = ni.reconstruct(y, A, "neural_field", noise=noise, iterations=1200, members=2, seed=0)
    assert rec.info["stopped"].startswith("discrepancy")
    assert ni.metrics.psnr(rec.mean, x) > ni.metrics.psnr(y, x) + 3


def test_fourier_field_keeps_its_encoding_between_calls(monkeypatch):
    """The fixed Fourier features are computed once per coordinate grid: the same output as computing them afresh, a new
    encoding for other coordinates, for coordinates changed in place and for a changed B; a 60-iteration fit encodes its
    grid once per member; trained encodings (GridField) are not kept."""
    from napari_invimg.nets.field import FourierField, GridField, grid_coordinates

    field = FourierField(2, 1, torch.Generator().manual_seed(0), features=16, width=8)
    r = grid_coordinates((12, 12))
    calls = []
    original = FourierField.encode
    monkeypatch.setattr(FourierField, "encode", lambda self, c: calls.append(1) or original(self, c))
    first = field(r)
    assert torch.equal(field(r[:]), first) and len(calls) == 1  # a view of the same memory: kept
    fresh = field.layers[0](original(field, r))
    for lin in field.layers[1:]:
        fresh = lin(torch.relu(fresh))
    assert torch.equal(first, fresh)
    other = r + 0.5
    at_other = field(other)
    assert not torch.allclose(at_other, first) and len(calls) == 2
    r.add_(0.5)  # changed in place: recomputed
    assert torch.equal(field(r), at_other) and len(calls) == 3
    with torch.no_grad():
        field.B.mul_(2.0)
    field(r)
    assert len(calls) == 4
    grid = GridField(2, 1, torch.Generator().manual_seed(0), (12, 12), features=8, width=8)
    calls.clear()
    grid(r), grid(r)
    assert len(calls) == 2
    x = ni.datasets.fluorescence((24, 24), seed=1)
    A, noise = ni.operators.Identity(x.shape), ni.noise.Gaussian(0.05)
    calls.clear()
    ni.reconstruct(ni.simulate(x, A, noise, seed=0), A, "neural_field", noise=noise, iterations=60, stop="none", members=3)
    assert len(calls) == 3


def test_neural_field_stops_on_the_discrepancy_alone():
    """The default stop is the discrepancy of the members' running means, without DIP's running-variance rule; where
    the noise is given too low the target is never met and the fit runs all its iterations (reported as such)."""
    assert {p["name"]: p["default"] for p in ni.method_info("neural_field")["parameters"]}["stop"] == "discrepancy"
    x = ni.datasets.fluorescence((24, 24), seed=1)
    A, noise = ni.operators.Identity(x.shape), ni.noise.Gaussian(0.05)
    y = ni.simulate(x, A, noise, seed=0)
    rec = ni.reconstruct(y, A, "neural_field", noise=noise, iterations=800, members=2, seed=1)
    assert rec.info["stopped"].startswith("discrepancy") and rec.info["iterations"] == rec.info["stop_iteration"] < 800
    low = ni.reconstruct(y, A, "neural_field", noise=ni.noise.Gaussian(0.005), iterations=40, members=2, seed=1)
    assert low.info["iterations"] == 40 and low.info["stopped"] == "maximum of 40 iterations"
    assert np.isfinite(low.mean).all() and min(low.info["history"]["member_misfit"]) > 1.0


def test_neural_field_siren_and_exponential_output():
    """network="siren" (sine field, first-layer frequency std f), network="grid" (trained feature grids) and
    output="exp" (positive, multiplicative) fit the data, are reproducible for a seed without touching torch's global
    generator, and unknown choices are refused; the grid field runs on stacks."""
    from napari_invimg.nets.field import GridField, SineField

    first = SineField(2, 1, torch.Generator().manual_seed(0), features=4000, frequency=0.05).layers[0].weight
    assert float(first.detach().std()) / (2 * np.pi) == pytest.approx(0.05, rel=0.05)
    x = ni.datasets.fluorescence((24, 24), seed=1)
    A, noise = ni.operators.Identity(x.shape), ni.noise.Gaussian(0.05)
    y = ni.simulate(x, A, noise, seed=0)
    state = torch.random.get_rng_state()
    grid = GridField(2, 1, torch.Generator().manual_seed(0), (24, 24))
    assert [tuple(g.shape[-2:]) for g in grid.grids] == [(6, 6), (6, 6), (6, 6)]  # at most one cell per 4 pixels
    # width 64 (the default before nfield7): 120 iterations of a 32-unit exponential-output field stay below the data
    for kw in ({"network": "siren", "lr": 1e-3}, {"output": "exp", "width": 64}, {"network": "grid", "lr": 2e-3}):
        rec = ni.reconstruct(y, A, "neural_field", noise=noise, iterations=120, seed=3, members=1, **kw)
        again = ni.reconstruct(y, A, "neural_field", noise=noise, iterations=120, seed=3, members=1, **kw)
        assert ni.metrics.psnr(rec.mean, x) > ni.metrics.psnr(y, x) + 0.5, kw
        assert np.array_equal(rec.mean, again.mean) and rec.mean.min() >= 0, kw
    assert torch.equal(torch.random.get_rng_state(), state)
    for bad in ({"network": "hash"}, {"output": "relu"}):
        with pytest.raises(ValueError):
            ni.reconstruct(y, A, "neural_field", noise=noise, iterations=2, **bad)
    stack = np.stack([x, x[::-1]])
    A3 = ni.operators.Identity(stack.shape)
    rec3 = ni.reconstruct(ni.simulate(stack, A3, noise, seed=0), A3, "neural_field", noise=noise, iterations=3,
                          network="grid")
    assert rec3.mean.shape == stack.shape and np.isfinite(rec3.mean).all()


def test_unrolled_refines_a_classical_start(tmp_path):
    """start="wavelet": the untrained network returns the wavelet reconstruction itself; training moves it; a cancel
    while the pool of starts is computed keeps that untrained model."""
    phantoms = [ni.mri.brain((24, 24), seed=s) for s in (1, 2)]
    scan = ni.mri.simulate_kspace(ni.mri.brain((24, 24), seed=0), 2, kind="poisson", acceleration=3, seed=0)
    nm = ni.noise.Gaussian(scan.sigma)
    start = {"wavelet": "haar", "iterations": 40}
    kw = dict(truth=phantoms, operator=scan.operator, noise=nm, width=4, iterations=2, start="wavelet",
              start_params=start, start_pool=1, batch_size=2)
    calls = []

    def cancel_at_second(step, total, preview):
        calls.append(step)
        return len(calls) < 2

    with pytest.raises(ni.Cancelled) as info:
        ni.train_supervised("unrolled", steps=3, out=tmp_path / "c.pt", progress=cancel_at_second, **kw)
    assert calls == [0, 0] and info.value.partial == tmp_path / "c.pt"
    wavelet = ni.reconstruct(scan.kspace, scan.operator, "wavelet", noise=nm, seed=0, **start)
    untrained = ni.reconstruct(scan.kspace, scan.operator, "unrolled", noise=nm, weights=str(info.value.partial))
    assert np.abs(untrained.mean - wavelet.mean).max() < 1e-4 * np.abs(wavelet.mean).max()
    assert untrained.info["start"] == "wavelet" and untrained.info["phases"] == 4  # the phase ensemble keeps x₀
    path = ni.train_supervised("unrolled", steps=3, out=tmp_path / "t.pt", lr=1e-2, **kw)
    trained = ni.reconstruct(scan.kspace, scan.operator, "unrolled", noise=nm, weights=str(path))
    assert np.isfinite(trained.mean).all() and np.abs(trained.mean - wavelet.mean).max() > 1e-6
    # phases=4 is the mean of e^{-iφ}·net(e^{iφ}y) over φ = 0, π/2, π, 3π/2: rebuild it from phases=1 runs
    turns = [1, 1j, -1, -1j]
    single = [ni.reconstruct(scan.kspace * t, scan.operator, "unrolled", noise=nm, weights=str(path), phases=1).mean / t
              for t in turns]
    one = single[0]
    assert np.abs(trained.mean - one).max() > 1e-6
    assert np.abs(trained.mean - np.mean(single, axis=0)).max() < 1e-3 * np.abs(one).max()
    with pytest.raises(ValueError, match="start must be one of"):
        ni.train_supervised("unrolled", steps=1, out=tmp_path / "x.pt", **{**kw, "start": "dip"})


def test_unrolled_moving_pool_held_out_validation_and_best_weights(tmp_path):
    """start_refresh: the oldest group of starts is replaced as fresh starts add up to a batch; validation on
    held-out images; keep_best writes the weights of the best validation PSNR; the options are checked."""
    phantoms = [ni.mri.brain((24, 24), seed=s) for s in (1, 2, 3)]
    scan = ni.mri.simulate_kspace(ni.mri.brain((24, 24), seed=0), 2, kind="poisson", acceleration=3, seed=0)
    nm = ni.noise.Gaussian(scan.sigma)
    kw = {"truth": phantoms, "operator": scan.operator, "noise": nm, "width": 4, "iterations": 2, "start": "wavelet",
          "start_params": {"wavelet": "haar", "iterations": 30}, "start_pool": 2, "batch_size": 2,
          "validation_every": 1}
    held_out = [ni.mri.brain((24, 24), seed=99)]
    path = ni.train_supervised("unrolled", steps=4, out=tmp_path / "m.pt", lr=3e-2, start_refresh=1.0, augment=True,
                               validation_truth=held_out, keep_best=True, weight_decay=1e-4, **kw)
    meta = torch.load(path, weights_only=True)["metadata"]
    assert meta["fresh_starts"] == 4 and meta["validation"] == "held-out images" and meta["augment"]
    scores = meta["history"]["val_psnr"]
    assert len(scores) == 4 and meta["best_val_psnr"] == max(scores)
    assert meta["best_step"] == meta["history"]["val_step"][int(np.argmax(scores))]
    # the same seeded training without keep_best ends on the last step's weights: equal iff the best was the last
    last = ni.train_supervised("unrolled", steps=4, out=tmp_path / "last.pt", lr=3e-2, start_refresh=1.0,
                               augment=True, validation_truth=held_out, weight_decay=1e-4, **kw)
    a, b = (torch.load(q, weights_only=True)["state_dict"] for q in (path, last))
    same = all(torch.equal(a[n], b[n]) for n in a)
    assert same == (meta["best_step"] == 4)
    rec = ni.reconstruct(scan.kspace, scan.operator, "unrolled", noise=nm, weights=str(path))
    assert np.isfinite(rec.mean).all() and rec.mean.shape == (24, 24)
    with pytest.raises(ValueError, match="keep_best"):
        ni.train_supervised("unrolled", steps=1, out=tmp_path / "x.pt", keep_best=True, **kw)
    with pytest.raises(ValueError, match="weight_decay"):
        ni.train_supervised("unrolled", steps=1, out=tmp_path / "x.pt", weight_decay=-1.0, **kw)
    with pytest.raises(ValueError, match="start_refresh"):
        ni.train_supervised("unrolled", steps=1, out=tmp_path / "x.pt", start_refresh=-1.0, **kw)
    with pytest.raises(ValueError, match="unrolled network's training"):
        ni.train_supervised("care", truth=phantoms, operator=scan.operator, noise=nm, steps=1,
                            out=tmp_path / "x.pt", augment=True)


def test_training_input_faults_get_our_messages(tmp_path):
    """Empty, too small or mixed real/complex pairs, bad sizes and a folder as the output: a ValueError/OSError of
    ours naming the cause, never torch's."""
    rng = np.random.default_rng(0)
    hi = rng.random((16, 16)).astype(np.float32)
    lo = hi + 0.1 * rng.standard_normal(hi.shape).astype(np.float32)
    kw = dict(steps=1, out=tmp_path / "w.pt", width=8, depth=2, patch=16, batch_size=2)
    with pytest.raises(ValueError, match="No training pairs"):
        ni.train_supervised("care", pairs=[], **kw)
    with pytest.raises(ValueError, match="at least 8"):
        ni.train_supervised("care", pairs=[(lo[:1], hi[:1])], **kw)
    with pytest.raises(ValueError, match="all real or all complex"):
        ni.train_supervised("care", pairs=[(lo, hi.astype(np.complex64))], **kw)
    with pytest.raises(ValueError, match="all real or all complex"):
        ni.train_supervised("care", pairs=[(lo, hi), (lo.astype(np.complex64), hi.astype(np.complex64))], **kw)
    for name, value in (("batch_size", 0), ("batch_size", -1), ("width", 0), ("depth", -2), ("depth", 5), ("patch", 0),
                        ("lr", float("nan")), ("lr", -1e-3), ("iterations", 0), ("validation_every", -1)):
        with pytest.raises(ValueError, match=name):
            ni.train_supervised("care", pairs=[(lo, hi)], **{**kw, name: value})
    with pytest.raises(OSError, match="is a folder"):
        ni.train_supervised("care", pairs=[(lo, hi)], **{**kw, "out": tmp_path})
    with pytest.raises(ValueError, match="noise="):
        ni.train_supervised("unrolled", truth=[hi], operator=ni.operators.Identity(hi.shape), **kw)
    with pytest.raises(ValueError, match="operator="):
        ni.train_supervised("unrolled", truth=[hi], noise=ni.noise.Gaussian(0.1), **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, no temporary left


def test_weights_files_faults_atomic_write_and_no_global_rng(tmp_path, monkeypatch):
    """A damaged weights file gives a ValueError naming it; a failed write leaves the old file as it was; neither
    training nor loading moves torch's global generator."""
    rng = np.random.default_rng(0)
    hi = rng.random((16, 16)).astype(np.float32)
    lo = hi + 0.1 * rng.standard_normal(hi.shape).astype(np.float32)
    kw = dict(steps=1, width=8, depth=2, patch=16, batch_size=2)
    state = torch.get_rng_state()
    p = ni.train_supervised("care", pairs=[(lo, hi)], out=tmp_path / "w.pt", **kw)
    load_supervised(p, "care")
    assert torch.equal(state, torch.get_rng_state())
    blob = torch.load(p, weights_only=True)
    broken = {"nostate.pt": {k: v for k, v in blob.items() if k != "state_dict"},
              "config.pt": {**blob, "config": {"bogus": 1}},
              "shapes.pt": {**blob, "state_dict": {k: v[..., :1] for k, v in blob["state_dict"].items()}},
              "method.pt": {**blob, "method": "nothing"}}
    for name, b in broken.items():
        torch.save(b, tmp_path / name)
        with pytest.raises(ValueError, match=name):
            load_supervised(tmp_path / name)
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    (tmp_path / "half.pt").write_bytes(p.read_bytes()[:200])
    for name in ("garbage.pt", "half.pt"):
        with pytest.raises(ValueError, match=name) as err:
            load_supervised(tmp_path / name)
        assert "weights_only" not in str(err.value) and len(str(err.value)) < 400
    before = p.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        ni.train_supervised("care", pairs=[(lo, hi)], out=p, seed=1, **kw)
    assert p.read_bytes() == before
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]
    monkeypatch.undo()
    image = tmp_path / "image.tif"  # the output path taken by a file of another kind: left as it was
    image.write_bytes(b"II*\x00" + bytes(60))
    with pytest.raises(OSError, match="image.tif"):
        ni.train_supervised("care", pairs=[(lo, hi)], out=image, **kw)
    assert image.read_bytes() == b"II*\x00" + bytes(60)
    assert ni.train_supervised("care", pairs=[(lo, hi)], out=p, seed=1, **kw) == p and p.read_bytes() != before


def test_unrolled_on_mri_says_whether_the_acceleration_is_the_trained_one(tmp_path):
    from napari_invimg import mri
    n = 16
    truth = [mri.brain((n, n), seed=s).astype(np.complex64) for s in (1, 2)]
    sc = mri.simulate_kspace(truth[0], 2, kind="equispaced", acceleration=4, snr_db=30.0, seed=0)
    noise = ni.noise.Gaussian(sc.sigma)
    p = ni.train_supervised("unrolled", truth=truth, operator=sc.operator, noise=noise, steps=1, width=8, depth=2,
                            batch_size=2, iterations=2, out=tmp_path / "u.pt")
    assert load_supervised(p)[1]["operator_acceleration"] == pytest.approx(sc.acceleration)
    for R, same in ((4, True), (8, False)):
        other = mri.simulate_kspace(truth[1], 2, kind="equispaced", acceleration=R, snr_db=30.0, seed=3)
        rec = ni.reconstruct(other.kspace, other.operator, "unrolled", noise=noise, weights=str(p))
        assert rec.info["operator_matches_training"] is same and np.isfinite(rec.mean).all()
