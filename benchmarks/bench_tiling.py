"""Tiled reconstruction on dask against the untiled one, a 4 GiB Zarr stack on a 2-worker cluster, and the
PSF workbench (issue #9).

(a) A 64×512×512 stack (synthetic fluorescence, 3D widefield PSF, Poisson–Gaussian noise): Richardson–Lucy
    untiled and tiled with several tile shapes and the default halo; PnP-ADMM with the TV denoiser on the
    same stack (``--pnp-shape``; its data steps are solved to convergence); and ``--learned``: PnP-ADMM with
    the shipped learned denoiser denoising a 16×512×512 stack (Identity) and deblurring a 1024×1024 image
    (2D widefield PSF). For each: the largest difference to the
    untiled result (same resolved parameters), in the interior of tiles and within 8 voxels of an internal
    tile border, relative to the data range; seconds; peak resident memory (each run in its own
    subprocess, ``ru_maxrss``).
(b) ``--big``: a 256×2048×2048 float32 stack written to Zarr by the benchmark (4 GiB), Richardson–Lucy
    (5 iterations) tile by tile on a 2-worker ``LocalCluster`` writing to Zarr: wall time and peak memory
    of the whole process tree (sampled); a few tiles recomputed on the threaded scheduler must be identical.
(c) PSF workbench: a known widefield PSF recovered from a simulated bead image (2D and 3D, beads at random
    sub-pixel positions, Poisson noise), and a PSF resampled from 0.1 µm to 0.065 µm pixels against one
    generated at 0.065 µm (relative L2 errors).

Run: ``python benchmarks/bench_tiling.py`` (``--quick``: 16×128×128, 2 tile shapes; ``--big``: add (b),
long on 2 cores; ``--only-pnp``: only the PnP rows; ``--workdir``: where the data go, default a temporary
folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

BORDER = 8  # voxels from an internal tile border that count as "near the border"


def _rss_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_stack(shape, path: str, operator: str = "blur") -> dict:
    """The test stack, saved as .npy (memory-mapped by the runs), and its PSF (3D widefield for a 3D blur,
    2D for a 2D one; none for ``operator="identity"``, denoising a stack slice by slice)."""
    import napari_invimg as ni

    if operator == "identity":
        x = np.stack([ni.datasets.fluorescence(shape[1:], seed=1 + k) for k in range(shape[0])]).astype(np.float32)
        A = ni.operators.Identity(shape)
    else:
        x = ni.datasets.fluorescence(shape, seed=1).astype(np.float32)
        psf = (ni.psf.widefield((9, 17, 17), wavelength_um=0.52, na=1.2, pixel_size_um=0.1, z_step_um=0.3, ni=1.33)
               if len(shape) == 3 else ni.psf.widefield((17, 17), wavelength_um=0.52, na=1.2, pixel_size_um=0.1))
        A = ni.operators.Blur(psf, shape)
        np.save(os.path.join(path, "psf.npy"), psf)
    y = ni.simulate(x, A, ni.noise.PoissonGaussian(gain=0.002, sigma=0.005), seed=2).astype(np.float32)
    np.save(os.path.join(path, "y.npy"), y)
    return {"range": float(y.max() - y.min())}


def _operator(workdir: str, shape, small: bool):
    """The benchmark's operator on ``shape`` (or on a small shape: tiles rebuild it on theirs)."""
    import napari_invimg as ni

    path = os.path.join(workdir, "psf.npy")
    if not os.path.exists(path):
        return ni.operators.Identity((8,) * len(shape) if small else shape)
    psf = np.load(path)
    return ni.operators.Blur(psf, psf.shape if small else shape)


def run_one(args: argparse.Namespace) -> None:
    """Subprocess: one untiled or tiled reconstruction; prints a JSON line, saves the mean."""
    import dask.array as da

    import napari_invimg as ni

    y = np.load(os.path.join(args.workdir, "y.npy"), mmap_mode="r")
    noise = ni.noise.PoissonGaussian(gain=0.002, sigma=0.005)
    params = json.loads(args.params)
    t = time.perf_counter()
    if args.tile == "none":
        mean = ni.reconstruct(np.asarray(y), _operator(args.workdir, y.shape, small=False), args.method, noise=noise,
                              **params).mean
        extra = {}
    else:
        tile = tuple(int(v) for v in args.tile.split("x"))
        A = _operator(args.workdir, tile, small=True)
        rec = ni.reconstruct(da.from_array(y, chunks=y.shape[:-2] + (128, 128)), A, args.method, noise=noise,
                             tile_shape=tile, **params)
        mean = rec.mean.compute(scheduler="threads")
        extra = {"halo": rec.info["tiling"]["halo"], "tile_shape": rec.info["tiling"]["tile_shape"],
                 "resolved": rec.info["tiling"]["resolved_params"], "tiles": rec.info["tiling"]["tiles"]}
    seconds = time.perf_counter() - t
    np.save(os.path.join(args.workdir, f"{args.method}_{args.tile}.npy"), mean)
    print(json.dumps({"seconds": seconds, "peak_mib": _rss_peak_mib(), **extra}))


def _subprocess(workdir: str, method: str, tile: str, params: dict) -> dict:
    cmd = [sys.executable, __file__, "--run-one", "--workdir", workdir, "--method", method, "--tile", tile,
           "--params", json.dumps(params)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _border_mask(shape, tile) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for ax, (n, t) in enumerate(zip(shape, tile)):
        for edge in range(t, n, t):
            sl = [slice(None)] * len(shape)
            sl[ax] = slice(max(edge - BORDER, 0), min(edge + BORDER, n))
            mask[tuple(sl)] = True
    return mask


def part_a(workdir: str, shape, tiles, methods, operator: str = "blur") -> list[dict]:
    info = make_stack(shape, workdir, operator)
    rows = []
    for method, params in methods:
        tiled = []
        for tile in tiles:  # the first run resolves the global choices; the others reuse them
            res = _subprocess(workdir, method, "x".join(map(str, tile)), tiled[0][1]["resolved"] if tiled else params)
            tiled.append((tile, res))
        resolved = tiled[0][1]["resolved"]
        ref = _subprocess(workdir, method, "none", resolved)
        ref_mean = np.load(os.path.join(workdir, f"{method}_none.npy"))
        rows.append({"method": method, "tile": "untiled", "halo": "-", "seconds": ref["seconds"],
                     "peak_mib": ref["peak_mib"], "interior": 0.0, "border": 0.0, "tiles": 1})
        for tile, res in tiled:
            mean = np.load(os.path.join(workdir, f"{method}_{'x'.join(map(str, tile))}.npy"))
            diff = np.abs(mean - ref_mean) / info["range"]
            near = _border_mask(shape, res["tile_shape"])
            rows.append({"method": method, "tile": "×".join(map(str, res["tile_shape"])),
                         "halo": "×".join(map(str, res["halo"])), "seconds": res["seconds"],
                         "peak_mib": res["peak_mib"], "tiles": res["tiles"],
                         "interior": float(diff[~near].max()) if (~near).any() else 0.0,
                         "border": float(diff[near].max()) if near.any() else 0.0})
        rows[-len(tiled) - 1]["params"] = resolved
    return rows


class TreeMemory:
    """Peak resident memory of this process and all its children, sampled every ``interval`` seconds."""

    def __init__(self, interval: float = 0.5):
        import psutil

        self.proc, self.interval, self.peak = psutil.Process(), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.is_set():
            total = 0
            for p in [self.proc, *self.proc.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def part_b(workdir: str, shape=(256, 2048, 2048), chunks=(64, 256, 256), iterations: int = 5) -> dict:
    import dask.array as da
    from distributed import Client, LocalCluster

    import napari_invimg as ni
    from napari_invimg.io.ome_zarr import write_zarr

    src = os.path.join(workdir, "big_input.zarr")
    out = os.path.join(workdir, "big_output.zarr")
    t = time.perf_counter()
    if not os.path.exists(src):
        z, yy, xx = (da.arange(n, chunks=c, dtype=np.float32) for n, c in zip(shape, chunks))
        pattern = (1.2 + da.sin(z[:, None, None] / 7.0) * da.cos(yy[None, :, None] / 11.0)
                   * da.sin(xx[None, None, :] / 13.0)).astype(np.float32)
        noisy = pattern + 0.01 * da.random.RandomState(0).standard_normal(shape, chunks=chunks).astype(np.float32)
        write_zarr(src, noisy.astype(np.float32), pixel_size_um=(0.3, 0.1, 0.1), chunks=chunks)
    generate = time.perf_counter() - t
    y = ni.io.imread(src).data
    psf = ni.psf.gaussian((7, 9, 9), (1.0, 1.5, 1.5))
    A = ni.operators.Blur(psf, psf.shape)
    kwargs = dict(noise=ni.noise.Gaussian(0.01), iterations=iterations, stop="none", offset=0.0,
                  tile_shape=(64, 256, 256))
    with TreeMemory() as mem:
        t = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1.25GiB",
                          dashboard_address=None) as cluster, Client(cluster):
            start = time.perf_counter() - t
            t = time.perf_counter()

            def report(done, total, _preview):
                if done % 8 == 0 or done == total:
                    print(f"  … {done}/{total} tiles after {time.perf_counter() - t:.0f} s, peak memory so far "
                          f"{mem.peak / 2**30:.2f} GiB", flush=True)

            rec = ni.reconstruct(y, A, "richardson_lucy", output=out, overwrite=True, progress=report, **kwargs)
            wall = time.perf_counter() - t
    cluster_result = rec.mean
    lazy = ni.reconstruct(y, A, "richardson_lucy", **kwargs).mean
    same = True
    for idx in [(0, 0, 0), (1, 3, 4), (3, 7, 7)]:  # corner, interior and far corner tiles, threaded
        a = lazy.blocks[idx].compute(scheduler="threads")
        b = cluster_result.blocks[idx].compute()
        same &= bool(np.array_equal(a, b))
    return {"shape": "×".join(map(str, shape)), "gib": np.prod(shape) * 4 / 2**30, "generate_s": generate,
            "cluster_start_s": start, "wall_s": wall, "peak_gib": mem.peak / 2**30, "same_as_threaded": same,
            "tiles": rec.info["tiling"]["tiles"], "halo": rec.info["tiling"]["halo"], "iterations": iterations}


def part_c(seed: int = 0) -> list[tuple[str, float, float]]:

    import napari_invimg as ni

    def rel(a, b):
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    rows = []
    big = ni.psf.widefield((31, 31), wavelength_um=0.52, na=1.4, pixel_size_um=0.065)
    truth = big[4:-4, 4:-4] / big[4:-4, 4:-4].sum()
    img, _ = ni.datasets.beads((400, 400), big, 40, (27, 27), 20000, 10, seed)
    rows.append(("beads → PSF, 2D, 40 beads, 2·10⁴ photons", rel(ni.psf.from_beads(img, truth.shape), truth), 0.05))
    big3 = ni.psf.widefield((41, 41, 41), wavelength_um=0.52, na=1.4, pixel_size_um=0.1, z_step_um=0.2)
    truth3 = big3[12:-12, 10:-10, 10:-10] / big3[12:-12, 10:-10, 10:-10].sum()
    img3, _ = ni.datasets.beads((40, 200, 200), big3, 30, (21, 25, 25), 50000, 5, seed + 1)
    rows.append(("beads → PSF, 3D, 30 beads, 5·10⁴ photons", rel(ni.psf.from_beads(img3, truth3.shape), truth3), 0.05))
    rows.append(("  the same, lateral_symmetry=True", rel(ni.psf.from_beads(img3, truth3.shape, lateral_symmetry=True),
                                                         truth3), 0.05))
    for wl, na in [(0.52, 1.4), (0.6, 1.2)]:
        coarse = ni.psf.widefield((41, 41), wavelength_um=wl, na=na, pixel_size_um=0.1)
        fine = ni.psf.widefield((63, 63), wavelength_um=wl, na=na, pixel_size_um=0.065)
        rows.append((f"resample 0.1 → 0.065 µm (λ {wl} µm, NA {na})",
                     rel(ni.psf.resample(coarse, 0.1, 0.065, shape=(63, 63)), fine), 0.02))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--big", action="store_true", help="also the 4 GiB Zarr stack on a 2-worker LocalCluster")
    parser.add_argument("--only-big", action="store_true", help="only the 4 GiB case")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--tiles", default=None, help="tile shapes for (a), e.g. 64x256x256,32x256x256")
    parser.add_argument("--iterations", type=int, default=5, help="RL iterations in (b)")
    parser.add_argument("--only-pnp", action="store_true", help="only the PnP rows of (a)")
    parser.add_argument("--pnp-iterations", type=int, default=24, help="PnP-ADMM iterations in (a)")
    parser.add_argument("--pnp-shape", default=None, help="stack for the PnP rows, default 64x512x512")
    parser.add_argument("--pnp-tiles", default=None, help="tile shapes for the PnP rows, default "
                                                          "64x256x512,64x256x256")
    parser.add_argument("--learned", action="store_true", help="only the learned-denoiser PnP rows of (a)")
    parser.add_argument("--run-one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--tile", help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        run_one(args)
        return
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_tiling_")
    os.makedirs(workdir, exist_ok=True)
    print(f"# bench_tiling  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs (shared with other jobs), no GPU")
    try:
        if not args.only_big:
            def shapes(text, default):
                return [tuple(int(v) for v in t.split("x")) for t in text.split(",")] if text else default

            runs = []
            if not args.only_pnp:
                shape = (16, 128, 128) if args.quick else (64, 512, 512)
                tiles = [(16, 64, 64), (16, 128, 64)] if args.quick else [(64, 128, 128), (64, 256, 256), (32, 256, 256)]
                runs.append((shape, shapes(args.tiles, tiles), ("richardson_lucy", {"iterations": 60})))
            shape = (8, 192, 192) if args.quick else shapes(args.pnp_shape, [(64, 512, 512)])[0]
            tiles = [(8, 96, 96)] if args.quick else [(64, 256, 512), (64, 256, 256)]
            runs.append((shape, shapes(args.pnp_tiles, tiles),
                         ("pnp_admm", {"denoiser": "tv", "iterations": args.pnp_iterations})))
            if args.learned:
                learned = ("pnp_admm", {"denoiser": "drunet", "iterations": args.pnp_iterations})
                runs = [((4, 256, 256) if args.quick else (16, 512, 512), [(4, 128, 128)] if args.quick else
                         [(16, 256, 256), (16, 128, 128)], learned, "identity"),
                        ((256, 256) if args.quick else (1024, 1024), [(128, 128)] if args.quick else
                         [(512, 512), (256, 256)], learned, "blur")]
            for shape, tiles, method, *operator in runs:
                operator = operator[0] if operator else "blur"
                sub = os.path.join(workdir, f"{method[0]}_{method[1].get('denoiser', '')}_{operator}_{len(shape)}d")
                os.makedirs(sub, exist_ok=True)
                rows = part_a(sub, shape, tiles, [method], operator)
                what = "Identity (denoising)" if operator == "identity" else ("PSF 9×17×17" if len(shape) == 3 else "PSF 17×17")
                print(f"\n(a) {'×'.join(map(str, shape))}, {what}, {method[0]} {method[1].get('denoiser', '')}, default "
                      f"halo; differences relative to the data range (goal for RL: ≤ 1e-3 anywhere)")
                print(f"{'method':16} {'tile':12} {'halo':10} {'tiles':>5} {'seconds':>8} {'peak MiB':>9} "
                      f"{'max |Δ| interior':>17} {'max |Δ| border':>15}")
                for r in rows:
                    print(f"{r['method']:16} {r['tile']:12} {r['halo']:10} {r['tiles']:>5} {r['seconds']:8.1f} "
                          f"{r['peak_mib']:9.0f} {r['interior']:17.2e} {r['border']:15.2e}", flush=True)
                    if "params" in r:
                        print(f"    resolved once on the pilot tile: {r['params']}")
            if args.only_pnp or args.learned:
                return
            print("\n(c) PSF workbench (relative L2 error)")
            for name, err, goal in part_c():
                print(f"  {name:48} {err:7.4f}   goal < {goal:g}  {'ok' if err < goal else 'MISSED'}")
        if args.big or args.only_big:
            res = part_b(workdir, iterations=args.iterations)
            print(f"\n(b) {res['shape']} float32 Zarr ({res['gib']:.1f} GiB), RL {res['iterations']} iterations, "
                  f"{res['tiles']} tiles, halo {res['halo']}, 2-worker LocalCluster (1 thread, 1.25 GiB each)")
            print(f"  generate+write input {res['generate_s']:.0f} s; cluster start {res['cluster_start_s']:.0f} s; "
                  f"reconstruct+write {res['wall_s']:.0f} s; peak memory (all processes) {res['peak_gib']:.2f} GiB "
                  f"(goal < 3); same as threaded on 3 tiles: {res['same_as_threaded']}")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
