"""Seconds per iteration of DIP, Bayesian DIP, DPS and DiffPIR, this tree against a baseline source tree, measured
in one run (issue #20 items 3–4: "measure where the time goes ... make them faster"; ratios, for a loaded machine).

Each (tree, method) runs ``--iterations`` iterations (Adam steps with ``stop="none"``, or diffusion steps with
``--samples`` samples) of the RESULTS §4 fluorescence/blur problem (Gaussian PSF σ = 2 px, Poisson–Gaussian gain
0.005, σ 0.01) in its own subprocess, alternating baseline and
this tree ``--repeats`` times; the table gives the median seconds per iteration, the ratio and the largest
difference between the two trees' results relative to the image's range (the same iterations: only rounding
should differ). Make a baseline tree with ``git archive main src | tar -x -C /tmp/base``.

Run: ``python benchmarks/bench_speed_vs_baseline.py --baseline /tmp/base/src`` (``--size 128 --iterations 40
--threads 1 --methods dip,bayes_dip,dps,diffpir --samples 16``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


DIFFUSION = ("dps", "diffpir")


def run_one(method: str, size: int, iterations: int, threads: int, out: str, samples: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    import napari_invimg as ni

    x = ni.datasets.fluorescence((size, size), seed=1).astype(np.float32)
    A = ni.operators.Blur(ni.psf.gaussian((15, 15), (2.0, 2.0)), (size, size))
    noise = ni.noise.PoissonGaussian(0.005, 0.01)
    y = ni.simulate(x, A, noise, seed=0)
    extra = {"n_samples": samples} if method in DIFFUSION else {"stop": "none"}
    ni.reconstruct(y, A, method, noise=noise, iterations=2, **extra)  # warm-up
    t = time.perf_counter()
    rec = ni.reconstruct(y, A, method, noise=noise, iterations=iterations, seed=0, **extra)
    seconds = time.perf_counter() - t
    np.save(out, np.asarray(rec.mean, dtype=np.float32))
    return {"s_per_it": seconds / iterations, "file": ni.__file__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=False, help="the baseline tree's src folder")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default="dip,bayes_dip,dps,diffpir")
    ap.add_argument("--samples", type=int, default=16, help="samples of the diffusion methods")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], args.size, args.iterations, args.threads, args.one[1], args.samples)))
        return
    trees = {"baseline": os.path.abspath(args.baseline), "this tree": os.path.abspath(HERE)}
    print(f"# Seconds per iteration, {args.size}², {args.iterations} iterations ({args.samples} samples for diffusion), "
          f"{args.threads} torch thread(s), "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| method | baseline s/it | this tree s/it | ratio (this / baseline) | max Δ / range |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            times: dict[str, list[float]] = {k: [] for k in trees}
            for rep in range(args.repeats):
                for name, src in trees.items():
                    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": str(args.threads)}
                    out = os.path.join(tmp, f"{method}_{name.replace(' ', '_')}.npy")
                    res = subprocess.run([sys.executable, __file__, "--one", method, out, "--size", str(args.size),
                                          "--iterations", str(args.iterations), "--threads", str(args.threads),
                                          "--samples", str(args.samples)],
                                         capture_output=True, text=True, env=env, check=False)
                    if res.returncode != 0:
                        raise RuntimeError(res.stderr[-3000:])
                    r = json.loads(res.stdout.strip().splitlines()[-1])
                    assert r["file"].startswith(src), (r["file"], src)
                    times[name].append(r["s_per_it"])
            a, b = (np.load(os.path.join(tmp, f"{method}_{n.replace(' ', '_')}.npy")) for n in trees)
            base, new = float(np.median(times["baseline"])), float(np.median(times["this tree"]))
            diff = float(np.abs(a - b).max() / max(float(np.ptp(a)), 1e-30))
            print(f"| {method} | {base:.3f} | {new:.3f} | {new / base:.2f} | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
