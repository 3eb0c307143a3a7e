"""CS-MRI speed: ``wavelet`` (haar, as in bench_mri.py) and ``tv`` on the 8-coil Cartesian cases, with the data work
on the sampled k-space points only (``A.compact()``, the default) against the full k-space grid, in one process.

Prints iterations, PSNR and seconds of both paths and their ratio; the two are timed alternately on the same data
(one warm-up each), so the ratio holds on a loaded machine where the seconds do not.

    PYTHONPATH=src python benchmarks/bench_mri_speed.py [--threads 2] [--cases brain:poisson:8,...]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import napari_invimg as ni
from napari_invimg import mri

CASES = [f"{p}:{k}:{r}" for p in ("brain", "shepp-logan") for k in ("equispaced", "poisson") for r in (4, 8)]
METHODS = {"wavelet": {"wavelet": "haar"}, "tv": {}}


def scan_for(case: str):
    phantom, kind, r = case.split(":")
    x = mri.brain((256, 256)) if phantom == "brain" else mri.shepp_logan((256, 256)).astype(np.complex64)
    return mri.simulate_kspace(x, 8, kind=kind, acceleration=float(r), snr_db=30.0, seed=0)


def full_grid(A):
    """The same operator with ``compact`` switched off (the solvers then work on the full k-space grid)."""
    B = mri.CartesianMRI(A.mask_array, A.coil_maps_array)
    B.compact = lambda: (B, lambda y: y)
    return B


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--methods", default="wavelet,tv")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# CS-MRI speed, {time.strftime('%Y-%m-%d %H:%M')}, {args.threads} threads, load {os.getloadavg()[0]:.1f}")
    print("| case | method | iterations (gathered / full) | PSNR gathered | PSNR full | s gathered | s full | full / gathered |")
    print("|---|---|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        sc = scan_for(case)
        noise = ni.noise.Gaussian(sc.sigma)
        ops = {"gathered": sc.operator, "full": full_grid(sc.operator)}
        for method in args.methods.split(","):
            out = {}
            for name, A in ops.items():
                ni.reconstruct(sc.kspace, A, method, noise=noise, iterations=3, **METHODS[method])  # warm-up
            for name, A in ops.items():
                t = time.perf_counter()
                rec = ni.reconstruct(sc.kspace, A, method, noise=noise, **METHODS[method])
                out[name] = (time.perf_counter() - t, rec.info["iterations"],
                             ni.metrics.psnr(np.abs(rec.mean), np.abs(sc.image)))
            g, f = out["gathered"], out["full"]
            print(f"| {case} | {method} | {g[1]} / {f[1]} | {g[2]:.2f} | {f[2]:.2f} | {g[0]:.2f} | {f[0]:.2f} | "
                  f"{f[0] / g[0]:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
