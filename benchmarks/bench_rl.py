"""Richardson–Lucy: speed against the FFT floor and scikit-image, and time to scikit-image's best PSNR.

Cases (issue #2): a 512×512 synthetic fluorescence image blurred by a 31×31 widefield PSF, and a
64×256×256 stack blurred by a 3D widefield PSF, both with Poisson–Gaussian camera noise.

(a) seconds per iteration of ``ni.reconstruct(..., "richardson_lucy")`` against the floor of two FFT
    convolutions of the image's size (rfftn · OTF · irfftn, twice) and of the padded grid that a non-periodic
    boundary needs (image + PSF − 1 per axis, rounded to a fast FFT length) and against
    ``skimage.restoration.richardson_lucy``;
(b) wall time until our RL first reaches the best PSNR that scikit-image's RL reaches within 100
    iterations, and where our automatic (discrepancy) stop lands.

Run: ``python benchmarks/bench_rl.py`` (``--quick``: the 2D cases only, 50 scikit-image iterations).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import scipy.signal
import torch

import napari_invimg as ni


CASES = {  # name: (dimensions, camera gain, read noise)
    "2D 512² / PSF 31², ~100 photons": (2, 0.01, 0.01),
    "2D 512² / PSF 31², ~2000 photons": (2, 0.0005, 0.002),
    "3D 64×256² / PSF 31³, ~2000 photons": (3, 0.0005, 0.002),
}


def make_case(name: str):
    dims, gain, sigma = CASES[name]
    if dims == 2:
        x = ni.datasets.fluorescence((512, 512), seed=1)
        psf = ni.psf.widefield((31, 31), wavelength_um=0.52, na=1.2, pixel_size_um=0.065, ni=1.33)
    else:
        x = ni.datasets.fluorescence((64, 256, 256), seed=1)
        psf = ni.psf.widefield((31, 31, 31), wavelength_um=0.52, na=1.2, pixel_size_um=0.1, z_step_um=0.25, ni=1.33)
    A = ni.operators.Blur(psf, x.shape, boundary="reflect")
    noise = ni.noise.PoissonGaussian(gain=gain, sigma=sigma)
    y = ni.simulate(x, A, noise, seed=2)
    return x, psf, A, noise, y


def floor_timer(shape, psf, clock=time.perf_counter):
    """``f(n)``: ``n`` timings (by ``clock``) of two FFT convolutions on ``shape`` (the least any RL iteration on that
    grid must do)."""
    dims = tuple(range(-len(shape), 0))
    x = torch.rand(shape)
    big = np.zeros(shape, dtype=np.float32)
    big[tuple(slice(0, k) for k in psf.shape)] = psf
    otf = torch.fft.rfftn(torch.from_numpy(big), dim=dims)

    def timings(n: int) -> list[float]:
        ts = []
        for _ in range(n):
            t = clock()
            for _ in range(2):
                torch.fft.irfftn(torch.fft.rfftn(x, dim=dims) * otf, s=shape, dim=dims)
            ts.append(clock() - t)
        return ts
    return timings


def fft_floor(shape, psf, repeats: int = 5) -> float:
    """Seconds for two FFT convolutions of the image's size (the least any RL iteration must do)."""
    return min(floor_timer(shape, psf)(repeats))


class IterationClock:
    """A stand-in for the method's context that records the ``clock`` at the end of every iteration."""

    def __init__(self, clock):
        self.clock, self.ts = clock, [clock()]

    def log(self, **_):
        pass

    def keep(self, *_, **__):
        pass

    def step(self, *_, **__):
        self.ts.append(self.clock())


def rl_timer(y, A, noise, clock=time.perf_counter, **params):
    """``f(n)``: the seconds of RL's iterations 2 … n + 1 (the first has one convolution), stop off, with ``params``."""
    from napari_invimg.methods.classical import RichardsonLucy

    def timings(n: int) -> list[float]:
        c = IterationClock(clock)
        RichardsonLucy().run(y, A, noise, c, n + 1, True, "none", 1.0, None, None, **params)
        return list(np.diff(c.ts)[2:])
    return timings


def skimage_path(y, psf, x, iterations):
    """scikit-image's RL loop (same arithmetic as skimage.restoration.richardson_lucy), PSNR per iteration."""
    image = np.clip(y, 0, None).astype(np.float32)
    psf = psf.astype(np.float32)
    mirror = np.flip(psf)
    est = np.full(image.shape, 0.5, dtype=np.float32)
    psnrs = []
    for _ in range(iterations):
        conv = scipy.signal.convolve(est, psf, mode="same") + 1e-12
        est = est * scipy.signal.convolve(image / conv, mirror, mode="same")
        psnrs.append(ni.metrics.psnr(est, x))
    return np.asarray(psnrs), est


def ours_path(y, A, noise, x, iterations):
    """Our RL without stopping; PSNR and wall time after each iteration (the PSNR is not timed)."""
    psnrs, times = [], []
    clock = {"spent": 0.0, "t": time.perf_counter()}

    def progress(i, n, preview):
        clock["spent"] += time.perf_counter() - clock["t"]
        times.append(clock["spent"])
        psnrs.append(ni.metrics.psnr(preview, x))
        clock["t"] = time.perf_counter()

    ni.reconstruct(y, A, "richardson_lucy", noise=noise, iterations=iterations, stop="none", progress=progress)
    return np.asarray(psnrs), np.asarray(times)


def seconds_per_iteration(y, A, noise, iterations: int = 20) -> float:
    ni.reconstruct(y, A, "richardson_lucy", noise=noise, iterations=2, stop="none")  # warm-up
    t = time.perf_counter()
    ni.reconstruct(y, A, "richardson_lucy", noise=noise, iterations=iterations, stop="none")
    return (time.perf_counter() - t) / iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2D cases only, 50 scikit-image iterations")
    args = parser.parse_args()
    from skimage.restoration import richardson_lucy

    cases = list(CASES)[:2] if args.quick else list(CASES)
    sk_iters = 50 if args.quick else 100
    print(f"# Richardson–Lucy benchmark — {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    for name in cases:
        x, psf, A, noise, y = make_case(name)
        floor = fft_floor(x.shape, psf)
        floor_grid = fft_floor(A.grid, psf)  # the padded grid the default (reflect) operator needs
        ours = seconds_per_iteration(y, A, noise)
        circ = seconds_per_iteration(y, ni.operators.Blur(psf, x.shape, boundary="circular"), noise)
        k = 3 if x.ndim == 3 else 10
        t = time.perf_counter()
        richardson_lucy(np.clip(y, 0, None), psf, num_iter=k, clip=False)
        sk = (time.perf_counter() - t) / k
        sk_psnr, _ = skimage_path(y, psf, x, sk_iters)
        target, sk_best_it = float(sk_psnr.max()), int(sk_psnr.argmax()) + 1
        our_psnr, our_t = ours_path(y, A, noise, x, 100)
        reached = np.nonzero(our_psnr >= target)[0]
        t_ours = float(our_t[reached[0]]) if reached.size else float("nan")
        it_ours = int(reached[0]) + 1 if reached.size else -1
        t_sk = sk * sk_best_it
        auto = ni.reconstruct(y, A, "richardson_lucy", noise=noise)
        rows.append(dict(case=name, floor=floor, floor_grid=floor_grid, grid=A.grid, ours=ours, circ=circ, sk=sk, target=target, sk_it=sk_best_it, t_sk=t_sk,
                         it_ours=it_ours, t_ours=t_ours, best=float(our_psnr.max()),
                         best_it=int(our_psnr.argmax()) + 1, auto_psnr=ni.metrics.psnr(auto.mean, x),
                         auto_it=auto.info["iterations"], auto_s=auto.info["seconds"],
                         meas=ni.metrics.psnr(y, x)))
    print("\n(a) seconds per iteration")
    print("| case | FFT floor (2 conv) | floor on the padded grid | ours, reflect (default) | / floor | / grid floor | "
          "ours, circular | / floor | skimage | skimage / ours (reflect) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['floor']:.4f} | {r['floor_grid']:.4f} {r['grid']} | {r['ours']:.4f} | "
              f"{r['ours'] / r['floor']:.2f}× | {r['ours'] / r['floor_grid']:.2f}× | {r['circ']:.4f} | "
              f"{r['circ'] / r['floor']:.2f}× | {r['sk']:.4f} | {r['sk'] / r['ours']:.1f}× |")
    print("\n(b) time to scikit-image's best PSNR within its first iterations")
    print("| case | measurement dB | skimage best dB (iter) | skimage time | ours reaches it at iter | ours time | "
          "speed-up | ours best dB (iter) | auto-stop dB (iter, s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['meas']:.2f} | {r['target']:.2f} ({r['sk_it']}) | {r['t_sk']:.2f} s | {r['it_ours']} | "
              f"{r['t_ours']:.2f} s | {r['t_sk'] / r['t_ours']:.1f}× | {r['best']:.2f} ({r['best_it']}) | "
              f"{r['auto_psnr']:.2f} ({r['auto_it']}, {r['auto_s']:.2f} s) |")


if __name__ == "__main__":
    main()
