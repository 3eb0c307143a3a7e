"""Richardson–Lucy's discrepancy stop: the point whose data fit it measured against the iterates around it.

With Biggs–Andrews acceleration RL evaluates the data fit (the Poisson deviance per pixel) at the extrapolated point
``v_k = x_{k−1} + α_k (x_{k−1} − x_{k−2})`` (clamped at zero), the only image whose model ``A v_k`` it computes. When
that fit first reaches the noise level (``misfit ≤ τ``) RL returns ``v_k`` (since 2026-12-08, helper ``rl6``); before,
it returned ``x_{k−1}``, whose own fit was never measured (it is ``v_k`` only where ``α_k = 0``). This script compares,
at the default settings, the PSNR of

* ``v_k`` (RL's result),
* ``x_{k−1}`` (the earlier result: ``k − 1`` iterations replayed with the run's weights and 0 for the result's), and
* ``x_k`` (one RL step from ``v_k``, replayed likewise),

on the image sets below, from the public API. It also checks that the replay with the run's own weights (what a tiled
run does) gives RL's result.

    PYTHONPATH=src python benchmarks/bench_rl_stop_point.py [heldout|validation|fluorescence|bars] [THREADS]

``heldout``: the ten 128² cases of ``bench_pnp_guard.py --images heldout`` (Gaussian blur σ = 2.5 px, Poisson–Gaussian
gain 1/300, read noise 0.01, noise seed 1), the set on which the lead checked over-relaxed RL (benchmarks/RESULTS.md §1);
``validation``: ``bench_pnp_guard.validation_images`` with the same model; ``fluorescence``: 512² fluorescence seeds
4–6 with ``bench_rl.py``'s PSF at ~100 and ~2000 photons and 32×128² seeds 4–5 with its 3D PSF (noise seed = seed +
100); ``bars``: the three cases of ``bench_rl.py``.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import napari_invimg as ni  # noqa: E402
from napari_invimg.metrics import psnr  # noqa: E402


def small_cases(which: str):
    from bench_pnp_guard import validation_images
    from napari_invimg.nets.corpus import heldout_images

    if which == "heldout":
        images = {k: v.astype(np.float32) for k, v in heldout_images(128).items()}
        images["fluorescence"] = ni.datasets.fluorescence((128, 128), seed=3)
    else:
        images = validation_images(128)
    for name, x in images.items():
        A = ni.operators.Blur(ni.psf.gaussian((21, 21), sigma=2.5), x.shape)
        noise = ni.noise.PoissonGaussian(gain=1 / 300, sigma=0.01)
        yield name, x, A, noise, noise.sample(A(x), seed=1).astype(np.float32)


def fluorescence_cases():
    from bench_rl import CASES

    psf2 = ni.psf.widefield((31, 31), wavelength_um=0.52, na=1.2, pixel_size_um=0.065, ni=1.33)
    psf3 = ni.psf.widefield((31, 31, 31), wavelength_um=0.52, na=1.2, pixel_size_um=0.1, z_step_um=0.25, ni=1.33)
    for (dims, gain, sigma), label in zip(CASES.values(), ("~100 photons", "~2000 photons", "3D ~2000 photons")):
        for seed in ((4, 5, 6) if dims == 2 else (4, 5)):
            shape, psf = ((512, 512), psf2) if dims == 2 else ((32, 128, 128), psf3)
            x = ni.datasets.fluorescence(shape, seed=seed)
            A = ni.operators.Blur(psf, shape, boundary="reflect")
            noise = ni.noise.PoissonGaussian(gain=gain, sigma=sigma)
            yield f"{label} seed {seed}", x, A, noise, ni.simulate(x, A, noise, seed=seed + 100)


def bar_cases():
    from bench_rl import CASES, make_case

    for name in CASES:
        x, _, A, noise, y = make_case(name)
        yield name, x, A, noise, y


def stop_points(x, A, noise, y) -> dict[str, float]:
    rec = ni.reconstruct(y, A, "richardson_lucy", noise=noise)
    k = int(rec.info["iterations"])
    if not str(rec.info["stopped"]).startswith("discrepancy"):
        raise RuntimeError(f"no discrepancy stop within {k} iterations")
    alpha = tuple(float(a) for a in rec.info["history"]["alpha"])  # α_1 … α_k

    def replay(n: int, last: float) -> np.ndarray:  # n iterations with the run's weights, the result's weight last
        return ni.reconstruct(y, A, "richardson_lucy", noise=noise, iterations=n, stop="none",
                              extrapolation=alpha[:n] + (last,)).mean

    same = replay(k - 1, alpha[k - 1])
    if not np.allclose(same, rec.mean, atol=1e-5 * float(np.abs(rec.mean).max())):
        raise RuntimeError("the replay with the run's weights does not give RL's result")
    return {"k": k, "alpha": alpha[k - 1], "point": psnr(rec.mean, x), "before": psnr(replay(k - 1, 0.0), x),
            "next": psnr(replay(k, 0.0), x)}


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "heldout"
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    cases = {"heldout": lambda: small_cases("heldout"), "validation": lambda: small_cases("validation"),
             "fluorescence": fluorescence_cases, "bars": bar_cases}[which]()
    print(f"RL at its defaults, discrepancy stop at iteration k; PSNR (dB) of v_k (RL's result: the point whose fit "
          f"reached the noise level), x_(k-1) (the result before 2026-12-08) and x_k; load {os.getloadavg()[0]:.1f}")
    print("| case | k | α_k | v_k | x_(k−1) | v_k − x_(k−1) | x_k | x_k − x_(k−1) |\n|---|---|---|---|---|---|---|---|")
    deltas = []
    for name, x, A, noise, y in cases:
        r = stop_points(x, A, noise, y)
        deltas.append(r["point"] - r["before"])
        print(f"| {name} | {r['k']} | {r['alpha']:.2f} | {r['point']:.2f} | {r['before']:.2f} | "
              f"{r['point'] - r['before']:+.2f} | {r['next']:.2f} | {r['next'] - r['before']:+.2f} |", flush=True)
    print(f"v_k − x_(k−1): mean {np.mean(deltas):+.3f} dB, least {np.min(deltas):+.3f} dB")


if __name__ == "__main__":
    main()
