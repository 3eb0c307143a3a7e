"""MRI benchmark: undersampled multi-coil and single-coil reconstructions, coil maps, radial NUFFT.

Prints tables of PSNR / SSIM (magnitude, against the truth) and seconds for our methods and, where
installed, sigpy (``SenseRecon``, ``L1WaveletRecon``, ``TotalVariationRecon`` at their best λ of a
sweep) and BART (``pics`` l1-wavelet and TV at the best λ of a sweep; ``ecalib``).

    PYTHONPATH=src python benchmarks/bench_mri.py            # 256², both phantoms, 8 and 1 coils, 4× and 8×
    PYTHONPATH=src python benchmarks/bench_mri.py --quick    # a small run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np
import torch

import napari_invimg as ni
from napari_invimg import mri

KAPPAS = (0.125, 0.25, 0.5, 1.0)  # λ = κ σ sweeps for sigpy (same objective scaling as ours)
BART_LAMBDAS = (0.0003, 0.001, 0.003, 0.01)


def quality(est, x) -> tuple[float, float]:
    a, b = np.abs(est), np.abs(x)
    return ni.metrics.psnr(a, b), ni.metrics.ssim(a, b)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


# -- sigpy ---------------------------------------------------------------------------------------------
def sigpy_available() -> bool:
    try:
        import sigpy.mri.app  # noqa: F401
    except ImportError:
        return False
    return True


def sigpy_runs(sc, x, sigma: float, tv_iterations: int) -> dict[str, tuple]:
    import sigpy.mri.app as app

    y = sc.kspace if sc.coil_maps is not None else sc.kspace[None]
    mps = sc.coil_maps if sc.coil_maps is not None else np.ones((1,) + x.shape, np.complex64)
    w = sc.mask.astype(np.float32)
    out = {}
    img, dt = timed(lambda: app.SenseRecon(y, mps, weights=w, max_iter=100, show_pbar=False).run())
    out["sigpy SenseRecon (100 it)"] = (*quality(img, x), dt, "λ=0")
    for name, cls, its in (("L1WaveletRecon", app.L1WaveletRecon, 100), ("TotalVariationRecon", app.TotalVariationRecon, 100)):
        best = None
        for k in KAPPAS:
            img, dt = timed(lambda: cls(y, mps, k * sigma, weights=w, max_iter=its, show_pbar=False).run())
            q = quality(img, x)
            if best is None or q[0] > best[0]:
                best = (*q, dt, f"best λ={k:g}σ")
        out[f"sigpy {name} ({its} it)"] = best
        if name == "TotalVariationRecon" and tv_iterations > its:
            k = float(best[3].split("=")[1].rstrip("σ"))
            img, dt = timed(lambda: cls(y, mps, k * sigma, weights=w, max_iter=tv_iterations, show_pbar=False).run())
            out[f"sigpy {name} ({tv_iterations} it)"] = (*quality(img, x), dt, f"λ={k:g}σ")
    return out


# -- BART ----------------------------------------------------------------------------------------------
def _writecfl(name: str, a: np.ndarray) -> None:
    with open(name + ".hdr", "w") as f:
        f.write("# Dimensions\n" + " ".join(str(d) for d in a.shape) + "\n")
    np.asarray(a, np.complex64).T.tofile(name + ".cfl")  # BART: column-major


def _readcfl(name: str) -> np.ndarray:
    with open(name + ".hdr") as f:
        dims = [int(d) for d in f.read().split("\n")[1].split()]
    n = int(np.prod(dims))
    return np.fromfile(name + ".cfl", np.complex64, n).reshape(dims[::-1]).T


def bart_runs(sc, x, maps_est: np.ndarray | None = None) -> dict[str, tuple]:
    if shutil.which("bart") is None:
        return {}
    out = {}
    with tempfile.TemporaryDirectory() as d:
        k = sc.kspace if sc.coil_maps is not None else sc.kspace[None]
        mps = sc.coil_maps if sc.coil_maps is not None else np.ones((1,) + x.shape, np.complex64)
        _writecfl(f"{d}/k", k.transpose(1, 2, 0)[:, :, None, :])
        _writecfl(f"{d}/s", mps.transpose(1, 2, 0)[:, :, None, :])
        for label, reg in (("l1-wavelet", "-l1 -r {lam}"), ("TV", "-R T:3:0:{lam}")):
            best = None
            for lam in BART_LAMBDAS:
                cmd = f"bart pics -S -i 100 {reg.format(lam=lam)} {d}/k {d}/s {d}/o"
                _, dt = timed(lambda: subprocess.run(cmd.split(), check=True, capture_output=True))
                img = _readcfl(f"{d}/o")[:, :, 0] if _readcfl(f"{d}/o").ndim == 3 else _readcfl(f"{d}/o")
                img = img.reshape(x.shape)
                q = quality(img, x)
                if best is None or q[0] > best[0]:
                    best = (*q, dt, f"best λ={lam:g}")
            out[f"BART pics {label}"] = best
    return out


def bart_ecalib(kspace: np.ndarray) -> tuple[np.ndarray, float] | None:
    if shutil.which("bart") is None:
        return None
    with tempfile.TemporaryDirectory() as d:
        _writecfl(f"{d}/k", kspace.transpose(1, 2, 0)[:, :, None, :])
        _, dt = timed(lambda: subprocess.run(f"bart ecalib -m1 {d}/k {d}/s".split(), check=True, capture_output=True))
        s = _readcfl(f"{d}/s")
        return s.reshape(s.shape[0], s.shape[1], -1).transpose(2, 0, 1), dt


# -- cases ---------------------------------------------------------------------------------------------
def phantoms(n: int, quick: bool):
    out = {"brain": mri.brain((n, n))}
    if not quick:
        out["shepp-logan"] = mri.shepp_logan((n, n)).astype(np.complex64)
    return out


#: our methods: (row label, registry name, parameters); the L1-wavelet is the generic ``wavelet`` with Haar
#: filters (the best of haar/db2/db4 on these phantoms; db4 is the microscopy default)
OURS = (("adjoint", "adjoint", {}), ("cg_sense", "cg_sense", {}), ("wavelet (haar)", "wavelet", {"wavelet": "haar"}),
        ("tv", "tv", {}), ("pnp_admm", "pnp_admm", {}), ("dip", "dip", {}))


def our_methods(A, skip: tuple[str, ...] = ()) -> list[tuple[str, str, dict]]:
    names = ni.methods(A)
    return [r for r in OURS if r[1] in names and r[1] not in skip]


def std_error_rows(sc, x, case: str, method: str = "bayes_dip", **kw) -> dict[str, tuple]:
    """A std-returning method: PSNR and the correlation of its std map with the magnitude error."""
    rec, dt = timed(lambda: ni.reconstruct(sc.kspace, sc.operator, method, noise=ni.noise.Gaussian(sc.sigma), seed=0, **kw))
    err = np.abs(np.abs(rec.mean) - np.abs(x)).ravel()
    corr = float(np.corrcoef(np.asarray(rec.std).ravel(), err)[0, 1])
    return {method: (*quality(rec.mean, x), dt, f"std–error correlation {corr:.3f}; it={rec.info.get('iterations')}")}


def reconstruction_table(n: int, quick: bool, use_sigpy: bool, use_bart: bool, tv_iterations: int,
                         log=None, cases: list[str] | None = None, skip: tuple[str, ...] = (),
                         bayes: str | None = None) -> list[dict]:
    rows = []
    masks = [("equispaced", 4), ("equispaced", 8), ("poisson", 4), ("poisson", 8)] if not quick else [("equispaced", 4)]
    coils = (8, 1) if not quick else (8,)
    for nc in coils:
        for pname, x in phantoms(n, quick).items():
            for kind, R in masks:
                case = f"{pname} {nc}c {kind} {R}×"
                if cases and f"{pname}:{nc}:{kind}:{R}" not in cases:
                    continue
                sc = mri.simulate_kspace(x, nc, kind=kind, acceleration=R, snr_db=30.0, seed=0)
                noise = ni.noise.Gaussian(sc.sigma)

                def record(results: dict[str, tuple]) -> None:  # printed and logged as they come
                    for k, (p, s, t, note) in results.items():
                        rows.append({"case": case, "method": k, "psnr": p, "ssim": s, "seconds": t, "note": note})
                        if log is not None:
                            log.write(json.dumps(rows[-1]) + "\n")
                            log.flush()
                        print(f"{case:32s} {k:36s} {p:6.2f} dB  SSIM {s:.3f}  {t:7.2f} s  {note}", flush=True)

                for label, meth, kw in our_methods(sc.operator, skip):
                    rec, dt = timed(lambda: ni.reconstruct(sc.kspace, sc.operator, meth, noise=noise, seed=0, **kw))
                    record({label: (*quality(rec.mean, x), dt, f"it={rec.info.get('iterations')}")})
                    if meth == "wavelet" and nc > 1:  # no noise given: estimated from the k-space periphery
                        rec_auto, dt2 = timed(lambda: ni.reconstruct(sc.kspace, sc.operator, meth, seed=0, **kw))
                        sigma_hat = rec_auto.info["noise"]["sigma"]
                        record({label + " (σ estimated)": (*quality(rec_auto.mean, x), dt2,
                                                           f"σ̂/σ={sigma_hat / sc.sigma:.2f}")})
                if bayes:
                    record(std_error_rows(sc, x, case, bayes))
                if use_sigpy:
                    record(sigpy_runs(sc, x, sc.sigma, tv_iterations if nc > 1 else 0))
                if use_bart and nc > 1:
                    record(bart_runs(sc, x))
    return rows


def coil_map_table(n: int, quick: bool) -> list[dict]:
    rows = []
    for pname, x in phantoms(n, quick).items():
        sc = mri.simulate_kspace(x, 8, kind="equispaced", acceleration=min(8, n / 10), center_fraction=10 / n, seed=0)
        w = np.abs(x)
        noise = ni.noise.Gaussian(sc.sigma)
        est = {}
        mps, dt = timed(lambda: mri.espirit(sc.kspace))
        est["ours (espirit)"] = (mps, dt)
        if sigpy_available():
            import sigpy.mri.app as app

            mps_s, dt = timed(lambda: app.EspiritCalib(sc.kspace, calib_width=10, show_pbar=False).run())
            est["sigpy EspiritCalib (calib 10)"] = (mps_s, dt)
        b = bart_ecalib(sc.kspace)
        if b is not None:
            est["BART ecalib"] = b
        rec_true = ni.reconstruct(sc.kspace, sc.operator, "wavelet", noise=noise, wavelet="haar")
        p_true = quality(rec_true.mean, x)[0]
        for name, (m, dt) in est.items():
            corr = mri.map_correlation(m, sc.coil_maps, w)
            A = mri.CartesianMRI(sc.mask, coil_maps=m)
            rec = ni.reconstruct(sc.kspace, A, "wavelet", noise=noise, wavelet="haar")
            p = quality(rec.mean, x)[0]
            rows.append({"case": f"{pname} 8c 8× 10 lines", "maps": name, "correlation": corr, "seconds": dt,
                         "psnr_wavelet": p, "psnr_true_maps": p_true})
            print(f"{pname:12s} {name:30s} corr {corr:.5f}  {dt:6.3f} s   wavelet (haar) {p:.2f} dB (true maps {p_true:.2f})",
                  flush=True)
    return rows


def direct_nudft(x: np.ndarray, traj: np.ndarray) -> np.ndarray:
    ny, nx = x.shape
    ry, rx = np.meshgrid(np.arange(ny) - ny // 2, np.arange(nx) - nx // 2, indexing="ij")
    E = np.exp(-1j * (traj[:, :1] * ry.reshape(1, -1) + traj[:, 1:] * rx.reshape(1, -1))) / np.sqrt(x.size)
    return E @ x.reshape(-1)


def radial_table(n: int, quick: bool) -> list[dict]:
    rows = []
    spokes, read = (64, 2 * n) if not quick else (32, 2 * n)
    x = mri.brain((n, n))
    maps = mri.birdcage(8, (n, n))
    traj = mri.radial_trajectory(spokes, read)
    A = mri.NonCartesianMRI(traj, (n, n), coil_maps=maps)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        A.apply(xt)
        ts = []
        for _ in range(5):
            t = time.perf_counter()
            y = A.apply(xt)
            A.apply_adjoint(y)
            ts.append(time.perf_counter() - t)
    # accuracy against a direct NUDFT on a small case
    small = mri.brain((32, 32))
    tr_small = mri.radial_trajectory(16, 64)
    As = mri.NonCartesianMRI(tr_small, (32, 32))
    ref = direct_nudft(small.astype(np.complex128), tr_small)
    err = float(np.linalg.norm(As.forward(small) - ref) / np.linalg.norm(ref))
    rows.append({"what": f"radial 8 coils {spokes}×{read} on {n}² forward+adjoint (median of 5)",
                 "seconds": float(np.median(ts)), "relative_error_small_case": err})
    print(f"radial 8c {spokes} spokes × {read}: forward+adjoint {1e3 * np.median(ts):.1f} ms; "
          f"error vs direct NUDFT (32², 16×64) {err:.1e}", flush=True)
    if sigpy_available():
        import sigpy

        coord = traj[:, ::-1] * 0 + traj / (2 * np.pi) * n  # sigpy: coordinates in pixels, (ky, kx) order
        xc = (maps * x).astype(np.complex64)
        sigpy.nufft(xc, coord)
        t = time.perf_counter()
        ys = sigpy.nufft(xc, coord)
        sigpy.nufft_adjoint(ys, coord, oshape=xc.shape)
        dt = time.perf_counter() - t
        small_s = sigpy.nufft(small.astype(np.complex64), tr_small / (2 * np.pi) * 32) / np.sqrt(1.0)
        err_s = float(np.linalg.norm(small_s - ref) / np.linalg.norm(ref))
        print(f"  sigpy nufft forward+adjoint {1e3 * dt:.1f} ms; error {err_s:.1e}", flush=True)
        rows.append({"what": "sigpy nufft forward+adjoint", "seconds": dt, "relative_error_small_case": err_s})
    # reconstructions at 30 dB SNR, two definitions of the noise level σ (per sample, real and imaginary part):
    # "grid": as the Cartesian cases of a fully sampled scan, 30 dB over the fully sampled Cartesian k-space
    # of the coil images (the receiver noise of the same scanner); "samples": 30 dB over the radial samples,
    # whose rms is 7× larger (the oversampled center), hence 17 dB more noise for the same object
    z = A.forward(x)
    grid = mri.fft_centered(torch.from_numpy(maps * x), 2).numpy()
    sigmas = {"grid": mri.noise_sigma_for_snr(grid, np.ones(grid.shape, bool), 30.0),
              "samples": mri.noise_sigma_for_snr(z, np.ones(z.shape, bool), 30.0)}
    for definition, sigma in sigmas.items():
        rng = np.random.default_rng(0)
        y = (z + sigma * (rng.standard_normal(z.shape) + 1j * rng.standard_normal(z.shape))).astype(np.complex64)
        for label, meth, kw in (("adjoint", "adjoint", {}), ("cg_sense", "cg_sense", {}),
                                ("wavelet (haar)", "wavelet", {"wavelet": "haar"}), ("tv", "tv", {})):
            rec, dt = timed(lambda: ni.reconstruct(y, A, meth, noise=ni.noise.Gaussian(sigma), **kw))
            p, s = quality(rec.mean, x)
            rows.append({"what": f"radial reconstruction {label}, σ by 30 dB over the {definition}", "psnr": p,
                         "ssim": s, "seconds": dt, "iterations": rec.info.get("iterations")})
            print(f"  radial σ({definition}) {label:16s} {p:6.2f} dB  SSIM {s:.3f}  {dt:6.2f} s  "
                  f"it={rec.info.get('iterations')}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small run: 96², brain, 8 coils, 4× equispaced")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--no-sigpy", action="store_true")
    ap.add_argument("--no-bart", action="store_true")
    ap.add_argument("--tv-iterations", type=int, default=1000, help="sigpy TV at its best λ with this many iterations")
    ap.add_argument("--only", choices=("recon", "maps", "radial"), default=None)
    ap.add_argument("--json", default=None, help="write all rows to this file (reconstruction rows also as they come)")
    ap.add_argument("--cases", default=None,
                    help="comma-separated phantom:coils:mask:R, e.g. brain:8:poisson:8,shepp-logan:1:equispaced:4")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    ap.add_argument("--skip", default="", help="comma-separated registry names of our methods to leave out, e.g. dip")
    ap.add_argument("--bayes", default=None, help="also run this std-returning method (e.g. bayes_dip) and report "
                                                 "the correlation of its std with the error")
    args = ap.parse_args()
    n = args.size or (96 if args.quick else 256)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    print(f"# bench_mri: {n}², 30 dB SNR, torch threads {torch.get_num_threads()}, cpu count {os.cpu_count()}")
    out = {}
    if args.only in (None, "maps"):
        print("\n## coil maps from 10 center lines (8×, 8 coils)")
        out["maps"] = coil_map_table(n, args.quick)
    if args.only in (None, "radial"):
        print("\n## radial")
        out["radial"] = radial_table(n, args.quick)
    if args.only in (None, "recon"):
        print("\n## Cartesian reconstructions")
        out["recon"] = reconstruction_table(n, args.quick, sigpy_available() and not args.no_sigpy,
                                            shutil.which("bart") is not None and not args.no_bart,
                                            0 if args.quick else args.tv_iterations,
                                            open(args.json + "l", "w") if args.json else None,
                                            args.cases.split(",") if args.cases else None,
                                            tuple(m for m in args.skip.split(",") if m), args.bayes)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=float)


if __name__ == "__main__":
    main()
