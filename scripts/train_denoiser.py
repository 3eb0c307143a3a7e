"""Train the shipped noise-conditional denoiser (``src/napari_invimg/nets/weights/denoiser.pt``).

Seeded and reproducible: the same command on the same device and torch version gives the same
weights. CPU by default (2 threads), a GPU when one is present (``--device``). Data, all made offline:
``datasets.fluorescence`` images (256×256, seeds 1000…, never the held-out seeds 0–7) and scikit-image's
bundled natural images (``datasets.natural_images()``), random 64×64 crops with flips, rotations and
intensity jitter; Gaussian and Poisson–Gaussian noise with σ log-uniform in [0.002, 2]. At the end the
script prints the held-out PSNR (fluorescence seeds 0–3) per σ against the noisy input and writes
the weights (fp16) with the command, seed, data, time and PSNR in their metadata.

    python scripts/train_denoiser.py --steps 900 --seed 0 --out src/napari_invimg/nets/weights/denoiser.pt
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import numpy as np
import torch

import napari_invimg as ni
from napari_invimg._device import resolve_device
from napari_invimg.nets.drunet import SmallDRUNet, load_weights, save_weights
from napari_invimg.nets.training import SIGMA_RANGE, PatchSampler, add_noise, fit, heldout_set

EVAL_SIGMAS = (0.01, 0.05, 0.1, 0.2, 0.5, 1.0)


def heldout_psnr(model: SmallDRUNet, device: torch.device) -> dict[float, tuple[float, float]]:
    """Mean (noisy, denoised) PSNR per σ on the held-out fluorescence images."""
    rows: dict[float, list[tuple[float, float]]] = {}
    with torch.no_grad():
        for s, clean, noisy in heldout_set(EVAL_SIGMAS):
            t = torch.from_numpy(noisy)[None, None].to(device)
            out = model(t, torch.tensor([s], device=device))[0, 0].cpu().numpy()
            rows.setdefault(s, []).append((ni.metrics.psnr(noisy, clean), ni.metrics.psnr(out, clean)))
    return {s: tuple(np.mean(v, axis=0)) for s, v in rows.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fluorescence", type=int, default=64, help="number of generated training images")
    ap.add_argument("--fluorescence-share", type=float, default=0.6, help="share of crops from generated images")
    ap.add_argument("--init", default=None, help="start from this weights file instead of random weights")
    ap.add_argument("--device", default="auto", help="'auto' = cuda if available, else cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy shared CPU)")
    ap.add_argument("--out", default="src/napari_invimg/nets/weights/denoiser.pt")
    ap.add_argument("--log-every", type=int, default=50)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = resolve_device(None if args.device == "auto" else args.device)
    started = time.perf_counter()

    fluo = [ni.datasets.fluorescence((256, 256), seed=1000 + i) for i in range(args.fluorescence)]
    natural = ni.datasets.natural_images()
    share = args.fluorescence_share
    weights = [share / len(fluo)] * len(fluo) + [(1 - share) / len(natural)] * len(natural)
    sampler = PatchSampler(fluo + natural, patch=args.patch, weights=weights)
    print(f"data: {len(fluo)} fluorescence images (seeds 1000-{999 + len(fluo)}), {len(natural)} natural images; "
          f"{time.perf_counter() - started:.1f} s", flush=True)

    if args.init:
        model = load_weights(args.init, device)[0]
    else:
        model = SmallDRUNet().to(device)
    print(f"model: {sum(p.numel() for p in model.parameters())} parameters {model.config}; device {device}", flush=True)

    def batch(g: torch.Generator):
        x = sampler.sample(args.batch, g).to(device)
        y, s = add_noise(x, SIGMA_RANGE, g)
        return y, x, s

    t0 = time.perf_counter()
    window: list[float] = []

    def log(step: int, loss: float) -> None:
        window.append(loss)
        if step % args.log_every == 0 or step == args.steps:
            print(f"step {step}/{args.steps}  loss {np.mean(window):.4f}  {time.perf_counter() - t0:.0f} s", flush=True)
            window.clear()

    generator = torch.Generator().manual_seed(args.seed)
    fit(model, batch, args.steps, generator, lr=args.lr, log=log)
    train_seconds = time.perf_counter() - t0

    table = heldout_psnr(model, device)
    print("held-out fluorescence (seeds 0-3, 256x256), Gaussian noise: sigma  noisy PSNR  denoised PSNR")
    for s, (p_noisy, p_out) in table.items():
        print(f"  {s:5.3f}  {p_noisy:6.2f}  {p_out:6.2f}")
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    save_weights(model, args.out, command=command, seed=args.seed, steps=args.steps, batch=args.batch,
                 patch=args.patch, lr=args.lr, init=args.init, device=str(device), torch=str(torch.__version__),
                 sigma_range=list(SIGMA_RANGE), train_seconds=round(train_seconds, 1),
                 data=f"{len(fluo)} datasets.fluorescence 256x256 seeds 1000+ (share {share}), "
                      f"{len(natural)} datasets.natural_images(); Gaussian + Poisson-Gaussian noise",
                 heldout_psnr={str(s): [round(a, 2), round(b, 2)] for s, (a, b) in table.items()})
    print(f"wrote {args.out}; training {train_seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
