"""Deep Image Prior benchmark: automatic stopping vs the oracle, Richardson–Lucy baseline, Bayesian DIP calibration.

Cases: the synthetic fluorescence image and scikit-image's ``cell`` (center crop), blurred (Gaussian PSF,
σ = 2 px) with Poisson–Gaussian camera noise, and a Gaussian denoising case. For DIP, one run without
stopping records the whole path; the stopping rule (``StoppingRule.replay``, the code ``dip`` uses) is
applied to its logged misfit and variance, so "stopped" and "oracle" come from the same path. The oracle is
the best PSNR of the returned image (the running mean) anywhere on the path.

    python benchmarks/bench_dip.py            # 256×256, full table
    python benchmarks/bench_dip.py --quick    # 64×64, few iterations
    python benchmarks/bench_dip.py --only dip:fluorescence/blur   # one row (run rows in parallel processes)
    python benchmarks/bench_dip.py --stop-table --threads 2        # each case stopping itself: iterations, PSNR, seconds
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

import napari_invimg as ni
from napari_invimg.methods.dip import StoppingRule

DEFAULT_STOP = {p["name"]: p["default"] for p in ni.method_info("dip")["parameters"]}


def image(name: str, size: int) -> np.ndarray:
    if name == "fluorescence":
        return ni.datasets.fluorescence((size, size), seed=1)
    from skimage.transform import resize

    full = ni.datasets.cell()
    y0, x0 = (full.shape[0] - 256) // 2, (full.shape[1] - 256) // 2
    crop = full[y0:y0 + 256, x0:x0 + 256]  # the central 256×256, resized for smaller runs
    return crop if size == 256 else resize(crop, (size, size), anti_aliasing=True).astype(np.float32)


def problem(name: str, kind: str, size: int):
    x = image(name, size)
    if kind == "blur":
        A = ni.operators.Blur(ni.psf.gaussian((15, 15), sigma=2.0), x.shape)
        noise = ni.noise.PoissonGaussian(gain=0.005, sigma=0.01)
    else:
        A = ni.operators.Identity(x.shape)
        noise = ni.noise.Gaussian(0.1)
    y = ni.simulate(x, A, noise, seed=0)
    return x, A, noise, y


def dip_row(name: str, kind: str, size: int, iterations: int, **params) -> dict:
    x, A, noise, y = problem(name, kind, size)
    settings = {**DEFAULT_STOP, **params}
    beta = 1 - 1 / settings["window"]
    path, raw, state = [], [], {"mean": None}

    def progress(i, total, preview):
        raw.append(ni.metrics.psnr(preview, x))
        m = state["mean"]
        state["mean"] = preview.copy() if m is None else beta * m + (1 - beta) * preview
        path.append(ni.metrics.psnr(state["mean"], x))
        if i % 100 == 0:
            print(f"  {name}/{kind} iteration {i}: running-mean PSNR {path[-1]:.2f}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    rec = ni.reconstruct(y, A, "dip", noise, seed=0, stop="none", iterations=iterations, progress=progress,
                         **params)
    seconds = (time.perf_counter() - t0) / rec.info["iterations"]
    # the method's own target: τ × the misfit expected at the noise level (recorded also when it ran without stopping)
    rule = StoppingRule.replay(rec.info["history"], "auto", rec.info["discrepancy_target"], settings["window"],
                               settings["patience"], settings["margin"])
    rl = ni.reconstruct(y, A, "richardson_lucy", noise)
    best = int(np.argmax(path))
    return {
        "case": f"{name}/{kind}", "measured": ni.metrics.psnr(y, x) if kind == "denoise" else float("nan"),
        "rl": ni.metrics.psnr(rl.mean, x), "stopped": path[rule.selected - 1], "stop_it": rule.selected,
        "why": rule.reason.split(":")[0], "oracle": path[best], "oracle_it": best + 1, "raw_oracle": max(raw),
        "s_per_it": seconds, "ran": rec.info["iterations"],
    }


def bayes_row(name: str, kind: str, size: int, iterations: int, method: str, **params) -> dict:
    x, A, noise, y = problem(name, kind, size)
    t0 = time.perf_counter()
    rec = ni.reconstruct(y, A, method, noise, seed=0, iterations=iterations, **params)
    return {
        "case": f"{name}/{kind}", "method": method, "psnr": ni.metrics.psnr(rec.mean, x),
        "coverage90": ni.diagnostics.coverage(rec, x, 0.9), "corr": ni.diagnostics.std_error_correlation(rec, x),
        "stop_it": rec.info["stop_iteration"], "why": rec.info["stopped"].split(":")[0],
        "seconds": time.perf_counter() - t0,
    }


def timing_rows(size: int, iterations: int = 12) -> None:
    """Wall and CPU seconds per iteration (median over the last ``iterations − 2``) of each network method."""
    x, A, noise, y = problem("fluorescence", "blur", size)
    print(f"| method | wall s/it ({size}²) | CPU s/it | torch threads |")
    for method in ("dip", "deep_decoder", "bayes_dip", "mc_dropout_dip"):
        wall, cpu = [], []

        def progress(i, total, preview):
            wall.append(time.perf_counter())
            cpu.append(time.process_time())

        ni.reconstruct(y, A, method, noise, iterations=iterations, stop="none", progress=progress)
        print(f"| {method} | {np.median(np.diff(wall)[2:]):.3f} | {np.median(np.diff(cpu)[2:]):.3f} "
              f"| {torch.get_num_threads()} |", flush=True)


def stop_rows(size: int, cases: list[str], settings: dict[str, dict]) -> None:
    """Each case run as a user runs it (``stop="auto"``, at most 2000 iterations), once per named parameter set:
    the iteration of the stop, the PSNR of the returned image and the wall and CPU seconds of the whole call."""
    print(f"# size {size}×{size}, {torch.get_num_threads()} torch threads")
    print("| case | settings | iterations run | stop iteration (rule) | PSNR at stop | wall s | CPU s |")
    print("|---|---|---|---|---|---|---|")
    for case in cases:
        name, kind = case.split("/")
        x, A, noise, y = problem(name, kind, size)
        for label, params in settings.items():
            t0, c0 = time.perf_counter(), time.process_time()
            rec = ni.reconstruct(y, A, "dip", noise, seed=0, **params)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            info = rec.info
            print(f"| {case} | {label} | {info['iterations']} | {info['stop_iteration']} ({info['stopped'].split(':')[0]}) "
                  f"| {ni.metrics.psnr(rec.mean, x):.2f} | {wall:.1f} | {cpu:.1f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="64×64, few iterations")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--only", default=None, help="one row, e.g. dip:cell/blur or bayes_dip:fluorescence/denoise")
    ap.add_argument("--params", default="{}", help='extra method parameters as JSON, e.g. {"input_noise": 0}')
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--timing", action="store_true", help="only seconds per iteration on --size (default 256)")
    ap.add_argument("--stop-table", action="store_true",
                    help="each §4 case (or --only's) stopping itself at --size (default 256): iterations, PSNR, seconds, "
                         "with the defaults and with --params (if given)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.timing:
        timing_rows(args.size or 256)
        return
    if args.stop_table:
        cases = [args.only.split(":")[-1]] if args.only else [f"{n}/{k}" for n in ("fluorescence", "cell")
                                                              for k in ("blur", "denoise")]
        settings = {"defaults": {}}
        if json.loads(args.params):
            settings[args.params] = json.loads(args.params)
        stop_rows(args.size or 256, cases, settings)
        return
    size = args.size or (64 if args.quick else 256)
    its = args.iterations or (150 if args.quick else 2500)
    rows = [("dip", n, k) for n in ("fluorescence", "cell") for k in ("blur", "denoise")]
    rows += [(m, "fluorescence", k) for m in ("bayes_dip", "mc_dropout_dip") for k in ("denoise", "blur")]
    if args.only:
        method, case = args.only.split(":")
        rows = [(method, *case.split("/"))]
    print(f"# size {size}×{size}, at most {its} iterations, {torch.get_num_threads()} torch threads")
    print("| case | PSNR y | RL | DIP stopped (it, rule) | oracle (it) | raw-iterate best | Δ to oracle | s/it |")
    for method, name, kind in rows:
        if method != "dip":
            continue
        r = dip_row(name, kind, size, its, **json.loads(args.params))
        print(f"| {r['case']} | {r['measured']:.2f} | {r['rl']:.2f} | {r['stopped']:.2f} ({r['stop_it']}, {r['why']}) "
              f"| {r['oracle']:.2f} ({r['oracle_it']}) | {r['raw_oracle']:.2f} | {r['oracle'] - r['stopped']:.2f} "
              f"| {r['s_per_it']:.3f} |", flush=True)
    print("\n| method | case | PSNR mean | coverage 90% | std–error corr | stop (it, rule) | seconds |")
    for method, name, kind in rows:
        if method == "dip":
            continue
        r = bayes_row(name, kind, size, its, method, **json.loads(args.params))
        print(f"| {method} | {r['case']} | {r['psnr']:.2f} | {r['coverage90']:.3f} | {r['corr']:.3f} "
              f"| {r['stop_it']}, {r['why']} | {r['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
