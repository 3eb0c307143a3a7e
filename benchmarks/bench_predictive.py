"""The held-out-measurement check (``ni.diagnostics.predictive_check``) against the truth-based coverage.

For each case of ``bench_sampling.py`` (fluorescence deblur and 50% inpainting, Poisson–Gaussian; camera blur,
Gaussian) and each sampler: leave out 10% of the measurements, reconstruct from the rest, and print the
predictive coverage of the held-out data, the noise-free coverage it implies (``posterior_coverage``), the
verdict, the image coverage that κ implies when it scales only the data-informed part of the
spread (``image_coverage``, used by the verdict), and the coverage of the truth by the same reconstruction's 90% interval (``diagnostics.coverage``).

    PYTHONPATH=src python benchmarks/bench_predictive.py [--size 64] [--cases 0,1,2] [--methods pnp_ula,ula,vb]
"""

from __future__ import annotations

import argparse
import time

import torch

import napari_invimg as ni
from bench_sampling import CASES, PARAMS, make_case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--cases", default="0,1,2")
    parser.add_argument("--methods", default="pnp_ula,ula,vb,dps,diffpir,bayes_dip")
    parser.add_argument("--holdout", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'case':48s} {'method':10s} {'held-out cov':>12s} {'implied':>8s} {'κ':>6s} {'verdict':>13s} "
          f"{'truth cov':>9s} {'|Δ|':>6s} {'image':>6s} {'informed':>8s} {'|Δ| image':>9s} {'s':>6s}")
    for ci in (int(c) for c in args.cases.split(",")):
        x, A, noise, y, _ = make_case(CASES[ci], args.size)
        for method in args.methods.split(","):
            t = time.perf_counter()
            chk = ni.diagnostics.predictive_check(method, y, A, noise, holdout=args.holdout, seed=0, **PARAMS[method])
            truth = ni.diagnostics.coverage(chk.reconstruction, x, 0.9)
            print(f"{CASES[ci]:48s} {method:10s} {chk.coverage:12.3f} {chk.posterior_coverage:8.3f} "
                  f"{chk.inflation:6.2f} {chk.verdict:>13s} {truth:9.3f} {abs(truth - chk.posterior_coverage):6.3f} "
                  f"{chk.image_coverage:6.3f} {chk.data_informed:8.3f} {abs(truth - chk.image_coverage):9.3f} "
                  f"{time.perf_counter() - t:6.1f}", flush=True)


if __name__ == "__main__":
    main()
