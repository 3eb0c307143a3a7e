"""``make demo``: napari with the plugin's sample data and dock widgets, or the same reconstruction headless.

Headless (no display, or ``--headless``): a synthetic fluorescence image is blurred by a widefield PSF,
measured with Poisson–Gaussian camera noise and deconvolved by Richardson–Lucy; PNGs of the measurement,
the mean, a normalized residual map and — when a registered method returns one — a standard deviation
are written to ``demo_output/``, and PSNR and seconds are printed. The headless path imports no napari.

    python -m napari_invimg.demo [--headless] [--out demo_output] [--size 256]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

#: std-returning methods tried for the demo's uncertainty map, fastest first (the first registered one is used)
STD_METHODS = ("vb", "ensemble", "ula", "mala", "pnp_ula", "bayes_dip", "mc_dropout_dip", "dps")


def has_display() -> bool:
    """Whether a window can be opened here."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _save_png(path: Path, image: np.ndarray, cmap: str = "gray", limits: tuple[float, float] | None = None) -> None:
    lo, hi = limits if limits is not None else (float(np.min(image)), float(np.max(image)))
    scaled = np.clip((image - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plt.imsave(path, scaled, cmap=cmap, vmin=0, vmax=1)
    except ImportError:
        from skimage.io import imsave

        imsave(path, (scaled * 255).astype(np.uint8), check_contrast=False)


def run_headless(out: Path, size: int = 256, seed: int = 0) -> dict[str, float]:
    """The demo's reconstruction without a GUI; returns the PSNRs and seconds it printed."""
    import napari_invimg as ni

    out.mkdir(parents=True, exist_ok=True)
    x = ni.datasets.fluorescence((size, size), seed=seed)
    A = ni.operators.Blur(ni.psf.widefield((31, 31), wavelength_um=0.52, na=1.4, pixel_size_um=0.065), x.shape)
    noise = ni.noise.PoissonGaussian(gain=0.01, sigma=0.01)
    y = ni.simulate(x, A, noise, seed=seed)
    results = {"psnr_measurement": ni.metrics.psnr(y, x)}
    print(f"synthetic fluorescence {x.shape}, widefield PSF (NA 1.4, 520 nm, 65 nm pixels), "
          f"Poisson–Gaussian noise (gain {noise.gain}, read noise {noise.sigma})")
    print(f"{'image':<36}{'PSNR (dB)':>10}{'seconds':>10}")
    print(f"{'measurement':<36}{results['psnr_measurement']:>10.2f}{'':>10}")

    t0 = time.perf_counter()
    rec = ni.reconstruct(y, A, "richardson_lucy", noise=noise, seed=seed)
    results["seconds_richardson_lucy"] = time.perf_counter() - t0
    results["psnr_richardson_lucy"] = ni.metrics.psnr(rec.mean, x)
    label = f"richardson_lucy mean ({rec.info.get('iterations')} it.)"
    print(f"{label:<36}{results['psnr_richardson_lucy']:>10.2f}{results['seconds_richardson_lucy']:>10.2f}")

    limits = (float(x.min()), float(x.max()))
    _save_png(out / "ground_truth.png", x, limits=limits)
    _save_png(out / "measurement.png", y, limits=limits)
    _save_png(out / "mean.png", rec.mean, limits=limits)
    residual = ni.diagnostics.residual(y, A, rec.mean, noise)
    _save_png(out / "residual.png", residual, cmap="RdBu_r", limits=(-3.0, 3.0))

    blur_methods = ni.methods(A)
    std_method = next((m for m in STD_METHODS if m in blur_methods), None)
    if std_method is not None:
        t0 = time.perf_counter()
        urec = ni.reconstruct(y, A, std_method, noise=noise, seed=seed)
        results[f"seconds_{std_method}"] = time.perf_counter() - t0
        results[f"psnr_{std_method}"] = ni.metrics.psnr(urec.mean, x)
        row = f"{std_method} mean"
        print(f"{row:<36}{results[f'psnr_{std_method}']:>10.2f}{results[f'seconds_{std_method}']:>10.2f}")
        _save_png(out / f"{std_method}_mean.png", urec.mean, limits=limits)
        _save_png(out / "std.png", urec.std, cmap="magma")
    else:
        print("no registered method returns a standard deviation yet; wrote the residual map instead")
    print(f"wrote {', '.join(sorted(p.name for p in out.glob('*.png')))} to {out}/")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--headless", action="store_true", help="run without a window even if a display exists")
    parser.add_argument("--out", default="demo_output", type=Path, help="folder for the PNGs (headless)")
    parser.add_argument("--size", default=256, type=int, help="image size in pixels (headless)")
    args = parser.parse_args(argv)
    if args.headless or not has_display():
        run_headless(args.out, size=args.size)
    else:
        from .widgets.demo import run_napari  # the windowed front end lives with the widgets

        run_napari()
    return 0


if __name__ == "__main__":
    sys.exit(main())
