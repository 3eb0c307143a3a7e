"""Diffusion samplers: the previous defaults (pure-noise start at σ = 1, 50 / 30 steps to σ = 0.003) against the
current ones (a first estimate plus noise, fewer steps), on the cases of ``bench_sampling.py``, in one process.

Prints per method and case: PSNR of the mean, coverage of the 90% interval, std–error correlation, network
evaluations (forward passes of one image; DPS also back-propagates through each), seconds, and the ratio of the
current defaults' seconds to the previous ones'. Old and new run alternately in the same process, so the ratio holds
on a loaded machine where the seconds do not.

Run: ``python benchmarks/bench_diffusion_speed.py --size 256 --cases 2 --samples 16 --threads 2``.
"""

from __future__ import annotations

import argparse
import time

import torch

import napari_invimg as ni
from bench_sampling import CASES, make_case

#: the defaults before issue #20 (item 4)
PREVIOUS = {
    "dps": dict(iterations=50, start="noise", sigma_max=1.0, sigma_min=0.003),
    "diffpir": dict(iterations=30, start="noise", sigma_max=1.0, sigma_min=0.003),
}


def run(method: str, x, A, noise, y, samples: int, **params) -> dict:
    t = time.perf_counter()
    rec = ni.reconstruct(y, A, method, noise, seed=0, n_samples=samples, **params)
    seconds = time.perf_counter() - t
    return dict(psnr=ni.metrics.psnr(rec.mean, x), coverage=ni.diagnostics.coverage(rec, x, 0.9),
                corr=ni.diagnostics.std_error_correlation(rec, x), evals=rec.info["network_evaluations"],
                steps=rec.info["iterations"], start=rec.info.get("start", "noise"), seconds=seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--cases", default="0,1,2", help="indices into bench_sampling's case list")
    parser.add_argument("--methods", default="dps,diffpir")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# Diffusion speed, previous vs current defaults — {time.strftime('%Y-%m-%d %H:%M')}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.samples} samples, {args.size}²")
    print("\n| case | method | defaults | start | steps | PSNR | coverage 90% | std–error corr | network evals | "
          "seconds | seconds ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for ci in (int(c) for c in args.cases.split(",")):
        x, A, noise, y, _ = make_case(CASES[ci], args.size)
        for m in args.methods.split(","):
            old = run(m, x, A, noise, y, args.samples, **PREVIOUS[m])
            new = run(m, x, A, noise, y, args.samples)
            for label, r in (("previous", old), ("current", new)):
                ratio = f"{r['seconds'] / old['seconds']:.2f}"
                print(f"| {CASES[ci]} | {m} | {label} | {r['start']} | {r['steps']} | {r['psnr']:.2f} | "
                      f"{r['coverage']:.3f} | {r['corr']:.3f} | {r['evals']} | {r['seconds']:.1f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
