"""Plug-and-play that cannot run away (issue #14): default PnP-ADMM without and with the guard, against TV and RL.

Problems: Gaussian blur (σ = 2.5 px) and Poisson–Gaussian camera noise (gain 1/300, read noise 0.01) on
128² center crops of scikit-image's ``moon``, ``coins``, ``camera`` (held out from the denoiser's new
training corpus) and the synthetic fluorescence image (seed 3). Every method at its defaults. "plain" is
PnP-ADMM as before issue #14 (``guard=False, equivariant=False``); "guarded" is the new default (the
divergence monitor and per-iteration flips/rotations); ``--lam`` sets λ of the guarded run (default 0.23). Cells: PSNR (dB); last columns: the guarded run's
``info["prior_fit"]`` (misfit ratio, out-of-distribution score, warning?) and its restarts.

    PYTHONPATH=src python benchmarks/bench_pnp_guard.py [--size 128] [--weights FILE] [--images heldout|validation] [--red] [--trace]

``--images validation``: images for choosing the scheme's defaults, never the bar's test images (helper ``bm3d4``,
RESULTS §3): procedural cells (seeds HELDOUT_SEED+1, +2) and dead leaves (HELDOUT_SEED+1), fluorescence seeds 4 and 5
(never trained on), and the training images ``brick``, ``gravel``, ``clock`` (seen by the denoiser, not by the PnP
bar); 128² centre crops of 256² images.

``--images heldout``: the bar's set (issue #14): the held-out list of ``nets.corpus.heldout_images`` (five scikit-image
images, fluorescence seeds 0 and 1, held-out dead leaves and cells) plus the synthetic fluorescence (seed 3); the
"plain" column is then the pre-#14 default (adjoint start, no injection, no mean, no guard, no flips). The last line
checks the bars: mean ≥ TV + 1 dB, no image more than 0.5 dB below the better of TV and RL.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import napari_invimg as ni
from napari_invimg.metrics import psnr
from napari_invimg.nets.corpus import bundled_image


def crop(a: np.ndarray, n: int) -> np.ndarray:
    r, c = max(0, (a.shape[0] - n) // 2), max(0, (a.shape[1] - n) // 2)
    return np.ascontiguousarray(a[r:r + n, c:c + n], dtype=np.float32)


def validation_images(size: int) -> dict[str, np.ndarray]:
    """Images for choosing plug-and-play defaults: neither the bar's held-out test images nor their seeds."""
    from napari_invimg.nets.corpus import HELDOUT_SEED, cells, dead_leaves

    big = {f"cells-{HELDOUT_SEED + i}": cells((256, 256), seed=HELDOUT_SEED + i) for i in (1, 2)}
    big[f"dead_leaves-{HELDOUT_SEED + 1}"] = dead_leaves((256, 256), seed=HELDOUT_SEED + 1)
    big.update({f"fluorescence-{s}": ni.datasets.fluorescence((256, 256), seed=s) for s in (4, 5)})
    big.update({name: bundled_image(name) for name in ("brick", "gravel", "clock")})
    return {k: crop(v, size) for k, v in big.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--lam", type=float, default=0.23, help="λ of the guarded run")
    ap.add_argument("--weights", default="", help="denoiser weights file for PnP (empty: shipped)")
    ap.add_argument("--images", choices=("four", "heldout", "validation"), default="four")
    ap.add_argument("--red", action="store_true", help="also run `red` at its defaults (bar: ≥ TV − 0.5 dB on every image)")
    ap.add_argument("--trace", action="store_true",
                    help="also print the PSNR of every progress preview of the guarded run (the first estimate's, then "
                         "one per PnP iteration; the last is the mean of the last iterates)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.images == "heldout":
        from napari_invimg.nets.corpus import heldout_images

        images = {k: v.astype(np.float32) for k, v in heldout_images(args.size).items()}
    elif args.images == "validation":
        images = validation_images(args.size)
    else:
        images = {name: crop(bundled_image(name), args.size) for name in ("moon", "coins", "camera")}
    if args.images != "validation":
        images["fluorescence"] = ni.datasets.fluorescence((args.size, args.size), seed=3)
    plain = {"guard": False, "equivariant": False, "lam": 0.23, "weights": args.weights}
    if args.images != "four":  # the default before the #14 changes of the scheme
        plain.update(start="adjoint", sigma_start=0.2, noise_injection=0.0, average=1)
    runs = {"RL": ("richardson_lucy", {}), "TV": ("tv", {}),
            "PnP plain": ("pnp_admm", plain),
            "PnP guarded": ("pnp_admm", {"weights": args.weights, "lam": args.lam})}
    if args.red:
        runs["RED"] = ("red", {"weights": args.weights})
    print(f"load average {os.getloadavg()[0]:.1f}; torch threads 1; {args.size}² crops; weights: {args.weights or 'shipped'}; guarded λ {args.lam}")
    print(f"{'image':13s}" + "".join(f"{k:>13s}" for k in runs) + "   guarded-plain  vs best(TV,RL)  misfit   ood  warn restarts  s(plain/guarded)")
    table = {}
    for name, x in images.items():
        A = ni.operators.Blur(ni.psf.gaussian((21, 21), sigma=2.5), x.shape)
        noise = ni.noise.PoissonGaussian(gain=1 / 300, sigma=0.01)
        y = noise.sample(A(x), seed=1).astype(np.float32)
        row, secs, info = {}, {}, {}
        for label, (method, params) in runs.items():
            t = time.perf_counter()
            trace: list[float] = []
            watch = None
            if args.trace and label == "PnP guarded":
                def watch(i, n, preview, x=x, trace=trace):
                    if preview is not None:
                        trace.append(psnr(preview, x))
            rec = ni.reconstruct(y, A, method, noise=noise, progress=watch, **params)
            if trace:
                print(f"  trace {name}: " + " ".join(f"{v:.2f}" for v in trace), flush=True)
            secs[label] = time.perf_counter() - t
            row[label] = psnr(rec.mean, x)
            info[label] = rec.info
        table[name] = row
        fit = info["PnP guarded"].get("prior_fit", {})
        restarts = len(info["PnP guarded"].get("guard", {}).get("restarts", []))
        best = max(row["TV"], row["RL"])
        print(f"{name:13s}" + "".join(f"{row[k]:13.2f}" for k in runs)
              + f"   {row['PnP guarded'] - row['PnP plain']:+13.2f}  {row['PnP guarded'] - best:+13.2f}"
              + f"  {fit.get('misfit_ratio', float('nan')):6.2f} {fit.get('ood_score', float('nan')):5.1f}"
              + f"  {'yes' if fit.get('warning') else 'no':>4s} {restarts:8d}  {secs['PnP plain']:.1f}/{secs['PnP guarded']:.1f}",
              flush=True)
    mean = {k: float(np.mean([r[k] for r in table.values()])) for k in runs}
    print(f"{'mean':13s}" + "".join(f"{mean[k]:13.2f}" for k in runs)
          + f"   {mean['PnP guarded'] - mean['PnP plain']:+13.2f}; guarded − TV {mean['PnP guarded'] - mean['TV']:+.2f} dB")
    worst = min(r["PnP guarded"] - max(r["TV"], r["RL"]) for r in table.values())
    print(f"bars: mean − TV {mean['PnP guarded'] - mean['TV']:+.2f} dB (≥ +1: {'met' if mean['PnP guarded'] - mean['TV'] >= 1 else 'NOT met'}); "
          f"worst image vs best(TV, RL) {worst:+.2f} dB (≥ −0.5: {'met' if worst >= -0.5 else 'NOT met'})")
    if args.red:
        worst_red = min(r["RED"] - r["TV"] for r in table.values())
        print(f"RED: mean − TV {mean['RED'] - mean['TV']:+.2f} dB; worst image − TV {worst_red:+.2f} dB "
              f"(≥ −0.5: {'met' if worst_red >= -0.5 else 'NOT met'})")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
