"""Tiled reconstruction on dask: agreement with the untiled result, frames and channels, Zarr output with
progress and cancel, and bit-identical results on a distributed cluster."""

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.tiling import choose_tile_shape, tile_halo

da = pytest.importorskip("dask.array")


@pytest.fixture(scope="module")
def blurred():
    x = ni.datasets.fluorescence((12, 64, 64), seed=1).astype(np.float32)
    psf = ni.psf.gaussian((5, 7, 7), (1.0, 1.3, 1.3))
    noise = ni.noise.PoissonGaussian(0.01, 0.01)
    y = ni.simulate(x, ni.operators.Blur(psf, x.shape), noise, seed=0)
    return x, y, psf, noise


def _range(y):
    return float(y.max() - y.min())


def test_tiled_rl_matches_untiled_with_default_halo(blurred):
    x, y, psf, noise = blurred
    A_small = ni.operators.Blur(psf, (8, 8, 8))  # the operator's own shape does not matter for tiling
    rec = ni.reconstruct(da.from_array(y), A_small, "richardson_lucy", noise=noise, tile_shape=(12, 32, 32))
    assert isinstance(rec.mean, da.Array) and rec.info["tiling"]["tiles"] == 4
    assert rec.info["tiling"]["halo"][1:] == list(tile_halo(A_small, "richardson_lucy"))[1:]
    tiled = rec.mean.compute()
    resolved = rec.info["tiling"]["resolved_params"]
    # the pilot's weights of its iterations and of the result (the point extrapolated after the last one)
    assert resolved["stop"] == "none" and len(resolved["extrapolation"]) == resolved["iterations"] + 1
    assert resolved["extrapolation"][-1] > 0
    ref = ni.reconstruct(y, ni.operators.Blur(psf, y.shape), "richardson_lucy", noise=noise, **resolved).mean
    assert np.abs(tiled - ref).max() <= 1e-3 * _range(y)
    # a halo much thinner than the PSF's reach does show seams: the bound above is not vacuous
    thin = ni.reconstruct(da.from_array(y), A_small, "richardson_lucy", noise=noise, tile_shape=(12, 32, 32),
                          halo=1, **resolved).mean.compute()
    assert np.abs(thin - ref).max() > 1e-3 * _range(y)


def test_over_relaxed_rl_tiles_with_its_wider_halo(blurred):
    """relaxation=2 widens RL's halo (its squared first steps carry a tile border's error further) and the tiled
    result still equals the untiled one."""
    x, y, psf, noise = blurred
    A_small = ni.operators.Blur(psf, (8, 8, 8))
    plain, relaxed = tile_halo(A_small, "richardson_lucy"), tile_halo(A_small, "richardson_lucy", {"relaxation": 2.0})
    assert all(r > p for r, p in zip(relaxed[1:], plain[1:]))
    rec = ni.reconstruct(da.from_array(y), A_small, "richardson_lucy", noise=noise, tile_shape=(12, 32, 32),
                         relaxation=2.0)
    assert rec.info["tiling"]["halo"][1:] == list(relaxed)[1:]
    resolved = rec.info["tiling"]["resolved_params"]
    ref = ni.reconstruct(y, ni.operators.Blur(psf, y.shape), "richardson_lucy", noise=noise, **resolved).mean
    assert np.abs(rec.mean.compute() - ref).max() <= 1e-3 * _range(y)


@pytest.mark.parametrize("method, shape, tile", [("richardson_lucy", (12, 64, 64), (12, 32, 32)),
                                                 ("pnp_admm", (8, 96, 96), (8, 48, 48))])
def test_dask_and_numpy_give_one_image_with_default_parameters(method, shape, tile):
    x = ni.datasets.fluorescence(shape, seed=1).astype(np.float32)
    psf = ni.psf.gaussian((5, 7, 7), (1.0, 1.3, 1.3))
    y = ni.simulate(x, ni.operators.Blur(psf, x.shape), ni.noise.PoissonGaussian(0.01, 0.01), seed=0)
    extra = {"denoiser": "tv"} if method == "pnp_admm" else {}  # the learned denoiser does not tile 3D deblurring
    ref = ni.reconstruct(y, ni.operators.Blur(psf, y.shape), method, **extra)
    rec = ni.reconstruct(da.from_array(y), ni.operators.Blur(psf, (8, 8, 8)), method, tile_shape=tile, **extra)
    assert rec.info["tiling"]["tiles"] == 4 and rec.info["noise"] == ref.info["noise"]
    assert np.abs(rec.mean.compute() - ref.mean).max() <= 1e-3 * _range(y)
    if method == "richardson_lucy":  # the recipe replays the tiled result: the resolved choices are recorded
        again = ni.replay(ni.io.recipe_from(rec), da.from_array(y)).mean.compute()
        assert np.array_equal(again, rec.mean.compute())


@pytest.mark.parametrize("method", ["pnp_admm", "pnp_pgd"])
def test_tiled_plug_and_play_with_tv_matches_untiled(method):
    x = ni.datasets.fluorescence((8, 96, 96), seed=2).astype(np.float32)
    psf = ni.psf.gaussian((5, 7, 7), (1.0, 1.3, 1.3))
    noise = ni.noise.PoissonGaussian(0.01, 0.01)
    y = ni.simulate(x, ni.operators.Blur(psf, x.shape), noise, seed=0)
    A_small = ni.operators.Blur(psf, (8, 8, 8))
    rec = ni.reconstruct(da.from_array(y), A_small, method, noise=noise, tile_shape=(8, 48, 48), iterations=8)
    assert rec.info["tiling"]["tiles"] == 4 and rec.info["tiling"]["halo"][1:] == [37, 37]  # 3 × PSF + TV's reach
    resolved = rec.info["tiling"]["resolved_params"]
    assert resolved["denoiser"] == "tv" and resolved["cg_iterations"] >= 200  # TV by default in tiles
    assert resolved["scale"] > 0 and resolved["noise_level"] > 0  # global choices made once, on the pilot tile
    tiled = rec.mean.compute()
    ref = ni.reconstruct(y, ni.operators.Blur(psf, y.shape), method, noise=noise, **resolved).mean
    assert np.abs(tiled - ref).max() <= 1e-3 * _range(y)
    thin = ni.reconstruct(da.from_array(y), A_small, method, noise=noise, tile_shape=(8, 48, 48), halo=1,
                          **resolved).mean.compute()
    assert np.abs(thin - ref).max() > 1e-3 * _range(y)


def test_plug_and_play_refuses_an_unverified_denoiser_in_tiles():
    y = da.from_array(np.random.default_rng(1).random((40, 40)).astype(np.float32))
    with pytest.raises(ValueError, match="only with the denoiser"):
        ni.reconstruct(y, ni.operators.Identity((40, 40)), "pnp_admm", denoiser="nlm")
    assert {"richardson_lucy", "pnp_admm", "pnp_pgd"} <= set(ni.tiling.tileable_methods())
    psf = ni.psf.gaussian((5, 7, 7), 1.0)
    with pytest.raises(ValueError, match="only on Identity 2D, Identity 3D, Blur 2D"):  # learned + 3D deblurring
        ni.reconstruct(da.from_array(np.ones((8, 40, 40), np.float32)), ni.operators.Blur(psf, psf.shape), "pnp_admm",
                       denoiser="drunet")
    with pytest.raises(ValueError, match="not periodically"):
        ni.reconstruct(y, ni.operators.Blur(psf[2], (40, 40), boundary="circular"), "pnp_admm", denoiser="drunet")


def test_learned_denoiser_tiles_on_its_grid_and_matches_untiled():
    """Learned PnP denoising tile by tile: tiles and halos on the network's 8-pixel grid, halo ≥ its reach."""
    x = np.stack([ni.datasets.fluorescence((150, 150), seed=s) for s in (3, 4)]).astype(np.float32)  # a time-lapse
    noise = ni.noise.PoissonGaussian(0.01, 0.02)
    y = ni.simulate(x, ni.operators.Identity(x.shape), noise, seed=1)
    rec = ni.reconstruct(da.from_array(y), ni.operators.Identity((8, 8)), "pnp_pgd", noise=noise, denoiser="drunet",
                         tile_shape=(75, 75), iterations=6)
    tiling = rec.info["tiling"]
    assert tiling["tiles"] == 8 and all(t % 8 == 0 for t in tiling["tile_shape"])  # 75 moved onto the 8-pixel grid
    assert tiling["halo"] == [56, 56]  # the network's 53-pixel reach, rounded up to the grid
    tiled = rec.mean.compute()
    ref = np.stack([ni.reconstruct(frame, ni.operators.Identity(frame.shape), "pnp_pgd", noise=noise,
                                   **tiling["resolved_params"]).mean for frame in y])
    assert np.abs(tiled - ref).max() <= 1e-3 * _range(y)
    off = ni.reconstruct(da.from_array(y), ni.operators.Identity((8, 8)), "pnp_pgd", noise=noise, halo=16,
                         tile_shape=(75, 75), **tiling["resolved_params"]).mean.compute()
    assert np.abs(off - ref).max() > 1e-3 * _range(y)  # a halo under the network's reach is visibly off


def test_time_lapse_with_one_psf_per_channel():
    rng = np.random.default_rng(0)
    frames = np.stack([ni.datasets.fluorescence((48, 48), seed=s) for s in range(2)]).astype(np.float32)
    psfs = [ni.psf.gaussian((7, 7), 1.0), ni.psf.gaussian((9, 9), 1.8)]
    data = np.stack([np.stack([ni.operators.Blur(p, (48, 48)).forward(f) for p in psfs], 0) for f in frames], 0)
    data = (data + 0.01 * rng.standard_normal(data.shape)).astype(np.float32)  # (T, C, Y, X)
    noise = ni.noise.Gaussian(0.01)
    ops = [ni.operators.Blur(p, (16, 16)) for p in psfs]
    kwargs = dict(noise=noise, iterations=8, stop="none", offset=0.05)
    rec = ni.reconstruct(da.from_array(data), ops, "richardson_lucy", tile_shape=(24, 24), halo=24, **kwargs)
    out = rec.mean.compute()
    assert out.shape == data.shape and rec.info["tiling"]["channel_axis"] == 1 and rec.info["tiling"]["tiles"] == 16
    for t in range(2):
        for c, p in enumerate(psfs):
            ref = ni.reconstruct(data[t, c], ni.operators.Blur(p, (48, 48)), "richardson_lucy", acceleration=False,
                                 **kwargs).mean
            assert np.abs(out[t, c] - ref).max() <= 1e-3 * _range(data)


def test_refuses_non_shift_invariant_operators_and_global_methods():
    y = da.from_array(np.random.default_rng(1).random((40, 40)).astype(np.float32))
    with pytest.raises(ValueError, match="shift-invariant"):
        ni.reconstruct(y, ni.operators.Inpainting(np.ones((40, 40), bool)), "richardson_lucy")
    with pytest.raises(ValueError, match="not a local method"):
        ni.reconstruct(y, ni.operators.Identity((40, 40)), "wiener")


def test_choose_tile_shape_fits_memory():
    tile = choose_tile_shape((256, 2048, 2048), (4, 18, 18), bytes_per_voxel=64, memory_bytes=512 * 2**20)
    padded = np.prod([t + 2 * h for t, h in zip(tile, (4, 18, 18))]) * 64
    assert padded <= 512 * 2**20 and min(tile) >= 8
    with pytest.raises(ValueError, match="GiB"):
        choose_tile_shape((64, 64), (30, 30), bytes_per_voxel=1e6, memory_bytes=1e6)


def test_zarr_output_progress_cancel(tmp_path, blurred):
    _, y, psf, noise = blurred
    A = ni.operators.Blur(psf, (8, 8, 8))
    steps = []
    out = tmp_path / "rl.zarr"
    rec = ni.reconstruct(da.from_array(y), A, "richardson_lucy", noise=noise, iterations=5, stop="none",
                         tile_shape=(12, 32, 32), output=out, pixel_size_um=(0.3, 0.1, 0.1),
                         progress=lambda i, n, p: steps.append((i, n)))
    assert steps[-1] == (4, 4) and len(steps) == 5
    img = ni.io.imread(out)
    assert img.pixel_size_um == (0.3, 0.1, 0.1)
    np.testing.assert_array_equal(img.data.compute(), rec.mean.compute())
    with pytest.raises(ni.Cancelled):
        ni.reconstruct(da.from_array(y), A, "richardson_lucy", noise=noise, iterations=5, stop="none",
                       tile_shape=(12, 32, 32), output=tmp_path / "cancelled.zarr", progress=lambda i, n, p: i < 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rl.zarr"]  # no half-written store left


def test_distributed_client_gives_identical_result(blurred):
    distributed = pytest.importorskip("distributed")
    _, y, psf, noise = blurred
    A = ni.operators.Blur(psf, (8, 8, 8))
    kwargs = dict(noise=noise, iterations=6, stop="none", tile_shape=(12, 32, 32))
    threaded = ni.reconstruct(da.from_array(y), A, "richardson_lucy", **kwargs).mean.compute(scheduler="threads")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        rec = ni.reconstruct(da.from_array(y), A, "richardson_lucy", **kwargs)
        assert rec.info["tiling"]["scheduler"] == "distributed"
        on_cluster = rec.mean.compute()
    np.testing.assert_array_equal(threaded, on_cluster)


def test_a_method_defined_in_one_file_tiles():
    from napari_invimg.methods.registry import Estimate, Method, Param, TileProfile

    class ToyAdjoint(Method):  # one class, nothing else edited: registered, tileable, its global choice resolved
        name = "toy_scaled_adjoint"
        params = (Param("gain", float, None, 0.0, None, doc="factor on Aᴴy (empty: from the whole image)"),)
        tile_profile = TileProfile(1.0, 0, 4)

        @classmethod
        def resolve_globals(cls, pilot, y, noise, params, frames=1):
            return {**params, "gain": params["gain"] or 1.0 / float(y.max())}

        def run(self, y, A, noise, ctx, gain):
            return Estimate(A.apply_adjoint(y) * (gain or 1.0 / float(y.max())), info={"gain": gain})

    assert "toy_scaled_adjoint" in ni.tiling.tileable_methods()
    y = np.random.default_rng(0).random((40, 48)).astype(np.float32)
    psf = ni.psf.gaussian((7, 7), 1.5)
    ref = ni.reconstruct(y, ni.operators.Blur(psf, y.shape), "toy_scaled_adjoint", noise=ni.noise.Gaussian(0.1)).mean
    rec = ni.reconstruct(da.from_array(y), ni.operators.Blur(psf, (8, 8)), "toy_scaled_adjoint",
                         noise=ni.noise.Gaussian(0.1), tile_shape=(20, 24))
    assert rec.info["tiling"]["tiles"] == 4 and rec.info["tiling"]["resolved_params"]["gain"] == 1.0 / float(y.max())
    np.testing.assert_allclose(rec.mean.compute(), ref, atol=1e-6)


def test_tiles_in_flight_and_pilot_stay_within_the_untiled_memory(monkeypatch, tmp_path):
    """The plan keeps the tiles in flight and the pilot region under 3/4 of the untiled working memory, and the
    run never has more tiles in memory at once than the plan says (each written to the store as it finishes)."""
    import threading
    import time

    from napari_invimg import tiling
    from napari_invimg.methods import registry

    psf, noise = ni.psf.gaussian((7, 7), (1.3, 1.3)), ni.noise.Gaussian(0.01)
    y = ni.simulate(ni.datasets.fluorescence((256, 256), seed=1).astype(np.float32),
                    ni.operators.Blur(psf, (256, 256)), noise, seed=0)
    A = ni.operators.Blur(psf, (8, 8))
    cls = registry.get("richardson_lucy")
    monkeypatch.setattr(tiling, "_workers", lambda client: (4, 2.0**40))  # 4 slots, plenty of memory
    plan, _ = tiling.plan_tiles(da.from_array(y), A, cls, {}, pilot="bounded")
    bpv = 4.0 * cls.tile_profile.work_arrays
    untiled = np.prod(y.shape) * bpv
    tile_bytes = tiling.padded_bytes(plan.tile, plan.depth, bpv, y.shape)
    assert 1 <= plan.in_flight <= 4 and plan.in_flight * tile_bytes <= 0.75 * untiled
    assert tiling.padded_bytes(plan.pilot_tile, plan.depth, bpv, y.shape) <= 0.75 * untiled
    # the default pilot is the whole frame when it fits a worker (the tiled result is then the untiled one's) ...
    assert tiling.plan_tiles(da.from_array(y), A, cls, {})[0].pilot_tile == y.shape
    # ... and the region within the budget when it does not
    monkeypatch.setattr(tiling, "_workers", lambda client: (4, 0.5 * untiled))
    small = tiling.plan_tiles(da.from_array(y), A, cls, {})[0].pilot_tile
    assert tiling.padded_bytes(small, plan.depth, bpv, y.shape) <= 0.75 * untiled
    with pytest.raises(ValueError, match="pilot"):
        tiling.plan_tiles(da.from_array(y), A, cls, {}, pilot="half")
    monkeypatch.setattr(tiling, "_workers", lambda client: (4, 2.0**40))
    assert np.prod(plan.tile) < np.prod(y.shape)  # the image was split

    running, peak, lock = [0], [0], threading.Lock()
    solve = tiling._solve_block

    def counted(*args, **kwargs):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)  # tiles overlap in time if the runner lets them
        try:
            return solve(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(tiling, "_solve_block", counted)
    rec = ni.reconstruct(da.from_array(y), A, "richardson_lucy", noise=noise, iterations=3, stop="none",
                         acceleration=False, output=tmp_path / "rl.zarr")
    info = rec.info["tiling"]
    assert info["tiles"] > info["in_flight"] and peak[0] == info["in_flight"]


def test_run_tiles_keeps_at_most_in_flight_tasks_running():
    import threading
    import time

    import dask

    from napari_invimg.tiling import _run_tiles

    running, peak, started, lock = [0], [0], [], threading.Lock()

    def task(i):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            started.append(i)
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return i

    progress = []
    _run_tiles([dask.delayed(task)(i) for i in range(7)], None, lambda d, t, _: progress.append((d, t)), in_flight=2)
    assert peak[0] == 2 and sorted(started) == list(range(7)) and progress[-1] == (7, 7)
    peak[0] = 0
    _run_tiles([dask.delayed(task)(i) for i in range(5)], None, None, in_flight=1)
    assert peak[0] == 1
