"""Bayesian DIP on natural images (issue #19 item 3): is its mean within 1 dB of DIP, its 90% interval's coverage in
0.80–0.97 and its std–error correlation ≥ 0.4?

Cases: RESULTS.md §5's camera case (128², Gaussian blur σ = 1.5 px, Gaussian noise σ = 0.03) and the issue's natural
case (scikit-image images in [0, 1] resized to 96², the same blur, noise σ = 0.05) on ``coins`` (the tuning image),
``moon`` (earlier held out, to show no regression) and ``coffee`` and ``chelsea`` (grey; never used for tuning).
Measurement seed 2, method seed 0, ``bayes_dip`` at its defaults. With one member its first phase is plain DIP (same
network, seeds and stop), so the DIP column is that phase's estimate; ``--check-dip`` also runs ``dip`` and prints the
largest difference (0 expected). With ``members`` > 1 (the mean is the average of several DIP fits) ``dip`` is always
run for the DIP column.

    PYTHONPATH=src python benchmarks/bench_bayes_dip.py --threads 1 [--images camera128,coffee] [--check-dip]

The default ``learned_share`` is 0 (the weight posterior's std alone); ``--params '{"learned_share": 0.4}'`` mixes in
the learned prior's posterior (helper ``bdip7``, RESULTS.md §5; an option: it over-covers §5's inpainting case). ``motorcycle`` (the left view of scikit-image's
``stereo_motorcycle``, central square) and ``ihc`` (``immunohistochemistry``) are photographs the learned denoiser never
saw (``nets.corpus``: ``coffee``, ``chelsea``, ``astronaut`` and ``rocket`` are in its training set).

``--extrapolated-texture 0.03,1`` (helper ``bdip8``, RESULTS.md §5; an experiment, not a method option) adds after each
row one row per scale c with std² = std² + c·t², where t² is the variance of the band the blur removed, predicted
from ``y`` alone: the local energy of ``y`` in the band just inside the data's cutoff k_c (deconvolved, noise power
subtracted), extrapolated beyond k_c with a power spectrum ∝ |k|^−α fitted to ``y`` (:func:`extrapolated_texture`;
c = 1 is the extrapolation's own scale). Gaussian noise and ``Blur`` operators only.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import napari_invimg as ni

ROLES = {"camera128": "§5 bar case", "coins": "tuning", "astronaut": "tuning", "rocket": "tuning",
         "moon": "earlier held out", "coffee": "held out",
         "chelsea": "held out", "motorcycle": "held out (also from the denoiser)",
         "ihc": "held out (also from the denoiser)"}


def image(name: str, n: int) -> np.ndarray:
    from skimage import color, data
    from skimage.transform import resize

    if name == "camera":
        a = ni.datasets.camera()
    elif name in ("motorcycle", "ihc"):
        a = color.rgb2gray(data.stereo_motorcycle()[0] if name == "motorcycle" else data.immunohistochemistry())
        h, w = a.shape
        m = min(h, w)
        a = a[(h - m) // 2:(h - m) // 2 + m, (w - m) // 2:(w - m) // 2 + m]  # the central square
    elif name in ("astronaut", "chelsea", "coffee", "rocket"):
        a = color.rgb2gray(getattr(data, name)())
    else:
        a = getattr(data, name)().astype(np.float64)
    a = (a - a.min()) / (a.max() - a.min())
    return resize(a, (n, n), anti_aliasing=True).astype(np.float32)


def make_case(name: str):
    """Truth, operator, noise and measurement: ``camera128`` is §5's case, any other name the 96² natural case."""
    n, sigma = (128, 0.03) if name == "camera128" else (96, 0.05)
    x = image("camera" if name == "camera128" else name, n)
    A = ni.operators.Blur(ni.psf.gaussian((11, 11), sigma=1.5), (n, n))
    noise = ni.noise.Gaussian(sigma)
    return x, A, noise, ni.simulate(x, A, noise, seed=2)


def _mirror_filter(img: np.ndarray, response) -> tuple[np.ndarray, float]:
    """``img`` filtered by the radial frequency response ``response(|k|, grid)`` on a mirror-padded grid (no
    wrap-around edges), and the filter's noise gain Σ|f|²/N² (the filtered white noise's variance per unit σ²)."""
    n0, n1 = img.shape
    p = np.pad(img, ((n0 // 2, n0 // 2), (n1 // 2, n1 // 2)), mode="symmetric")
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(p.shape[0]), np.fft.fftfreq(p.shape[1]), indexing="ij"))
    f = response(k, p.shape)
    out = np.real(np.fft.ifft2(np.fft.fft2(p) * f))[n0 // 2:n0 // 2 + n0, n1 // 2:n1 // 2 + n1]
    return out, float((np.abs(f) ** 2).sum() / p.size)


def _otf(psf: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """|Ĥ| of the centered PSF on ``grid`` (full FFT layout)."""
    big = np.zeros(grid)
    big[:psf.shape[0], :psf.shape[1]] = psf
    big = np.roll(big, (-(psf.shape[0] // 2), -(psf.shape[1] // 2)), axis=(0, 1))
    return np.abs(np.fft.fft2(big))


def extrapolated_texture(y: np.ndarray, psf: np.ndarray, sigma: float, *, band=(0.5, 1.0), window: float = 3.0,
                         snr: float = 4.0) -> tuple[np.ndarray, dict]:
    """Predicted local variance t² of the image content beyond the data's cutoff, from ``y`` alone.

    Fit P_x(k) = a |k|^−α to the radially averaged power of ``y`` (mirror-padded, Hann window) divided by |Ĥ|²,
    on the annuli where the signal exceeds (snr − 1)·σ²; the data's cutoff k_c is where a k^−α |Ĥ(k)|² = σ². The
    local energy of ``y`` in the band [band₀ k_c, band₁ k_c), deconvolved (filter 1/Ĥ in the band), averaged with a
    Gaussian window, less the filtered noise power and floored at 0, estimates the local energy E_B of that band of
    ``x``; under a locally scaled power law the energy beyond k_c is R·E_B with R = Σ_{|k| ≥ k_c} |k|^−α /
    Σ_B |k|^−α. Returns R·E_B and the fit (α, k_c, R). (Field 1987, Ruderman 1994: natural images' 1/|k|^α spectra.)
    """
    from scipy.ndimage import gaussian_filter

    y = np.asarray(y, dtype=np.float64)
    n0, n1 = y.shape
    grid = (2 * (n0 // 2) + n0, 2 * (n1 // 2) + n1)
    h = _otf(np.asarray(psf, dtype=np.float64), grid)
    p = np.pad(y - y.mean(), ((n0 // 2, n0 // 2), (n1 // 2, n1 // 2)), mode="symmetric")
    win = np.outer(np.hanning(grid[0]), np.hanning(grid[1]))
    power = np.abs(np.fft.fft2(p * win)) ** 2 / (win ** 2).sum()
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(grid[0]), np.fft.fftfreq(grid[1]), indexing="ij"))
    ks, ps = [], []
    edges = np.linspace(0.02, 0.5, 25)
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (k >= lo) & (k < hi)
        signal = power[m].mean() - sigma ** 2
        if signal > (snr - 1) * sigma ** 2:
            ks.append(np.sqrt(lo * hi))
            ps.append(signal / np.mean(h[m] ** 2))
    if len(ks) < 3:
        raise ValueError("Too little signal above the noise to fit a power spectrum.")
    slope, icpt = np.polyfit(np.log(ks), np.log(ps), 1)
    alpha = -slope
    centers = np.sqrt(edges[:-1] * edges[1:])
    log_h2 = [np.log(max(np.mean(h[(k >= lo) & (k < hi)] ** 2), 1e-300)) for lo, hi in zip(edges[:-1], edges[1:])]
    fine = np.linspace(0.01, 0.5, 500)
    signal = np.exp(icpt) * fine ** -alpha * np.exp(np.interp(fine, centers, log_h2))
    kc = float(fine[np.argmax(signal < sigma ** 2)]) if np.any(signal < sigma ** 2) else 0.5
    inside = (k >= band[0] * kc) & (k < band[1] * kc)
    yb, gain = _mirror_filter(y, lambda kk, shape: np.where(inside, 1.0 / np.maximum(h, 1e-6), 0.0))
    energy = np.maximum(gaussian_filter(yb ** 2, window) - sigma ** 2 * gain, 0.0)
    kr = np.where(k > 0, k, 1.0) ** -alpha
    ratio = float(kr[(k >= kc) & (k > 0)].sum() / kr[inside].sum())
    return ratio * energy, {"alpha": float(alpha), "kc": kc, "R": ratio}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="camera128,coins,moon,coffee,chelsea")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--params", default="{}", help="bayes_dip parameters as JSON (default: its defaults)")
    ap.add_argument("--check-dip", action="store_true", help="also run dip and compare its result with the mean")
    ap.add_argument("--extrapolated-texture", default="", help="scales c: also print std² + c·t² rows (see above)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    params = json.loads(args.params)
    print(f"# bayes_dip {params or 'defaults'}, {args.threads} torch thread(s)")
    print("| image | role | DIP (its stop) | bayes_dip mean (Δ) | coverage 90% | std–error corr | bar met | s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.images.split(","):
        x, A, noise, y = make_case(name)
        t = time.perf_counter()
        rec = ni.reconstruct(y, A, "bayes_dip", noise, seed=0, **params)
        seconds = time.perf_counter() - t
        dip_psnr = ni.metrics.psnr(rec.mean, x)  # with one member the first phase's estimate is the mean
        if args.check_dip or rec.info.get("members", 1) > 1:
            kw = {k: v for k, v in params.items() if k in {p["name"] for p in ni.method_info("dip")["parameters"]}}
            dip = ni.reconstruct(y, A, "dip", noise, seed=0, **kw)
            dip_psnr = ni.metrics.psnr(dip.mean, x)
            print(f"# {name}: max |dip − bayes_dip mean| = {float(np.abs(dip.mean - rec.mean).max()):.3g} "
                  f"({rec.info.get('members', 1)} member(s))")
        psnr = ni.metrics.psnr(rec.mean, x)
        cov = ni.diagnostics.coverage(rec, x, 0.9)
        corr = ni.diagnostics.std_error_correlation(rec, x)
        met = [psnr >= dip_psnr - 1, 0.80 <= cov <= 0.97, corr >= 0.4]
        verdict = "yes" if all(met) else "no (" + ", ".join(w for w, ok in zip(("mean", "coverage", "corr"), met)
                                                            if not ok) + ")"
        print(f"| {name} | {ROLES.get(name, '')} | {dip_psnr:.2f} ({rec.info['stop_iteration']}) | {psnr:.2f} "
              f"({psnr - dip_psnr:+.2f}) | {cov:.3f} | {corr:.3f} | {verdict} | {seconds:.0f} |", flush=True)
        for c in (float(v) for v in args.extrapolated_texture.split(",") if v):
            t2, fit = extrapolated_texture(np.asarray(y), A.psf_array, float(noise.sigma))
            extra = ni.Reconstruction(rec.mean, std=np.sqrt(np.asarray(rec.std, np.float64) ** 2 + c * t2)
                                      .astype(np.float32), samples=rec.samples, info=rec.info)
            cov_c = ni.diagnostics.coverage(extra, x, 0.9)
            corr_c = ni.diagnostics.std_error_correlation(extra, x)
            ok = [psnr >= dip_psnr - 1, 0.80 <= cov_c <= 0.97, corr_c >= 0.4]
            print(f"| {name} + {c:g}·t² (α {fit['alpha']:.2f}, k_c {fit['kc']:.3f}, R {fit['R']:.2f}; t alone "
                  f"{np.corrcoef(np.sqrt(t2).ravel(), np.abs(rec.mean - x).ravel())[0, 1]:.3f}) | | | | {cov_c:.3f} | "
                  f"{corr_c:.3f} | {'yes' if all(ok) else 'no'} | |", flush=True)


if __name__ == "__main__":
    main()
