"""Peak memory of tiled against untiled reconstruction (issue #20: "tiled peak memory ≤ the untiled peak").

One synthetic 3D stack (``datasets.fluorescence``, 3D widefield PSF 9×17×17, Poisson–Gaussian noise) is
reconstructed untiled (numpy in, the method's own global choices) and tiled (a dask array in, streamed tile by
tile into an OME-Zarr store, as the Reconstruct widget does), each in its own subprocess. Peak memory is the
subprocess's resident high-water mark (``ru_maxrss``); "base" is its resident size after the imports (torch, dask,
zarr, distributed: the same in both runs) and the memory-mapped data were loaded, so "working" = peak − base is what the reconstruction itself added. The tiled
row also reports the tiles, the tiles in flight and the pilot region the plan chose.

Run: ``python benchmarks/bench_tiling_memory.py`` (``--shape 32x512x512``; ``--methods richardson_lucy,pnp_admm``;
``--pnp-iterations 3``; ``--pilots frame,bounded``: the default pilot over the whole frame when it fits a
worker, and the pilot bounded by the memory budget).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_stack(shape, workdir: str) -> None:
    import napari_invimg as ni

    x = ni.datasets.fluorescence(shape, seed=1).astype(np.float32)
    psf = ni.psf.widefield((9, 17, 17), wavelength_um=0.52, na=1.2, pixel_size_um=0.1, z_step_um=0.3, ni=1.33)
    y = ni.simulate(x, ni.operators.Blur(psf, shape), ni.noise.PoissonGaussian(gain=0.002, sigma=0.005),
                    seed=2).astype(np.float32)
    np.save(os.path.join(workdir, "psf.npy"), psf.astype(np.float32))
    np.save(os.path.join(workdir, "y.npy"), y)


def run_one(workdir: str, method: str, tiled: bool, params: dict) -> dict:
    import dask.array as da
    import zarr  # noqa: F401  (the tiled run's libraries, imported in both runs: "base" holds their memory)

    import napari_invimg as ni

    try:
        import distributed  # noqa: F401  (the tiler looks for an active Client)
    except ImportError:
        pass
    y = np.load(os.path.join(workdir, "y.npy"), mmap_mode="r")
    psf = np.load(os.path.join(workdir, "psf.npy"))
    noise = ni.noise.PoissonGaussian(gain=0.002, sigma=0.005)
    base = _rss_mib()
    t = time.perf_counter()
    if tiled:
        out = os.path.join(workdir, f"{method}_tiled.zarr")
        rec = ni.reconstruct(da.from_array(y, chunks=(y.shape[0], 128, 128)), ni.operators.Blur(psf, psf.shape),
                             method, noise=noise, output=out, overwrite=True, **params)
        t_info = rec.info["tiling"]
        extra = {k: t_info[k] for k in ("tile_shape", "halo", "tiles", "in_flight", "pilot_shape") if k in t_info}
    else:
        ni.reconstruct(np.array(y), ni.operators.Blur(psf, y.shape), method, noise=noise, **params)
        extra = {}
    return {"seconds": time.perf_counter() - t, "base_mib": base, "peak_mib": _peak_mib(), **extra}


def _subprocess(workdir: str, method: str, tiled: bool, params: dict) -> dict:
    cmd = [sys.executable, __file__, "--run-one", "--workdir", workdir, "--method", method,
           "--params", json.dumps(params)] + (["--tiled"] if tiled else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="32x512x512")
    parser.add_argument("--methods", default="richardson_lucy,pnp_admm")
    parser.add_argument("--pnp-iterations", type=int, default=3)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--pilots", default="frame,bounded", help="tiled runs: the pilot choices to measure")
    parser.add_argument("--run-one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tiled", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        print(json.dumps(run_one(args.workdir, args.method, args.tiled, json.loads(args.params))))
        return
    shape = tuple(int(v) for v in args.shape.split("x"))
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        make_stack(shape, workdir)
        print(f"# Tiled vs untiled peak memory, {args.shape} float32 ({np.prod(shape) * 4 / 2**20:.0f} MiB), "
              f"load average {os.getloadavg()[0]:.1f}")
        print("| method | run | seconds | base MiB | peak MiB | working MiB | tiled/untiled working | tiles | "
              "in flight | tile | halo | pilot |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for method in args.methods.split(","):
            params = {"iterations": args.pnp_iterations} if method.startswith("pnp") else {}
            rows = {"untiled": _subprocess(workdir, method, False, params)}
            for pilot in args.pilots.split(","):
                rows[f"tiled, pilot={pilot}"] = _subprocess(workdir, method, True, {**params, "pilot": pilot})
            for r in rows.values():
                r["working"] = r["peak_mib"] - r["base_mib"]
            for run, r in rows.items():
                ratio = r["working"] / rows["untiled"]["working"]
                print(f"| {method} | {run} | {r['seconds']:.1f} | {r['base_mib']:.0f} | "
                      f"{r['peak_mib']:.0f} | {r['working']:.0f} | {ratio:.2f} | {r.get('tiles', 1)} | "
                      f"{r.get('in_flight', '-')} | {'×'.join(map(str, r.get('tile_shape', ['-'])))} | "
                      f"{'×'.join(map(str, r.get('halo', ['-'])))} | "
                      f"{'×'.join(map(str, r.get('pilot_shape', ['-'])))} |", flush=True)


if __name__ == "__main__":
    main()
