"""CS-MRI speed: ``wavelet`` (haar, as in bench_mri.py) and ``tv`` on the 8-coil Cartesian cases, with the data work
on the sampled k-space points only (``A.compact()``, the default) against the full k-space grid, in one process.

Prints iterations, PSNR and seconds of both paths and their ratio; the two are timed alternately on the same data
(one warm-up each), so the ratio holds on a loaded machine where the seconds do not.

    PYTHONPATH=src python benchmarks/bench_mri_speed.py [--threads 2] [--cases brain:poisson:8,...]

``--baseline OTHER/src`` instead compares this tree with another source tree (e.g. ``git archive main src | tar -x -C
/tmp/base``) on the default (gathered) path: each (tree, case, method) runs in its own subprocess, the two trees
alternately, ``--repeats`` times; the table gives iterations, PSNR, the median wall seconds of each and their ratio,
and the CPU seconds of the process (``time.process_time``: with one thread, what a quiet machine's wall clock shows).
``--coil-energy E`` runs this tree's side with coil compression ``coil_energy=E`` (off by default; RESULTS §6).
"""


from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
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


def run_one(case: str, method: str, coil_energy: float | None = None) -> dict:
    """One timed reconstruction (after a 3-iteration warm-up) on the default path (``coil_energy``: that coil
    compression instead of the default)."""
    sc = scan_for(case)
    noise = ni.noise.Gaussian(sc.sigma)
    kw = {**METHODS[method], **({} if coil_energy is None else {"coil_energy": coil_energy})}
    ni.reconstruct(sc.kspace, sc.operator, method, noise=noise, iterations=3, **kw)
    t, cpu = time.perf_counter(), time.process_time()
    rec = ni.reconstruct(sc.kspace, sc.operator, method, noise=noise, **kw)
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    return {"s": seconds, "cpu": cpu, "iterations": rec.info["iterations"], "file": ni.__file__,
            "psnr": ni.metrics.psnr(np.abs(rec.mean), np.abs(sc.image)),
            "coils": rec.info.get("coil_compression", {}).get("coils")}


def compare(args) -> None:
    trees = {"baseline": os.path.abspath(args.baseline),
             "this tree": os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))}
    print(f"# CS-MRI, this tree against {trees['baseline']}, {time.strftime('%Y-%m-%d %H:%M')}, {args.threads} "
          f"thread(s), load {os.getloadavg()[0]:.1f}")
    print("| case | method | iterations (baseline / this) | PSNR baseline | PSNR this | s baseline | s this | "
          "baseline / this | CPU s baseline | CPU s this |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        for method in args.methods.split(","):
            runs: dict[str, list[dict]] = {k: [] for k in trees}
            for _ in range(args.repeats):
                for name, src in trees.items():
                    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": str(args.threads)}
                    extra = ["--coil-energy", str(args.coil_energy)] if args.coil_energy and name == "this tree" else []
                    res = subprocess.run([sys.executable, __file__, "--one", case, method, "--threads",
                                          str(args.threads)] + extra, capture_output=True, text=True, env=env,
                                         check=False)
                    if res.returncode != 0:
                        raise RuntimeError(res.stderr[-3000:])
                    r = json.loads(res.stdout.strip().splitlines()[-1])
                    assert r["file"].startswith(src), (r["file"], src)
                    runs[name].append(r)
            b, n = runs["baseline"], runs["this tree"]
            sb, sn = float(np.median([r["s"] for r in b])), float(np.median([r["s"] for r in n]))
            cb, cn = float(np.median([r["cpu"] for r in b])), float(np.median([r["cpu"] for r in n]))
            coils = f" ({n[0]['coils']} coils)" if args.coil_energy else ""
            print(f"| {case} | {method} | {b[0]['iterations']} / {n[0]['iterations']} | {b[0]['psnr']:.2f} | "
                  f"{n[0]['psnr']:.2f}{coils} | {sb:.2f} | {sn:.2f} | {sb / sn:.2f}× | {cb:.2f} | {cn:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--methods", default="wavelet,tv")
    parser.add_argument("--baseline", help="another tree's src folder: compare with it (subprocesses)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--coil-energy", type=float,
                        help="with --baseline: this tree with this coil compression (the tv/wavelet coil_energy)")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(run_one(*args.one, coil_energy=args.coil_energy)))
        return
    if args.baseline:
        compare(args)
        return
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
