"""MRI posterior benchmark (issue #19): ``sparse_laplace`` against the best L1-wavelet MAP.

Cases as in RESULTS §6: brain and Shepp–Logan, 8 coils, Poisson-disc 8×, 30 dB, σ given. Prints PSNR of the
magnitude, the coverage of the truth's magnitude by the 90% interval (``diagnostics.interval_halfwidth`` around
the magnitude of the mean), the std–error correlation and the seconds.

    PYTHONPATH=src python benchmarks/bench_mri_posterior.py --size 256 --threads 1
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import napari_invimg as ni
from napari_invimg import mri

CASES = {"brain": lambda n: mri.brain((n, n)), "shepp-logan": lambda n: mri.shepp_logan((n, n)).astype(np.complex64)}


def row(sc, x, method: str, **kw) -> dict:
    t = time.perf_counter()
    rec = ni.reconstruct(sc.kspace, sc.operator, method, noise=ni.noise.Gaussian(sc.sigma), seed=0, **kw)
    dt = time.perf_counter() - t
    err = np.abs(np.abs(np.asarray(rec.mean)) - np.abs(x))
    out = {"psnr": 10 * np.log10(np.abs(x).max() ** 2 / np.mean(err**2)), "seconds": dt, "coverage": None, "corr": None}
    if rec.std is not None:
        out["coverage"] = float(np.mean(err <= ni.diagnostics.interval_halfwidth(rec, 0.9)))
        out["corr"] = float(np.corrcoef(np.asarray(rec.std).ravel(), err.ravel())[0, 1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cases", default="brain,shepp-logan")
    ap.add_argument("--priors", default="wavelet,tv")
    ap.add_argument("--floor", type=float, default=None, help="sparse_laplace's floor ε (empty: its default)")
    ap.add_argument("--no-map", action="store_true", help="skip the MAP rows")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print("| case | method | PSNR | coverage 90% | std–error corr | s |\n|---|---|---|---|---|---|")
    for name in args.cases.split(","):
        x = CASES[name](args.size)
        sc = mri.simulate_kspace(x, 8, kind="poisson", acceleration=8, snr_db=30.0, seed=0)
        runs = [] if args.no_map else [("wavelet (haar), MAP", "wavelet", {"wavelet": "haar"}), ("tv, MAP", "tv", {})]
        extra = {} if args.floor is None else {"floor": args.floor}
        runs += [(f"sparse_laplace, prior={p}" + (f", floor={args.floor:g}" if extra else ""), "sparse_laplace",
                  {"prior": p, **extra}) for p in args.priors.split(",")]
        for label, method, kw in runs:
            r = row(sc, x, method, **kw)
            cov = "—" if r["coverage"] is None else f"{r['coverage']:.3f}"
            corr = "—" if r["corr"] is None else f"{r['corr']:.3f}"
            print(f"| {name} 8c Poisson 8× {args.size}² | {label} | {r['psnr']:.2f} | {cov} | {corr} | {r['seconds']:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
