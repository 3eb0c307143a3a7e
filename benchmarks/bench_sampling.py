"""Posterior sampling: quality of the mean, honesty of the std, and cost, for every sampler side by side.

Cases (issue #6): the synthetic fluorescence image (a) blurred with Poisson–Gaussian noise and (b) with
50% of its pixels missing, and (c) scikit-image's ``camera`` with a 1.5-px Gaussian blur and Gaussian noise
σ = 0.03, at 128² and 256². For ``dps``, ``diffpir``, ``pnp_ula``, ``ula``, ``vb`` (and ``bayes_dip``,
``pnp_admm`` where registered) the table gives PSNR/SSIM of the mean, coverage of the central 90% interval
(raw, and after ``ni.diagnostics.calibrate`` on two other images through the same forward model),
std–error correlation, seconds and network evaluations. Then: time for ``vb`` to reach ``ula``'s mean
PSNR within 0.5 dB, and the wall time of 16 diffusion samples at 256².

Run: ``python benchmarks/bench_sampling.py`` (``--quick``: 128² only). ``--methods``/``--cases`` pick a
subset; ``--no-calibrate`` skips the calibration runs (they cost two more reconstructions each).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

import napari_invimg as ni

SAMPLERS = ("dps", "diffpir", "pnp_ula", "ula", "vb", "bayes_dip")
REFERENCES = ("pnp_admm",)
#: parameters per method (a budget that fits 2 shared CPU cores); quick runs use the same
PARAMS = {
    "dps": dict(n_samples=16),  # registered defaults (8 steps from a first estimate; before 2026-12-07: 50 from noise)
    "diffpir": dict(n_samples=16),  # (8 steps; before: 30)
    "pnp_ula": dict(iterations=1000, n_samples=32, chains=2),
    "ula": dict(iterations=3000, n_samples=32, chains=2),
    "vb": dict(iterations=300, n_samples=32),
    "bayes_dip": dict(n_samples=16),
    "pnp_admm": dict(),
}
CALIBRATED = ("pnp_ula", "diffpir", "ula", "vb", "dps")
CASES = ("fluorescence deblur (Poisson–Gaussian)", "fluorescence 50% inpainting (Poisson–Gaussian)",
         "camera blur 1.5 px, σ = 0.03")


def _resize(img: np.ndarray, n: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(img, (n, n), anti_aliasing=True).astype(np.float32)


def make_case(name: str, n: int):
    """Truth, operator, noise, measurement and two calibration images of the same kind."""
    if name.startswith("fluorescence"):
        x = ni.datasets.fluorescence((n, n), seed=1)
        cal = [ni.datasets.fluorescence((n, n), seed=s) for s in (11, 12)]
        noise = ni.noise.PoissonGaussian(gain=0.01, sigma=0.01)
        if "inpainting" in name:
            A = ni.operators.Inpainting(ni.operators.sampling.random_mask((n, n), 0.5, seed=3))
        else:
            A = ni.operators.Blur(ni.psf.gaussian((15, 15), sigma=2.0), (n, n))
    else:
        x = _resize(ni.datasets.camera(), n)
        natural = ni.datasets.natural_images()
        cal = [_resize(natural[i], n) for i in (8, 10)]  # astronaut and chelsea: photographs, as camera is
        noise = ni.noise.Gaussian(0.03)
        A = ni.operators.Blur(ni.psf.gaussian((11, 11), sigma=1.5), (n, n))
    y = ni.simulate(x, A, noise, seed=2)
    return x, A, noise, y, cal


def evaluate(method: str, x, A, noise, y, cal, calibrate: bool) -> dict:
    params = PARAMS[method]
    t, c = time.perf_counter(), time.process_time()
    rec = ni.reconstruct(y, A, method, noise, seed=0, **params)
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    row = dict(method=method, psnr=ni.metrics.psnr(rec.mean, x), ssim=ni.metrics.ssim(rec.mean, x), seconds=seconds,
               cpu=cpu,
               evals=rec.info.get("network_evaluations", rec.info.get("evaluations", 0)))
    if rec.std is not None:
        row["coverage"] = ni.diagnostics.coverage(rec, x, 0.9)
        row["corr"] = ni.diagnostics.std_error_correlation(rec, x)
        if "mixing" in rec.info:
            row["rhat"] = rec.info["mixing"]["rhat_median"]
            row["ess"] = rec.info["mixing"]["ess_median"]
        if calibrate and method in CALIBRATED:
            c = ni.diagnostics.calibrate(method, A, noise, cal, level=0.9, seed=5, **params)
            recal = ni.reconstruct(y, A, method, noise, seed=0, calibration=c, **params)
            row["scale"] = c.scale
            row["coverage_cal"] = ni.diagnostics.coverage(recal, x, 0.9)
    return row


def time_to_psnr(method: str, y, A, noise, x, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """PSNR of the live preview (running mean for ULA, μ for VB) against wall time (the PSNR is not timed)."""
    psnrs, times = [], []
    clock = {"spent": 0.0, "t": time.perf_counter()}

    def progress(i, total, preview):
        clock["spent"] += time.perf_counter() - clock["t"]
        times.append(clock["spent"])
        psnrs.append(ni.metrics.psnr(preview, x))
        clock["t"] = time.perf_counter()

    ni.reconstruct(y, A, method, noise, seed=0, progress=progress, **params)
    return np.asarray(psnrs), np.asarray(times)


def _fmt(v, spec=".3f") -> str:
    return "—" if v is None else format(v, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128² only")
    parser.add_argument("--methods", default=",".join(SAMPLERS + REFERENCES))
    parser.add_argument("--cases", default="0,1,2", help="indices into the case list")
    parser.add_argument("--sizes", default=None, help="e.g. 128,256 (default: 128 with --quick, else both)")
    parser.add_argument("--no-calibrate", action="store_true")
    parser.add_argument("--no-speed", action="store_true", help="skip the vb-vs-ula and 256² timing sections")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([128] if args.quick else [128, 256])
    available = set(ni.methods())
    wanted = [m for m in args.methods.split(",") if m]
    missing = [m for m in wanted if m not in available]
    methods = [m for m in wanted if m in available]
    print(f"# Posterior sampling benchmark — {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if missing:
        print(f"(not registered here, skipped: {', '.join(missing)})")
    print("\n| case | size | method | PSNR | SSIM | coverage 90% | calibrated (scale) | std–error corr | "
          "R̂ / ESS (median) | seconds | CPU s | network evals |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        for ci in (int(c) for c in args.cases.split(",")):
            name = CASES[ci]
            x, A, noise, y, cal = make_case(name, n)
            for m in methods:
                try:
                    r = evaluate(m, x, A, noise, y, cal, calibrate=not args.no_calibrate)
                except ValueError as exc:  # e.g. a learned denoiser that is not shipped in this build
                    print(f"| {name} | {n}² | {m} | failed: {exc} ||||||||||")
                    continue
                cal_txt = f"{_fmt(r.get('coverage_cal'))} ({_fmt(r.get('scale'), '.2f')})" if "scale" in r else "—"
                mix = f"{r['rhat']:.3f} / {r['ess']:.0f}" if "rhat" in r else "—"
                print(f"| {name} | {n}² | {m} | {r['psnr']:.2f} | {r['ssim']:.3f} | {_fmt(r.get('coverage'))} | "
                      f"{cal_txt} | {_fmt(r.get('corr'))} | {mix} | {r['seconds']:.1f} | {r['cpu']:.1f} | {r['evals']} |", flush=True)
    if args.no_speed:
        return
    if {"ula", "vb"} <= set(methods):
        print("\n## vb against ula: wall time until the mean is within 0.5 dB of ula's final mean PSNR")
        print("| case | size | ula final dB | ula total s | ula reaches final−0.5 dB at s | vb reaches it at s | "
              "vb final dB | speed-up (ula total / vb) |")
        print("|---|---|---|---|---|---|---|---|")
        for ci in (int(c) for c in args.cases.split(",")):
            name = CASES[ci]
            x, A, noise, y, _ = make_case(name, sizes[0])
            up, ut = time_to_psnr("ula", y, A, noise, x, PARAMS["ula"])
            burn = PARAMS["ula"]["iterations"] // 5
            target = float(up[-1]) - 0.5
            post = np.nonzero(up[burn:] >= target)[0]
            t_ula = float(ut[burn + post[0]]) if post.size else float("nan")
            vp, vt = time_to_psnr("vb", y, A, noise, x, dict(PARAMS["vb"], iterations=600))
            hit = np.nonzero(vp >= target)[0]
            t_vb = float(vt[hit[0]]) if hit.size else float("nan")
            print(f"| {name} | {sizes[0]}² | {up[-1]:.2f} | {ut[-1]:.1f} | {t_ula:.1f} | {t_vb:.2f} | {vp[-1]:.2f} | "
                  f"{ut[-1] / t_vb:.1f}× |", flush=True)
    diffusion = [m for m in ("dps", "diffpir") if m in methods]
    if diffusion and not args.quick:
        print("\n## 16 diffusion samples at 256² (camera case), default steps")
        print("| method | steps | seconds | network evals |")
        print("|---|---|---|---|")
        x, A, noise, y, _ = make_case(CASES[2], 256)
        for m in diffusion:
            t = time.perf_counter()
            rec = ni.reconstruct(y, A, m, noise, seed=0, n_samples=16)
            print(f"| {m} | {rec.info['iterations']} | {time.perf_counter() - t:.0f} | "
                  f"{rec.info['network_evaluations']} |", flush=True)


if __name__ == "__main__":
    main()
