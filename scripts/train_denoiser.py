"""Train the shipped noise-conditional denoiser (``src/napari_invimg/nets/weights/denoiser.pt``); resumable.

Seeded and reproducible. CPU by default (``--threads``), a GPU when one is present (``--device``). Data, all
made offline (``napari_invimg.nets.corpus``): textured dead-leaves images, smooth cell-like images,
``datasets.fluorescence`` (seeds 1000+) and scikit-image's bundled images except the held-out list
(``corpus.HELDOUT_NATURAL``: camera, moon, coins, immunohistochemistry, hubble_deep_field; fluorescence seeds
0–7; procedural seeds ≥ 10⁶). Random crops with flips, rotations and intensity jitter; Gaussian and
Poisson–Gaussian noise, σ log-uniform in [0.002, 2], the noise level as an input channel.

Training writes a checkpoint (model, EMA of the weights, optimizer, step, generator state) to
``--ckpt-dir`` every ``--checkpoint-every`` steps (temporary file, then renamed) and continues from it with
``--resume``. ``--export`` evaluates the latest checkpoint's EMA weights on the held-out list against the
currently shipped weights and writes a package weights file (fp16) whose metadata names the command (and every
restart's, ``command_history``: a resumed run may change the schedule), data, steps, seed, hardware (with the
niceness and load at each start), held-out figures and the out-of-distribution reference (``nets.ood``):

    nohup nice -n 10 python scripts/train_denoiser.py --ckpt-dir /work/train_ckpt --threads 1 --resume \\
        > /work/train_denoiser.log 2>&1 &
    python scripts/train_denoiser.py --ckpt-dir /work/train_ckpt --export --out src/napari_invimg/nets/weights/denoiser.pt

``--corpus mri`` fine-tunes for MR magnitude images (the MRI weights ``nets/weights/denoiser_mri.pt``, which the MRI
operators ask plug-and-play for): ``mri.training_magnitudes`` (random ellipse phantoms, ``mri.brain`` seeds ≥ 2, the
small signed imaginary part a phase-removed image keeps; never the test images Shepp–Logan and brain seed 0), Gaussian
noise only, from ``--init`` (e.g. the shipped weights), σ in ``--sigma-min``–``--sigma-max``; ``--export`` then
evaluates on held-out MR images (ellipse seeds ≥ 10⁶, brain seed 1) against ``--init``:

    nohup python scripts/train_denoiser.py --corpus mri --arch small --init src/napari_invimg/nets/weights/denoiser.pt \
        --sigma-min 0.002 --sigma-max 0.08 --lr 3e-4 --warmup 50 --steps 3000 --ckpt-dir /tmp/mri_ckpt --resume &
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

import napari_invimg as ni
from napari_invimg._device import resolve_device
from napari_invimg.nets import corpus
from napari_invimg.nets.drunet import SmallDRUNet, load_weights, save_weights, shipped_weights
from napari_invimg.nets.ood import SIGMA_REF, reference_statistics
from napari_invimg.nets.training import SIGMA_RANGE, PatchSampler, add_noise, heldout_set

#: the network trained by default (``--arch v2``): 2×2 pixel unshuffle, then a 4-level bias-free UNet
ARCHS = {
    "v2": dict(channels=(32, 64, 128, 192), blocks=(1, 2, 2, 2), unshuffle=2),
    "small": dict(channels=(16, 32, 64, 64), blocks=1),
}
EVAL_SIGMAS = (0.05, 0.1, 0.2)
FLUO_SIGMAS = (0.01, 0.05, 0.1, 0.2, 0.5, 1.0)
CHECKPOINT = "checkpoint.pt"


def command_line(argv: list[str] | None) -> str:
    return "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])


def hardware(device: torch.device, threads: int) -> str:
    """The device, the cores, the process's niceness and the machine's load when the run started (a shared CPU
    trains many times slower than its core count suggests)."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    shared = f", nice {os.nice(0)}" if hasattr(os, "nice") else ""
    if hasattr(os, "getloadavg"):
        shared += f", load average {os.getloadavg()[0]:.1f} at start"
    return f"{device.type}: {name}; {os.cpu_count()} cores{shared}; torch threads {threads}; torch {torch.__version__}"


def stalls(history: list[list[float]]) -> tuple[float, int, float]:
    """From the loss log ``[step, loss, elapsed s]``: seconds spent in intervals slower than 5× the median pace (the
    job stopped or starved), their number, and the median seconds per step."""
    pace = [((b[2] - a[2]) / (b[0] - a[0]), b[2] - a[2]) for a, b in itertools.pairwise(history) if b[0] > a[0]]
    if not pace:
        return 0.0, 0, float("nan")
    median = float(np.median([p for p, _ in pace]))
    slow = [d for p, d in pace if p > 5 * median]
    return float(sum(slow)), len(slow), median


MRI_EVAL_SIGMAS = (0.005, 0.01, 0.02)


def mri_heldout_images(size: int | None = 128) -> dict[str, np.ndarray]:
    """Held-out MR magnitudes for ``--corpus mri`` (never trained on): ellipse phantoms seeds 10⁶, 10⁶ + 1 and
    ``mri.brain`` seed 1 (the tuning image), center-cropped to ``size``²."""
    from napari_invimg import mri

    out = {f"ellipses-{k}": mri.random_ellipses((256, 256), seed=corpus.HELDOUT_SEED + k) for k in range(2)}
    out["brain-1"] = np.abs(mri.brain((256, 256), seed=1)).astype(np.float32)
    if size is None:
        return out
    return {name: np.ascontiguousarray(im[(256 - size) // 2:(256 + size) // 2, (256 - size) // 2:(256 + size) // 2])
            for name, im in out.items()}


def heldout_table(model: torch.nn.Module, device: torch.device, size: int = 128, seed: int = 12345,
                  kind: str = "general") -> dict[str, dict[str, float]]:
    """PSNR per held-out image and σ (Gaussian noise, true σ given), and the means."""
    images = corpus.heldout_images(size) if kind == "general" else mri_heldout_images(size)
    sigmas = EVAL_SIGMAS if kind == "general" else MRI_EVAL_SIGMAS
    rng = np.random.default_rng(seed)
    table: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for name, clean in images.items():
            for s in sigmas:
                noisy = (clean + s * rng.standard_normal(clean.shape)).astype(np.float32)
                out = model(torch.from_numpy(noisy)[None, None].to(device), torch.tensor([s], device=device))[0, 0]
                table.setdefault(name, {})[str(s)] = round(ni.metrics.psnr(out.cpu().numpy(), clean), 2)
    table["mean"] = {str(s): round(float(np.mean([table[n][str(s)] for n in images])), 2) for s in sigmas}
    return table


def fluorescence_table(model: torch.nn.Module, device: torch.device) -> dict[str, list[float]]:
    """Mean (noisy, denoised) PSNR per σ on held-out fluorescence seeds 0–3 at 256² (the older table)."""
    rows: dict[float, list[tuple[float, float]]] = {}
    with torch.no_grad():
        for s, clean, noisy in heldout_set(FLUO_SIGMAS):
            out = model(torch.from_numpy(noisy)[None, None].to(device), torch.tensor([s], device=device))[0, 0].cpu().numpy()
            rows.setdefault(s, []).append((ni.metrics.psnr(noisy, clean), ni.metrics.psnr(out, clean)))
    return {str(s): [round(float(a), 2) for a in np.mean(v, axis=0)] for s, v in rows.items()}


def build(arch: str, seed: int) -> SmallDRUNet:
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, the caller's global RNG untouched
        torch.manual_seed(seed)
        return SmallDRUNet(**ARCHS[arch])


def save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def make_sampler(args) -> tuple[PatchSampler, str]:
    """The training crops' sampler; the generated corpus is cached in ``--ckpt-dir`` (a restart skips making it)."""
    started = time.perf_counter()
    if args.corpus == "mri":
        flat = f"-flat{args.flat_ellipses}" if args.flat_ellipses else ""
        cache = Path(args.ckpt_dir) / f"corpus-mri-{args.procedural}-{args.seed}{flat}.npz"
        sources: tuple[str, ...] = ("ellipses", "brain", "residual") + (("flat",) if args.flat_ellipses else ())
    else:
        cache = Path(args.ckpt_dir) / f"corpus-{args.procedural}-{args.fluorescence}-{args.seed}.npz"
        sources = ("dead_leaves", "cells", "fluorescence", "natural")
    if cache.exists():
        with np.load(cache) as z:
            data = {k: [z[f"{k}/{i}"] for i in range(int(z[f"{k}/n"]))] for k in sources}
    else:
        if args.corpus == "mri":
            from napari_invimg import mri

            data = mri.training_magnitudes(n=args.procedural, seed=args.seed, flat=args.flat_ellipses)
        else:
            data = corpus.training_images(procedural=args.procedural, fluorescence=args.fluorescence, seed=args.seed)
        flat = {f"{k}/{i}": im for k, ims in data.items() for i, im in enumerate(ims)}
        flat.update({f"{k}/n": np.array(len(ims)) for k, ims in data.items()})
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez(tmp, **flat)
        os.replace(tmp, cache)
    if args.corpus == "mri":  # as many crops from each source as it has images
        shares = {k: len(v) / sum(len(u) for u in data.values()) for k, v in data.items()}
    else:
        shares = {"dead_leaves": args.share_leaves, "cells": args.share_cells, "fluorescence": args.share_fluorescence,
                  "natural": 1 - args.share_leaves - args.share_cells - args.share_fluorescence}
    images, weights = [], []
    for source, ims in data.items():
        images += ims
        weights += [shares[source] / len(ims)] * len(ims)
    described = ", ".join(f"{len(v)} {k} (share {shares[k]:.2f})" for k, v in data.items())
    print(f"data: {described}; made in {time.perf_counter() - started:.0f} s", flush=True)
    # the residual (imaginary-part) images are signed: no intensity jitter towards [0, 1] for any MR image
    return PatchSampler(images, patch=args.patch, weights=weights, intensity_jitter=args.corpus != "mri"), described


def train(args, argv) -> None:
    device = resolve_device(None if args.device == "auto" else args.device)
    ckpt_dir = Path(args.ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = ckpt_dir / CHECKPOINT
    model = build(args.arch, args.seed).to(device)
    ema = build(args.arch, args.seed).to(device)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    step, elapsed, history, runs = 0, 0.0, [], []
    if args.init:  # fine-tuning: start the network and its moving average from a weights file
        start, init_meta = load_weights(args.init, device)
        if start.config != model.config:
            raise SystemExit(f"{args.init} holds a network {start.config}, not --arch {args.arch} {model.config}.")
        model.load_state_dict(start.state_dict())
        ema.load_state_dict(start.state_dict())
        print(f"initialized from {args.init} ({init_meta.get('steps')} steps)", flush=True)
    if args.resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ck["arch"] != args.arch:
            raise SystemExit(f"{ckpt_path} holds a {ck['arch']!r} network, not {args.arch!r}.")
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["optimizer"])
        generator.set_state(ck["generator"])
        step, elapsed, history, runs = ck["step"], ck["elapsed"], ck.get("history", []), ck.get("runs", [])
        print(f"resumed from {ckpt_path} at step {step} ({elapsed:.0f} s of training so far)", flush=True)
    sampler, described = make_sampler(args)
    # every (re)start with its command: a resumed run may change the schedule (e.g. a longer --steps)
    runs = runs + [{"from_step": step, "command": command_line(argv), "hardware": hardware(device, args.threads),
                    "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}]
    print(f"model {args.arch}: {sum(p.numel() for p in model.parameters())} parameters {model.config}; "
          f"receptive field {model.receptive_field}; {hardware(device, args.threads)}", flush=True)

    def rate(i: int) -> float:  # linear warm-up, then cosine decay to 5% at --steps (constant 5% beyond)
        if i < args.warmup:
            return args.lr * (i + 1) / args.warmup
        t = min(1.0, (i - args.warmup) / max(1, args.steps - args.warmup))
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))

    def checkpoint() -> None:
        save_atomic({"arch": args.arch, "config": model.config, "model": model.state_dict(), "ema": ema.state_dict(),
                     "optimizer": opt.state_dict(), "generator": generator.get_state(), "step": step,
                     "elapsed": elapsed, "history": history, "runs": runs, "data": described, "seed": args.seed,
                     "args": vars(args), "command": command_line(argv), "hardware": hardware(device, args.threads)},
                    ckpt_path)

    sigma_range = (args.sigma_min, args.sigma_max)
    model.train()
    window, t_last, t_ckpt = [], time.perf_counter(), time.perf_counter()
    recent: list[float] = []
    skipped = 0
    while step < args.max_steps:
        for group in opt.param_groups:
            group["lr"] = rate(step)
        x = sampler.sample(args.batch, generator).to(device)
        y, s = add_noise(x, sigma_range, generator, poisson_fraction=args.poisson_fraction)
        loss = model.loss(y, x, s)
        value = float(loss.detach())
        step += 1
        # a spike (non-finite, or 10× the recent median) is skipped, not learned from: one bad batch at a high
        # learning rate must not throw the weights away
        if not math.isfinite(value) or (len(recent) >= 20 and value > 10 * float(np.median(recent))):
            skipped += 1
            print(f"step {step}: loss {value:.3g} skipped ({skipped} so far)", flush=True)
            continue
        recent = (recent + [value])[-50:]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
        window.append(float(loss.detach()))
        now = time.perf_counter()
        if step % args.log_every == 0:
            elapsed += now - t_last
            t_last = now
            history.append([step, round(float(np.mean(window)), 5), round(elapsed, 1)])
            print(f"step {step}  loss {np.mean(window):.4f}  lr {rate(step):.2e}  {elapsed:.0f} s", flush=True)
            window.clear()
        if step % args.eval_every == 0:
            ema.eval()
            t = heldout_table(ema, device, size=96, kind=args.corpus)["mean"]
            print(f"step {step}  held-out mean PSNR (EMA, 96² crops) {t}", flush=True)
        if step % args.checkpoint_every == 0 or now - t_ckpt > args.checkpoint_seconds:
            elapsed += time.perf_counter() - t_last
            t_last = time.perf_counter()
            checkpoint()
            t_ckpt = time.perf_counter()
    checkpoint()


def export(args, argv) -> None:
    """Evaluate the checkpoint's EMA weights on the held-out list against the shipped weights; write ``--out``."""
    device = resolve_device(None if args.device == "auto" else args.device)
    ck = torch.load(Path(args.ckpt_dir) / CHECKPOINT, map_location=device, weights_only=False)
    model = SmallDRUNet(**ARCHS[ck["arch"]]).to(device)
    model.load_state_dict(ck["ema"])
    model.eval().requires_grad_(False)
    import importlib.resources

    targs = ck["args"]
    kind = targs.get("corpus", "general")
    before = targs.get("init") if kind == "mri" and targs.get("init") else None
    if before:  # a fine-tuned network is compared with the weights it started from
        shipped, shipped_meta = load_weights(before, device)
    else:
        with importlib.resources.as_file(shipped_weights()) as path:
            shipped, shipped_meta = load_weights(path, device)
    new, old = heldout_table(model, device, kind=kind), heldout_table(shipped, device, kind=kind)
    sigmas = EVAL_SIGMAS if kind == "general" else MRI_EVAL_SIGMAS
    print(f"checkpoint: step {ck['step']}, {ck['elapsed']:.0f} s of training; shipped: {shipped_meta.get('steps')} steps")
    print("held-out (128² center crops, Gaussian noise, true σ): PSNR dB  new / shipped")
    print(f"{'image':24s}" + "".join(f"  σ={s:<13}" for s in sigmas))
    for name in new:
        print(f"{name:24s}" + "".join(f"  {new[name][str(s)]:6.2f}/{old[name][str(s)]:6.2f}" for s in sigmas))
    fluo = fluorescence_table(model, device) if kind == "general" else None
    if fluo is not None:
        print("held-out fluorescence seeds 0-3, 256²: σ  noisy  new  shipped", json.dumps(shipped_meta.get("heldout_psnr")))
        for s, (noisy_db, new_db) in fluo.items():
            print(f"  {s:>5}  {noisy_db:6.2f}  {new_db:6.2f}")
    better = all(new["mean"][str(s)] >= old["mean"][str(s)] for s in sigmas)
    print(f"new weights {'beat' if better else 'do NOT beat'} the {'initial' if before else 'shipped'} ones on the "
          f"held-out mean at every σ")
    if args.out is None:
        return
    if kind == "mri":
        from napari_invimg import mri

        images = mri.training_magnitudes(n=16, seed=args.seed)
    else:
        images = corpus.training_images(procedural=8, fluorescence=4, seed=args.seed)
    train_like = [im for ims in images.values() for im in ims]

    def den(x, s):
        return model(x[None, None].to(device), torch.tensor([s], device=device))[0, 0]

    # at a level inside the trained range (the denoiser clamps σ to it when the score is taken)
    ood = reference_statistics(den, train_like, sigma=min(SIGMA_REF, targs.get("sigma_max", SIGMA_RANGE[1])),
                               seed=args.seed)
    stalled, n_stalls, pace = stalls(ck.get("history", []))
    runs = ck.get("runs") or [{"from_step": None, "command": ck["command"],
                               "note": "checkpoint written before runs were recorded: only its last command is known"}]
    meta = {"command": ck["command"], "export_command": command_line(argv), "seed": ck["seed"], "steps": ck["step"],
            "train_seconds": round(ck["elapsed"], 1), "hardware": ck["hardware"], "device": str(device),
            "torch": str(torch.__version__), "architecture_version": ck["arch"], "batch": targs["batch"],
            "patch": targs["patch"], "lr": targs["lr"], "ema": targs["ema"],
            "sigma_range": [targs.get("sigma_min", SIGMA_RANGE[0]), targs.get("sigma_max", SIGMA_RANGE[1])],
            "corpus": kind, "init": targs.get("init"), "init_steps": shipped_meta.get("steps") if before else None,
            "init_command": shipped_meta.get("command") if before else None,
            "data": f"{ck['data']}; " + ("Gaussian noise" if targs.get("poisson_fraction", 0.3) == 0 else
                                          "Gaussian + Poisson-Gaussian noise"),
            "heldout": (f"never trained on: skimage {', '.join(corpus.HELDOUT_NATURAL)}; fluorescence seeds 0-7; "
                        f"procedural seeds >= {corpus.HELDOUT_SEED}") if kind == "general" else
                       (f"never trained on: Shepp-Logan, mri.brain seeds 0 (test) and 1 (tuning), random_ellipses seeds "
                        f">= {corpus.HELDOUT_SEED}"),
            "heldout_psnr_table": new, "heldout_psnr": fluo if fluo is not None else new["mean"], ("init_heldout" if before else "shipped_before"): old["mean"],
            "ood_reference": ood, "loss_history": ck.get("history", [])[-50:], "command_history": runs,
            "parameters": sum(p.numel() for p in model.parameters()),
            "train_seconds_note": f"wall seconds of the training loop summed over its runs; {stalled:.0f} s of it in "
                                  f"{n_stalls} logging intervals slower than 5x the median pace (job stopped or "
                                  f"starved); median {pace:.3f} s per step"}
    if args.note:
        meta["note"] = args.note
    out = save_weights(model, args.out, **meta)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); OOD reference {ood}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=sorted(ARCHS), default="v2")
    ap.add_argument("--steps", type=int, default=30000, help="length of the learning-rate schedule")
    ap.add_argument("--max-steps", type=int, default=10**9, help="stop after this many steps (default: never)")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=96)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.999, help="decay of the exported moving average of the weights")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--procedural", type=int, default=256,
                    help="dead-leaves + cell-like training images (--corpus mri: the number of MR-like images)")
    ap.add_argument("--corpus", choices=("general", "mri"), default="general",
                    help="general: the shipped denoiser's corpus; mri: MR-like magnitudes (mri.training_magnitudes)")
    ap.add_argument("--flat-ellipses", type=int, default=0,
                    help="--corpus mri: add this many piecewise-constant images (mri.flat_ellipses) to the corpus")
    ap.add_argument("--init", default=None, help="weights file to start from (fine-tuning; not used on --resume)")
    ap.add_argument("--sigma-min", type=float, default=SIGMA_RANGE[0], help="least training noise level")
    ap.add_argument("--sigma-max", type=float, default=SIGMA_RANGE[1], help="largest training noise level")
    ap.add_argument("--poisson-fraction", type=float, default=None,
                    help="share of Poisson-Gaussian noise samples (default 0.3; 0 with --corpus mri)")
    ap.add_argument("--fluorescence", type=int, default=64, help="datasets.fluorescence training images")
    ap.add_argument("--share-leaves", type=float, default=0.35)
    ap.add_argument("--share-cells", type=float, default=0.1)
    ap.add_argument("--share-fluorescence", type=float, default=0.3)
    ap.add_argument("--device", default="auto", help="'auto' = cuda if available, else cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy shared CPU)")
    ap.add_argument("--ckpt-dir", default="runs/denoiser", help="checkpoints (keep outside the git tree)")
    ap.add_argument("--resume", action="store_true", help="continue from the checkpoint in --ckpt-dir if there is one")
    ap.add_argument("--checkpoint-every", type=int, default=200)
    ap.add_argument("--checkpoint-seconds", type=float, default=300)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--export", action="store_true", help="evaluate the latest checkpoint and write --out")
    ap.add_argument("--out", default=None, help="weights file written by --export")
    ap.add_argument("--note", default=None, help="a line for the exported weights' metadata (e.g. why training stopped)")
    args = ap.parse_args(argv)
    if args.poisson_fraction is None:
        args.poisson_fraction = 0.0 if args.corpus == "mri" else 0.3
    torch.set_num_threads(args.threads)
    (export if args.export else train)(args, argv)


if __name__ == "__main__":
    main()
