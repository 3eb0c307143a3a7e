"""Interferometer: direct Fourier transform (matrix) vs NUFFT (finufft), EHT 2017 coverage of M87*.

Prints, per image size and transform, the seconds to build the operator, one forward, one adjoint and
one gradient of ‖A x − y‖² through torch autograd (float32, one torch thread, median of ``--repeat`` runs),
and the largest difference between the two transforms relative to the largest visibility.

    PYTHONPATH=src python benchmarks/bench_blackhole_transform.py [--sizes 64,256] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import napari_invimg.blackhole as bh

FOV = 160.0


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,256")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    obs = bh.simulate(bh.models.ring(), FOV, seed=0)
    print(f"EHT 2017 / M87*: {len(obs)} visibilities; float32, 1 thread; median of {args.repeat}")
    print(f"{'npix':>5s} {'transform':10s} {'build s':>8s} {'forward ms':>11s} {'adjoint ms':>11s} "
          f"{'gradient ms':>12s} {'max |ΔV|/max|V|':>16s}")
    for npix in (int(s) for s in args.sizes.split(",")):
        x = torch.as_tensor(bh.models.ring(npix=npix, fov_uas=FOV), dtype=torch.float32)
        y = torch.as_tensor(obs.vis.astype(np.complex64))
        results = {}
        for transform in ("dft", "nufft"):
            t = time.perf_counter()
            A = bh.Interferometer(obs, npix, FOV, transform=transform)
            build = time.perf_counter() - t
            results[transform] = time_operator(A, x, y, args.repeat)
            vis = results[transform].pop("vis")
            results[transform]["vis"] = vis
            diff = float((vis - results["dft"]["vis"]).abs().max() / results["dft"]["vis"].abs().max())
            r = results[transform]
            print(f"{npix:5d} {transform:10s} {build:8.2f} {1e3 * r['forward']:11.2f} {1e3 * r['adjoint']:11.2f} "
                  f"{1e3 * r['gradient']:12.2f} {diff:16.1e}", flush=True)


def time_operator(A: bh.Interferometer, x: torch.Tensor, y: torch.Tensor, repeat: int) -> dict:
    """Median seconds of a forward, an adjoint and a gradient of ‖A x − y‖², and the visibilities of ``x``."""

    def gradient():
        z = x.clone().requires_grad_(True)
        ((A.apply(z) - y).abs() ** 2).sum().backward()

    with torch.no_grad():
        out = {"forward": median_seconds(lambda: A.apply(x), repeat),
               "adjoint": median_seconds(lambda: A.apply_adjoint(y), repeat), "vis": A.apply(x)}
    out["gradient"] = median_seconds(gradient, repeat)
    return out


if __name__ == "__main__":
    main()
