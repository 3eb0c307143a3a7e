"""Outputs of the data term's users on small seeded problems (32², 1 thread), to compare two trees bit by bit.

    PYTHONPATH=<tree>/src python benchmarks/check_data_term.py OUTDIR [case,case,...]
    python benchmarks/check_data_term.py --compare OUTDIR_BEFORE OUTDIR_AFTER

Writes OUTDIR/<case>.npz (mean, std) and OUTDIR/summary.json (PSNR, scalar info); ``--compare`` prints per case
whether the means are bit-equal (else the largest difference relative to the largest value) and the info fields
that changed (benchmarks/RESULTS.md §9).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def compare(a: Path, b: Path) -> None:
    before, after = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for k in (k for k in after if k in before):
        m, n = np.load(a / f"{k}.npz")["mean"], np.load(b / f"{k}.npz")["mean"]
        rel = float(np.abs(m - n).max() / max(np.abs(m).max(), 1e-30))
        same = "bit-equal" if np.array_equal(m, n) else f"max rel {rel:.2e}"
        changed = {f: (before[k]["info"].get(f), v) for f, v in after[k]["info"].items() if before[k]["info"].get(f) != v}
        print(f"{k:16s} PSNR {before[k]['psnr']:.4f} -> {after[k]['psnr']:.4f}  {same}  {changed or ''}")


def cases() -> dict:
    import napari_invimg as ni
    from napari_invimg import mri

    x = ni.datasets.fluorescence((32, 32), seed=1)
    A = ni.operators.Blur(ni.psf.gaussian((7, 7), sigma=1.2), x.shape)
    G, P = ni.noise.Gaussian(0.03), ni.noise.PoissonGaussian(0.01, 0.01)
    yG, yP = ni.simulate(x, A, G, seed=0), ni.simulate(x, A, P, seed=0)
    chains = {"n_samples": 16, "chains": 2}
    out = {
        "tv_pd_G": (yG, A, G, "tv", {}), "tv_pd_P": (yP, A, P, "tv", {}),
        "tv_fista_G": (yG, A, G, "tv", {"solver": "fista", "iterations": 40}),
        "tv_fista_P": (yP, A, P, "tv", {"solver": "fista", "iterations": 40}),
        "tv_admm_G": (yG, A, G, "tv", {"solver": "admm", "iterations": 40}),
        "tv_admm_P": (yP, A, P, "tv", {"solver": "admm", "iterations": 40, "lam": 0.05}),
        "hessian_P": (yP, A, P, "hessian", {"iterations": 60}),
        "rl_tv_P": (yP, A, P, "rl_tv", {"iterations": 30}),
        "rl_P": (yP, A, P, "richardson_lucy", {}),
        "pnp_admm_tv_P": (yP, A, P, "pnp_admm", {"denoiser": "tv", "iterations": 8}),
        "pnp_admm_dr_P": (yP, A, P, "pnp_admm", {"iterations": 8}),
        "pnp_pgd_dr_G": (yG, A, G, "pnp_pgd", {"iterations": 8}),
        "red_tv_P": (yP, A, P, "red", {"denoiser": "tv", "iterations": 10}),
        "ula_G": (yG, A, G, "ula", {"iterations": 200, **chains}),
        "mala_P": (yP, A, P, "mala", {"iterations": 200, **chains}),
        "myula_G": (yG, A, G, "ula", {"iterations": 200, "envelope": "moreau", **chains}),
        "pnp_ula_G": (yG, A, G, "pnp_ula", {"iterations": 100, "n_samples": 8, "chains": 2}),
        "dps_G": (yG, A, G, "dps", {"iterations": 4, "n_samples": 2}),
        "diffpir_P": (yP, A, P, "diffpir", {"iterations": 4, "n_samples": 2}),
        "vb_tv_P": (yP, A, P, "vb", {"iterations": 40, "n_samples": 4}),
        "vb_den_G": (yG, A, G, "vb", {"iterations": 20, "n_samples": 4, "prior": "denoiser"}),
    }
    mask = np.zeros((32, 32), bool)
    mask[::2] = mask[12:20] = True
    M, MG = mri.CartesianMRI(mask, coil_maps=mri.birdcage(2, (32, 32))), ni.noise.Gaussian(0.02)
    yM = ni.simulate(x, M, MG, seed=0)
    out["mri_tv_G"] = (yM, M, MG, "tv", {"iterations": 60})
    out["mri_pnp_tv_G"] = (yM, M, MG, "pnp_pgd", {"iterations": 6, "denoiser": "tv"})
    return x, out


def record(folder: Path, only: list[str] | None) -> None:
    import torch

    import napari_invimg as ni

    torch.set_num_threads(1)
    x, table = cases()
    summary = {}
    for name, (y, op, noise, method, kw) in table.items():
        if only and name not in only:
            continue
        t = time.perf_counter()
        rec = ni.reconstruct(y, op, method, noise=noise, seed=0, **kw)
        np.savez(folder / f"{name}.npz", mean=np.asarray(rec.mean), **({} if rec.std is None else {"std": rec.std}))
        info = {k: v for k, v in rec.info.items() if isinstance(v, (int, float, str)) and k not in ("wall_seconds", "seconds")}
        summary[name] = {"psnr": float(ni.metrics.psnr(np.asarray(rec.mean), x)), "info": info}
        print(f"{name:16s} {summary[name]['psnr']:.4f} dB  {time.perf_counter() - t:.1f} s", flush=True)
    (folder / "summary.json").write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        compare(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
        record(Path(sys.argv[1]), sys.argv[2].split(",") if len(sys.argv) > 2 else None)
