"""Supervised methods and neural fields (issue #18): care and unrolled against classical methods, the robustness
table under a wrong PSF width, and neural_field against DIP and on 2× super-resolution.

Parts (run each as its own process; every part prints a table and appends JSON lines to --log):

    python benchmarks/bench_supervised.py care --size 256 --steps 500 --train-minutes 20 --test-images 3  # vs pnp_admm / tv
    python benchmarks/bench_supervised.py unrolled --size 256 --steps 400      # MRI 8 coils, poisson 8×, equispaced 4×
    python benchmarks/bench_supervised.py unrolled --size 64 --steps 450 --unrolled-k 3 --batch 4 --width 16 \
        --images 1000 --case poisson8 --start wavelet --start-pool 8 --start-refresh 0.5 --augment --val-images 4 \
        --keep-best --lr 2e-3 --tag fresh16                                  # RESULTS §13, fourth session (bar met)
    python benchmarks/bench_supervised.py robustness --size 128                # PSF width ±20 %, care/unrolled/pnp/tv/RL
    python benchmarks/bench_supervised.py field --size 128                     # neural_field vs DIP (§4 cases), 2× SR

Microscopy problem (as RESULTS §4): Gaussian PSF σ = 2 px (15×15), Poisson–Gaussian noise (gain 0.005, σ 0.01).
Training images: ``datasets.fluorescence(seed=100…)``; test images: seeds 1, 2, 3 (never trained on).
MRI: 8 birdcage coils, 30 dB SNR, training phantoms ``mri.brain(seed=1…)``; test phantom ``mri.brain(seed=0)``
(bench_mri's phantom). Weights go to --out (default /tmp/invimg-bench) and are reused by ``robustness``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import napari_invimg as ni
from napari_invimg import mri

PSF_SIGMA = 2.0
NOISE = ni.noise.PoissonGaussian(gain=0.005, sigma=0.01)
TEST_SEEDS = (1, 2, 3)


def blur(shape):
    return ni.operators.Blur(ni.psf.gaussian((15, 15), sigma=PSF_SIGMA), shape)


def quality(est, x) -> float:
    return ni.metrics.psnr(np.abs(est), np.abs(x))


def emit(log, row: dict) -> None:
    print(json.dumps(row), flush=True)
    if log:
        with open(log, "a") as fh:
            fh.write(json.dumps(row) + "\n")


def train(method: str, args, **kw) -> Path:
    """Train ``method`` for ``args.steps`` steps, or until ``args.train_minutes`` of wall time have passed (then the
    partial model, written by ``train_supervised`` on cancel, is used)."""
    out = Path(args.out) / f"{method}_{args.size}_{args.steps}_w{args.width}.pt"
    if out.exists() and not args.retrain:
        return out
    t = time.perf_counter()
    budget = 60.0 * args.train_minutes if getattr(args, "train_minutes", None) else None
    reached = {"step": 0}

    def progress(step, total, preview, status=None):
        reached["step"] = step
        now = time.perf_counter()
        if status and "val_psnr" in status and (step % 100 == 0 or step == total):
            print(f"  {method} step {step}/{total} loss {status['loss']:.4g} val PSNR {status['val_psnr']:.2f} "
                  f"({now - t:.0f} s)", flush=True)
        if budget is not None and now - t >= budget:
            print(f"  {method}: wall-time budget of {args.train_minutes:g} min reached at step {step}/{total}",
                  flush=True)
            return False
        return True

    if args.width:
        kw["width"] = args.width
    try:
        path = ni.train_supervised(method, steps=args.steps, seed=0, out=out, progress=progress, **kw)
    except ni.Cancelled as exc:
        path = Path(exc.partial)
    done = max(reached["step"], 1)
    args.steps_done, args.train_seconds = reached["step"], time.perf_counter() - t
    print(f"  trained {method}: {reached['step']} of {args.steps} steps in {time.perf_counter() - t:.0f} s "
          f"({(time.perf_counter() - t) / done:.2f} s/step)", flush=True)
    return path


def part_care(args) -> None:
    n = args.size
    truth = [ni.datasets.fluorescence((n, n), seed=100 + i) for i in range(args.images)]
    path = train("care", args, truth=truth, operator=blur((n, n)), noise=NOISE)
    A = blur((n, n))
    for seed in TEST_SEEDS[:args.test_images]:
        x = ni.datasets.fluorescence((n, n), seed=seed)
        y = ni.simulate(x, A, NOISE, seed=0)
        row = {"part": "care", "size": n, "steps": args.steps, "steps_done": getattr(args, "steps_done", None),
               "train_s": getattr(args, "train_seconds", None), "image": seed, "y": quality(y, x)}
        for name, kw in (("care", {"weights": str(path)}), ("pnp_admm", {}), ("tv", {}), ("richardson_lucy", {})):
            t = time.perf_counter()
            rec = ni.reconstruct(y, A, name, noise=NOISE, seed=0, **kw)
            row[name] = quality(rec.mean, x)
            row[name + "_s"] = time.perf_counter() - t
        emit(args.log, row)


def part_unrolled(args) -> None:
    n = args.size
    cases = [c for c in [("poisson", 8), ("equispaced", 4)] if not args.case or f"{c[0]}{c[1]}" == args.case]
    truth = [mri.brain((n, n), seed=1 + i) for i in range(args.images)]
    # held-out validation phantoms (never trained on, never the test phantom seed 0)
    held_out = [mri.brain((n, n), seed=100000 + i) for i in range(args.val_images)] if args.val_images else None
    x = mri.brain((n, n), seed=0)
    for kind, R in cases:
        sc = mri.simulate_kspace(x, 8, kind=kind, acceleration=R, snr_db=30.0, seed=0)
        noise = ni.noise.Gaussian(sc.sigma)
        args_k = argparse.Namespace(**{**vars(args), "out": args.out})
        tag = ("" if args.start == "cg" else f"_{args.start}{args.start_wavelet}") + (f"_{args.tag}" if args.tag else "")
        out = Path(args.out) / f"unrolled_{kind}{R}_{n}_{args.steps}{tag}.pt"
        if not out.exists() or args.retrain:
            t = time.perf_counter()
            budget = 60.0 * args.train_minutes if args.train_minutes else None
            start_kw = {} if args.start == "cg" else {
                "start": args.start, "start_pool": args.start_pool,
                "start_params": {"wavelet": args.start_wavelet} if args.start == "wavelet" else {}}

            def progress(s, tot, p, status=None, kind=kind, R=R, t=t, budget=budget):
                if status and "val_psnr" in status:
                    print(f"  unrolled {kind} {R}× step {s} loss {status['loss']:.4g} val {status['val_psnr']:.2f} "
                          f"({time.perf_counter() - t:.0f} s)", flush=True)
                if budget is not None and s > 0 and time.perf_counter() - t >= budget:
                    print(f"  wall-time budget of {args.train_minutes:g} min reached at step {s}/{tot}", flush=True)
                    return False
                return True

            try:
                ni.train_supervised("unrolled", truth=truth, operator=sc.operator, noise=noise, steps=args.steps,
                                    seed=0, out=out, iterations=args.unrolled_k, batch_size=args.batch,
                                    width=args.width or 24, lr=args.lr, progress=progress, augment=args.augment,
                                    validation_truth=held_out, keep_best=args.keep_best and held_out is not None,
                                    weight_decay=args.weight_decay, start_refresh=args.start_refresh, **start_kw)
            except ni.Cancelled:
                pass
            print(f"  trained unrolled {kind} {R}×: {time.perf_counter() - t:.0f} s", flush=True)
        del args_k
        meta = torch.load(out, weights_only=True)["metadata"]
        row = {"part": "unrolled", "case": f"brain 8c {kind} {R}×", "size": n, "steps": args.steps,
               "start": args.start, "steps_done": meta.get("steps_done"), "best_step": meta.get("best_step"),
               "images": args.images, "start_refresh": args.start_refresh, "train_s": meta.get("seconds")}
        for name, kw in (("unrolled", {"weights": str(out)}), ("wavelet (haar)", {"wavelet": "haar"}),
                         ("wavelet (db4)", {}), ("adjoint", {})):
            meth = name.split(" ")[0]
            t = time.perf_counter()
            rec = ni.reconstruct(sc.kspace, sc.operator, meth, noise=noise, seed=0, **kw)
            row[name] = quality(rec.mean, x)
            row[name + "_s"] = time.perf_counter() - t
        emit(args.log, row)


def part_robustness(args) -> None:
    n = args.size
    A = blur((n, n))
    care = Path(args.care_weights or Path(args.out) / f"care_{n}_{args.steps}_w{args.width}.pt")
    truth = [ni.datasets.fluorescence((n, n), seed=100 + i) for i in range(args.images)]
    unrolled = Path(args.unrolled_weights or Path(args.out) / f"unrolled_blur_{n}_{args.unrolled_steps}.pt")
    if not unrolled.exists():
        t = time.perf_counter()
        ni.train_supervised("unrolled", truth=truth, operator=A, noise=NOISE, steps=args.unrolled_steps, seed=0,
                            out=unrolled, psf_range=0.2, iterations=args.unrolled_k, batch_size=args.batch)
        print(f"  trained unrolled (blur, PSF width ×(1 ± 0.2)): {time.perf_counter() - t:.0f} s", flush=True)
    while args.wait_care and not care.exists():  # trained by a `care` run in another process
        time.sleep(20)
    if not care.exists():
        train("care", args, truth=truth, operator=A, noise=NOISE)
    images = [ni.datasets.fluorescence((n, n), seed=s) for s in TEST_SEEDS[: args.test_images]]
    methods = [("care", {"weights": str(care)}), ("unrolled", {"weights": str(unrolled)}), ("pnp_admm", {}),
               ("tv", {}), ("richardson_lucy", {})]
    for name, kw in methods:
        t = time.perf_counter()
        rows = ni.diagnostics.robustness(name, A, NOISE, images, perturb={"psf_scale": [0.8, 1.2]}, seed=0, **kw)
        print(ni.diagnostics.format_robustness(rows, name), flush=True)
        for r in rows:
            emit(args.log, {"part": "robustness", "method": name, "size": n, **r,
                            "seconds": time.perf_counter() - t})


def dip_problem(name: str, kind: str, n: int):
    from bench_dip import problem

    return problem(name, kind, n)


def part_field(args) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    n = args.size
    field_kw = json.loads(args.field_kw)
    names = [nm for nm in ("fluorescence", "cell") if not args.only or nm == args.only]
    for name in names:
        for kind in args.kinds.split(","):
            x, A, noise, y = dip_problem(name, kind, n)
            row = {"part": "field", "case": f"{name}/{kind}", "size": n}
            for meth, kw in (("neural_field", field_kw), ("dip", {"iterations": args.dip_iterations})):
                if meth not in args.field_methods.split(","):
                    continue
                t = time.perf_counter()
                rec = ni.reconstruct(y, A, meth, noise=noise, seed=0, **kw)
                row[meth] = quality(rec.mean, x)
                row[meth + "_it"] = rec.info.get("stop_iteration")
                row[meth + "_s"] = time.perf_counter() - t
            emit(args.log, row)
    if "sr" not in args.field_methods.split(","):
        return
    # 2× super-resolution: blur σ = 1 px of the fine grid, then 2×2 binning; Poisson–Gaussian noise
    from skimage.transform import resize

    for name in names:
        x = dip_problem(name, "blur", 2 * n)[0]
        D = ni.operators.Downsampling(x.shape, factor=2, psf=ni.psf.gaussian((7, 7), 1.0))
        y = ni.simulate(x, D, NOISE, seed=0)
        row = {"part": "super-resolution", "case": name, "size": n, "fine": 2 * n}
        t = time.perf_counter()
        rec = ni.reconstruct(y, D, "neural_field", noise=NOISE, seed=0, **{"upsample": 1, **field_kw})
        row["neural_field (on the fine grid via D)"] = quality(rec.mean, x)
        row["neural_field_s"] = time.perf_counter() - t
        # bicubic + RL: upsample the data, then deblur with the fine-grid PSF
        up = resize(y, x.shape, order=3, mode="reflect").astype(np.float32)
        row["bicubic"] = quality(up, x)
        Af = ni.operators.Blur(ni.psf.gaussian((7, 7), 1.0), x.shape)
        rl = ni.reconstruct(np.clip(up, 0, None), Af, "richardson_lucy", noise=ni.noise.Gaussian(0.01))
        row["bicubic + RL"] = quality(rl.mean, x)
        emit(args.log, row)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=("care", "unrolled", "robustness", "field"))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: train_supervised's)")
    ap.add_argument("--unrolled-steps", type=int, default=200)
    ap.add_argument("--images", type=int, default=12, help="training images")
    ap.add_argument("--test-images", type=int, default=2)
    ap.add_argument("--dip-iterations", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--unrolled-k", type=int, default=6, help="unrolled iterations K")
    ap.add_argument("--batch", type=int, default=None, help="training batch size (default: train_supervised's)")
    ap.add_argument("--wait-care", action="store_true", help="robustness: wait for the care part's weights")
    ap.add_argument("--case", default=None, help="unrolled: only this mask, e.g. poisson8 or equispaced4")
    ap.add_argument("--width", type=int, default=None, help="network width (default: train_supervised's)")
    ap.add_argument("--out", default="/tmp/invimg-bench")
    ap.add_argument("--log", default=None)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--only", default=None, help="field: only this image (fluorescence or cell)")
    ap.add_argument("--field-methods", default="neural_field,dip,sr",
                    help="field: which of neural_field, dip (the §4 cases) and sr (2× super-resolution) to run")
    ap.add_argument("--field-kw", default="{}",
                    help='field: neural_field parameters as JSON, e.g. \'{"network": "siren"}\' (cases and SR)')
    ap.add_argument("--kinds", default="blur,denoise", help="field: which of the §4 problems (blur, denoise) to run")
    ap.add_argument("--start", default="cg", choices=("cg", "wavelet", "tv"),
                    help="unrolled: MoDL from CG (cg) or learned refinement of this classical reconstruction")
    ap.add_argument("--start-wavelet", default="haar", help="unrolled --start wavelet: the start's wavelet")
    ap.add_argument("--start-pool", type=int, default=6, help="unrolled --start: masks in the pool of starts")
    ap.add_argument("--care-weights", default=None, help="robustness: use this care weights file (else train)")
    ap.add_argument("--unrolled-weights", default=None,
                    help="robustness: use this unrolled (blur family) weights file (else train)")
    ap.add_argument("--start-refresh", type=float, default=0.0,
                    help="unrolled --start: fresh starts per training step (a moving pool of start-pool groups)")
    ap.add_argument("--augment", action="store_true", help="unrolled MRI: random mirror and global phase")
    ap.add_argument("--val-images", type=int, default=0,
                    help="unrolled MRI: held-out validation phantoms brain(seed=100000…)")
    ap.add_argument("--keep-best", action="store_true", help="unrolled: keep the weights of the best validation PSNR")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--tag", default="", help="unrolled: suffix of the weights file name")
    ap.add_argument("--lr", type=float, default=None, help="training learning rate (default: train_supervised's)")
    ap.add_argument("--train-minutes", type=float, default=None,
                    help="care and unrolled training (also robustness's): stop at this wall time in minutes (the "
                         "partial model is used)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    from napari_invimg.methods.supervised import DEFAULT_STEPS

    if args.steps is None:
        args.steps = DEFAULT_STEPS["unrolled" if args.part == "unrolled" else "care"]
    {"care": part_care, "unrolled": part_unrolled, "robustness": part_robustness, "field": part_field}[args.part](args)


if __name__ == "__main__":
    main()
