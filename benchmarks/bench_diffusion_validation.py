"""Diffusion samplers on validation cases (not the scored ones of ``bench_sampling.py``): settings side by side.

The scored cases are fluorescence seed 1 (deblurring, 50% inpainting) and scikit-image's ``camera`` (blur 1.5 px,
σ = 0.03). Here the same forward models and noise run on *other* images: fluorescence seeds 11 and 12 (the
calibration images of ``bench_sampling``) and the photographs astronaut, coffee and chelsea — so that schedule and
step choices for ``dps`` / ``diffpir`` are made without looking at the scored rows. Each setting is a JSON dict of
parameters added to ``n_samples`` (``{}`` = the registered defaults). Prints PSNR of the mean, coverage of the 90%
interval, std–error correlation, network evaluations and CPU seconds (``time.process_time``, one process), then per
setting the mean over the cases and the number of cases with coverage in [0.80, 0.97].

Run: ``python benchmarks/bench_diffusion_validation.py --size 128 --methods dps --settings '{}' '{"iterations": 12}'``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import napari_invimg as ni
from bench_sampling import _resize

#: validation cases: (label, kind, image index or seed)
VALIDATION = (
    ("fluo deblur s11", "deblur", 11), ("fluo deblur s12", "deblur", 12),
    ("fluo inpaint s11", "inpaint", 11), ("fluo inpaint s12", "inpaint", 12),
    ("astronaut blur", "photo", 8), ("coffee blur", "photo", 9), ("chelsea blur", "photo", 10),
)


def make_validation_case(kind: str, which: int, n: int):
    """Truth, operator, noise and measurement with ``bench_sampling``'s forward models on another image."""
    if kind in ("deblur", "inpaint"):
        x = ni.datasets.fluorescence((n, n), seed=which)
        noise = ni.noise.PoissonGaussian(gain=0.01, sigma=0.01)
        A = (ni.operators.Inpainting(ni.operators.sampling.random_mask((n, n), 0.5, seed=3)) if kind == "inpaint"
             else ni.operators.Blur(ni.psf.gaussian((15, 15), sigma=2.0), (n, n)))
    else:
        x = _resize(ni.datasets.natural_images()[which], n)
        noise = ni.noise.Gaussian(0.03)
        A = ni.operators.Blur(ni.psf.gaussian((11, 11), sigma=1.5), (n, n))
    return x, A, noise, ni.simulate(x, A, noise, seed=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--methods", default="dps,diffpir")
    parser.add_argument("--cases", default=",".join(str(i) for i in range(len(VALIDATION))),
                        help="indices into VALIDATION")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="seed of the samplers' noise")
    parser.add_argument("--settings", nargs="+", default=["{}"], help="JSON dicts of parameters ({} = defaults)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [VALIDATION[int(i)] for i in args.cases.split(",")]
    print(f"# Diffusion validation — {time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.samples} samples, {args.size}², seed {args.seed}")
    print("\n| case | method | setting | PSNR | coverage 90% | std–error corr | network evals | CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    summary: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for label, kind, which in cases:
        x, A, noise, y = make_validation_case(kind, which, args.size)
        for m in args.methods.split(","):
            for s in args.settings:
                params = json.loads(s)
                c = time.process_time()
                rec = ni.reconstruct(y, A, m, noise, seed=args.seed, n_samples=args.samples, **params)
                cpu = time.process_time() - c
                p, cov = ni.metrics.psnr(rec.mean, x), ni.diagnostics.coverage(rec, x, 0.9)
                corr = ni.diagnostics.std_error_correlation(rec, x)
                summary.setdefault((m, s), []).append((p, cov, corr))
                print(f"| {label} | {m} | `{s}` | {p:.2f} | {cov:.3f} | {corr:.3f} | "
                      f"{rec.info['network_evaluations']} | {cpu:.1f} |", flush=True)
    print("\n| method | setting | mean PSNR | mean coverage | min coverage | in [0.80, 0.97] | mean corr |")
    print("|---|---|---|---|---|---|---|")
    for (m, s), rows in summary.items():
        a = np.asarray(rows)
        inband = int(((a[:, 1] >= 0.80) & (a[:, 1] <= 0.97)).sum())
        print(f"| {m} | `{s}` | {a[:, 0].mean():.2f} | {a[:, 1].mean():.3f} | {a[:, 1].min():.3f} | "
              f"{inband}/{len(a)} | {a[:, 2].mean():.3f} |")


if __name__ == "__main__":
    main()
