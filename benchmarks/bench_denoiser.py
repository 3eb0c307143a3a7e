"""Denoiser benchmark: the shipped learned denoiser vs the noisy input vs classical denoisers, and
self-supervised (Noise2Self/Noise2Void) training on a single noisy image.

Table 1: held-out synthetic fluorescence images (seeds never used in training), Gaussian noise σ,
mean PSNR of the noisy input, scikit-image wavelet (BayesShrink) and non-local means (σ given),
and the shipped net ``get_denoiser("drunet")``.
Table 2 (the issue's bar): one 512×512 noisy image at σ = 0.1, self-supervised training from
scratch and from the shipped weights for a wall-time budget; PSNR gain over the noisy input, seconds.

    python benchmarks/bench_denoiser.py            # full: 4 held-out images 256², 512² self-supervised, 120 s
    python benchmarks/bench_denoiser.py --quick    # 2 images 128², 256² self-supervised, 20 s
    python benchmarks/bench_denoiser.py --heldout-list [--weights FILE ...]   # issue #14: held-out list vs BM3D
    python benchmarks/bench_denoiser.py --heldout-list --self-ensemble          # + each net averaged over 8 flips/rotations
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import napari_invimg as ni
from napari_invimg.nets.training import heldout_set, train_denoiser
from napari_invimg.priors import get_denoiser


def classical(noisy: np.ndarray, sigma: float) -> dict[str, np.ndarray]:
    from skimage.restoration import denoise_nl_means, denoise_wavelet

    return {
        "wavelet": denoise_wavelet(noisy, sigma=sigma, method="BayesShrink", mode="soft", rescale_sigma=True),
        "nlm": denoise_nl_means(noisy, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True),
    }


def table_heldout(sigmas, seeds, shape) -> None:
    den = get_denoiser("drunet")
    rows: dict[float, dict[str, list[float]]] = {}
    for s, clean, noisy in heldout_set(sigmas, seeds=seeds, shape=shape):
        t = time.perf_counter()
        with torch.no_grad():
            out = den(torch.from_numpy(noisy), s).numpy()
        sec = time.perf_counter() - t
        r = rows.setdefault(s, {})
        r.setdefault("noisy", []).append(ni.metrics.psnr(noisy, clean))
        for name, im in classical(noisy, s).items():
            r.setdefault(name, []).append(ni.metrics.psnr(im, clean))
        r.setdefault("drunet", []).append(ni.metrics.psnr(out, clean))
        r.setdefault("ssim", []).append(ni.metrics.ssim(out, clean))
        r.setdefault("sec", []).append(sec)
    print(f"\nHeld-out fluorescence (seeds {list(seeds)}, {shape[0]}x{shape[1]}), Gaussian noise: mean PSNR [dB]")
    print(f"{'sigma':>6} {'noisy':>7} {'wavelet':>8} {'NLM':>7} {'drunet':>7} {'gain':>6} {'SSIM':>6} {'s/img':>6}")
    for s, r in rows.items():
        m = {k: float(np.mean(v)) for k, v in r.items()}
        best = max(m["wavelet"], m["nlm"])
        print(f"{s:6.3f} {m['noisy']:7.2f} {m['wavelet']:8.2f} {m['nlm']:7.2f} {m['drunet']:7.2f} "
              f"{m['drunet'] - best:+6.2f} {m['ssim']:6.3f} {m['sec']:6.2f}")
    print("gain = drunet minus the better classical denoiser")


def table_poisson_gaussian(seeds, shape, cameras=((0.002, 0.005), (0.01, 0.01), (0.04, 0.02))) -> None:
    """Poisson–Gaussian camera noise; every denoiser gets the effective σ = √(gain·mean x + σ²)."""
    den = get_denoiser("drunet")
    print(f"\nHeld-out fluorescence (seeds {list(seeds)}, {shape[0]}x{shape[1]}), Poisson-Gaussian noise: mean PSNR [dB]")
    print(f"{'gain':>6} {'sigma':>6} {'eff.σ':>6} {'noisy':>7} {'wavelet':>8} {'NLM':>7} {'drunet':>7}")
    for gain, read in cameras:
        rows: dict[str, list[float]] = {}
        effs = []
        for seed in seeds:
            clean = ni.datasets.fluorescence(shape, seed=int(seed))
            noisy = ni.noise.PoissonGaussian(gain, read).sample(clean, seed=100 + int(seed)).astype(np.float32)
            eff = float(np.sqrt(gain * clean.mean() + read**2))
            effs.append(eff)
            with torch.no_grad():
                out = den(torch.from_numpy(noisy), eff).numpy()
            rows.setdefault("noisy", []).append(ni.metrics.psnr(noisy, clean))
            for name, im in classical(noisy, eff).items():
                rows.setdefault(name, []).append(ni.metrics.psnr(im, clean))
            rows.setdefault("drunet", []).append(ni.metrics.psnr(out, clean))
        m = {k: float(np.mean(v)) for k, v in rows.items()}
        print(f"{gain:6.3f} {read:6.3f} {np.mean(effs):6.3f} {m['noisy']:7.2f} {m['wavelet']:8.2f} {m['nlm']:7.2f} "
              f"{m['drunet']:7.2f}")


def table_self_supervised(size: int, seconds: float, steps: int) -> None:
    sigma = 0.1
    images = {"fluorescence (seed 5)": ni.datasets.fluorescence((size, size), seed=5),
              "camera": ni.datasets.camera()[:size, :size]}
    rng = np.random.default_rng(1)
    print(f"\nSelf-supervised blind-spot training on one {size}x{size} noisy image, sigma = {sigma} "
          f"(estimated from the image), at most {steps} steps / {seconds:.0f} s budget")
    print(f"{'image':<22} {'start':<34} {'noisy':>7} {'result':>7} {'gain':>6} {'steps':>6} {'sec':>6}")
    shipped = get_denoiser("drunet")
    for name, clean in images.items():
        noisy = (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32)
        p0 = ni.metrics.psnr(noisy, clean)
        t0 = time.perf_counter()
        with torch.no_grad():
            p1 = ni.metrics.psnr(shipped(torch.from_numpy(noisy), sigma).numpy(), clean)
        print(f"{name:<22} {'(shipped, no training, true sigma)':<34} {p0:7.2f} {p1:7.2f} {p1 - p0:+6.2f} {0:>6} "
              f"{time.perf_counter() - t0:6.1f}")
        for start in ("scratch", "shipped"):
            t0 = time.perf_counter()
            done = [0]

            def budget(i, n, pv, t0=t0, done=done):
                done[0] = i
                return time.perf_counter() - t0 < seconds

            try:
                den = train_denoiser(noisy=noisy, steps=steps, start=start, normalize=False, seed=0,
                                     progress=budget)
            except ni.Cancelled as exc:  # the time budget ran out: use the weights so far
                den = exc.partial
            with torch.no_grad():
                out = den(torch.from_numpy(noisy), den.metadata["sigma"]).numpy()
            sec = time.perf_counter() - t0
            p1 = ni.metrics.psnr(out, clean)
            print(f"{name:<22} {start:<34} {p0:7.2f} {p1:7.2f} {p1 - p0:+6.2f} {done[0]:>6} {sec:6.1f}")
    print("sec = training + denoising the whole image, wall time")


def table_heldout_list(sigmas=(0.05, 0.1, 0.2), size: int = 128, weights: tuple[str, ...] = (),
                       self_ensemble: bool = False) -> None:
    """The issue's bar: the written held-out list (``nets.corpus.heldout_images``: images no training saw),
    Gaussian noise, true σ given to all; BM3D (``pip install bm3d``, the ``bench`` extra), non-local means and
    the learned denoiser(s): the shipped weights and any ``weights`` files; with ``self_ensemble`` also each of
    them averaged over the 8 flips/90° rotations (a column named with a trailing "+")."""
    from napari_invimg.nets.corpus import heldout_images
    from napari_invimg.priors.learned import LearnedDenoiser

    try:
        import bm3d
    except ImportError:
        bm3d = None
        print("note: bm3d is not installed (pip install bm3d); its column is skipped.")
    nets = {"shipped": LearnedDenoiser()}
    nets.update({f"w{i}": LearnedDenoiser(weights=w) for i, w in enumerate(weights, 1)})
    if self_ensemble:
        nets.update({f"{key}+": LearnedDenoiser(weights=den.weights, self_ensemble=True) for key, den in list(nets.items())})
    for key, w in zip(list(nets)[1:1 + len(weights)], weights):
        meta = nets[key].metadata
        print(f"{key} = {w}: {meta.get('architecture_version', '?')}, {meta.get('steps')} steps, "
              f"{meta.get('train_seconds')} s of training")
    images = heldout_images(size)
    rng = np.random.default_rng(12345)
    cols = ["noisy", "NLM"] + (["BM3D"] if bm3d else []) + list(nets)
    secs = {c: 0.0 for c in cols}
    print(f"\nHeld-out list ({', '.join(images)}; {size}² centre crops), Gaussian noise, true σ: PSNR [dB]")
    print(f"{'image':22s} {'sigma':>5s}" + "".join(f"{c:>9s}" for c in cols))
    means: dict[float, dict[str, list[float]]] = {}
    for name, clean in images.items():
        for s in sigmas:
            noisy = (clean + s * rng.standard_normal(clean.shape)).astype(np.float32)
            row = {"noisy": ni.metrics.psnr(noisy, clean)}
            t = time.perf_counter()
            row["NLM"] = ni.metrics.psnr(classical(noisy, s)["nlm"], clean)
            secs["NLM"] += time.perf_counter() - t
            if bm3d:
                t = time.perf_counter()
                row["BM3D"] = ni.metrics.psnr(bm3d.bm3d(noisy, sigma_psd=s), clean)
                secs["BM3D"] += time.perf_counter() - t
            for key, den in nets.items():
                t = time.perf_counter()
                with torch.no_grad():
                    out = den(torch.from_numpy(noisy), s).numpy()
                secs[key] += time.perf_counter() - t
                row[key] = ni.metrics.psnr(out, clean)
            for c in cols:
                means.setdefault(s, {}).setdefault(c, []).append(row[c])
            print(f"{name:22s} {s:5.2f}" + "".join(f"{row[c]:9.2f}" for c in cols), flush=True)
    for s, m in means.items():
        print(f"{'MEAN':22s} {s:5.2f}" + "".join(f"{np.mean(m[c]):9.2f}" for c in cols))
    print("seconds in all: " + ", ".join(f"{c} {secs[c]:.1f}" for c in cols if c != "noisy"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small images and a short budget")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy shared CPU)")
    ap.add_argument("--heldout-list", action="store_true",
                    help="only the held-out list against BM3D and NLM (issue #14's bar)")
    ap.add_argument("--weights", nargs="*", default=[], help="extra denoiser weights files for --heldout-list")
    ap.add_argument("--self-ensemble", action="store_true",
                    help="--heldout-list: also each net averaged over the 8 flips/90° rotations (columns with '+')")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.heldout_list:
        table_heldout_list(weights=tuple(args.weights), self_ensemble=args.self_ensemble)
        return
    if args.quick:
        table_heldout((0.05, 0.1, 0.2), seeds=(0, 1), shape=(128, 128))
        table_poisson_gaussian(seeds=(0, 1), shape=(128, 128))
        table_self_supervised(256, seconds=30, steps=60)
    else:
        table_heldout((0.01, 0.05, 0.1, 0.2, 0.5, 1.0), seeds=(0, 1, 2, 3), shape=(256, 256))
        table_poisson_gaussian(seeds=(0, 1, 2, 3), shape=(256, 256))
        table_self_supervised(512, seconds=120, steps=200)


if __name__ == "__main__":
    main()
