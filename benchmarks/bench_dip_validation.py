"""DIP on validation images (not the §4 stop table's): candidates for a faster stop are chosen here, then re-timed on
the table (``bench_dip.py --stop-table``). Each run is as a user runs it (``stop="auto"``, at most 2000 iterations);
prints iterations run, the stop, the PSNR of the returned image, CPU seconds per iteration and the running-mean PSNR
every 100 iterations, for the defaults and for ``--params``, in one process (so the ratios share the machine's load).

Images: ``datasets.fluorescence(seed=2)`` (the table uses seed 1) and the bottom-right 256×256 crop of scikit-image's
``cell`` (the table uses the central crop), resized for other sizes; blur and noise as ``bench_dip.problem``.

    python benchmarks/bench_dip_validation.py --threads 1 --params '{"precondition": 0.01}'
    python benchmarks/bench_dip_validation.py --only cellbr --size 64 --iterations 60      # a quick check
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

import napari_invimg as ni

CASES = ("fluo2", "cellbr")


def image(name: str, size: int) -> np.ndarray:
    if name == "fluo2":
        return ni.datasets.fluorescence((size, size), seed=2)
    if name != "cellbr":
        raise SystemExit(f"unknown case {name!r}; one of {CASES}")
    crop = np.ascontiguousarray(ni.datasets.cell()[400:656, 290:546])
    if size == 256:
        return crop
    from skimage.transform import resize

    return resize(crop, (size, size), anti_aliasing=True).astype(np.float32)


def run(name: str, size: int, iterations: int, params: dict) -> dict:
    x = image(name, size)
    A = ni.operators.Blur(ni.psf.gaussian((15, 15), sigma=2.0), x.shape)
    noise = ni.noise.PoissonGaussian(gain=0.005, sigma=0.01)
    y = ni.simulate(x, A, noise, seed=0)
    beta = 1 - 1 / params.get("window", 50)
    path, cpu, state = [], [], {"mean": None}

    def progress(i, total, preview):
        cpu.append(time.process_time())
        m = state["mean"]
        state["mean"] = preview.copy() if m is None else beta * m + (1 - beta) * preview
        path.append(ni.metrics.psnr(state["mean"], x))

    t0 = time.perf_counter()
    rec = ni.reconstruct(y, A, "dip", noise, seed=0, iterations=iterations, progress=progress, **params)
    info = rec.info
    return {"ran": info["iterations"], "stop": info["stop_iteration"], "why": info["stopped"].split(":")[0],
            "psnr": ni.metrics.psnr(rec.mean, x), "wall": time.perf_counter() - t0,
            "cpu_per_it": float(np.median(np.diff(cpu))) if len(cpu) > 2 else float("nan"), "path": path}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--only", default=None, help=f"one case: {', '.join(CASES)}")
    ap.add_argument("--params", default="{}", help='candidate parameters as JSON, e.g. {"precondition": 0.01}')
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = {"defaults": {}}
    if json.loads(args.params):
        settings[args.params] = json.loads(args.params)
    print(f"# size {args.size}², at most {args.iterations} iterations, {torch.get_num_threads()} torch threads")
    print("| case | settings | iterations run | stop (rule) | PSNR at stop | CPU s/it | running-mean PSNR every 100 |")
    print("|---|---|---|---|---|---|---|")
    for case in [args.only] if args.only else CASES:
        for label, params in settings.items():
            r = run(case, args.size, args.iterations, params)
            marks = " / ".join(f"{p:.2f}" for p in r["path"][99::100])
            print(f"| {case} | {label} | {r['ran']} | {r['stop']} ({r['why']}) | {r['psnr']:.2f} | {r['cpu_per_it']:.3f} "
                  f"| {marks} |", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
