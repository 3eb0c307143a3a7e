"""Closure-only ``rml`` (several starts as one batch, the least objective kept) against one start and eht-imaging.

Gain-corrupted EHT 2017 observations of M87* (10% station amplitude errors, random station phases per scan) of
the three bundled sky models and of a random family (rings, crescents, doubles, jets with random sizes and
angles, seeded). Prints the aligned NXCORR with the truth, the closure χ² and seconds for each ``starts``, and with
``--ehtim`` (when eht-imaging is importable: the ``bench`` extra) eht-imaging's closure imager on the same data
(``bench_blackhole.ehtim_image``, from our UVFITS file).

    PYTHONPATH=src python benchmarks/bench_rml_starts.py [--random 8] [--starts 1,3] [--npix 64] [--ehtim] [--repeat 3]

(``--starts ''``: rml's default.) Times are CPU seconds (``time.process_time``, one thread) and wall seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import napari_invimg as ni
import napari_invimg.blackhole as bh

FOV = 160.0


def random_family(n: int, npix: int, seed: int = 2026) -> list[tuple[str, np.ndarray]]:
    """``n`` sky models cycling through ring, crescent, double and jet with random sizes and angles."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = ("ring", "crescent", "double", "jet")[i % 4]
        pa = float(rng.uniform(0, 360))
        if kind == "ring":
            d = float(rng.uniform(30, 55))
            img = bh.models.mring(npix, FOV, diameter_uas=d, beta=(complex(rng.uniform(0, 0.4), rng.uniform(-0.2, 0.2)),),
                                  pa_deg=pa, blur_uas=float(rng.uniform(6, 14)))
            label = f"ring d{d:.0f} pa{pa:.0f}"
        elif kind == "crescent":
            outer = float(rng.uniform(36, 56))
            img = bh.models.crescent(npix, FOV, outer_uas=outer, inner_uas=outer * float(rng.uniform(0.5, 0.8)),
                                     shift_uas=float(rng.uniform(2, 8)), pa_deg=pa)
            label = f"crescent d{outer:.0f} pa{pa:.0f}"
        elif kind == "double":
            sep = float(rng.uniform(30, 60))
            img = bh.models.double(npix, FOV, separation_uas=sep, pa_deg=pa, ratio=float(rng.uniform(0.4, 0.8)),
                                   fwhm_uas=(float(rng.uniform(12, 24)), float(rng.uniform(12, 24))))
            label = f"double s{sep:.0f} pa{pa:.0f}"
        else:
            length = float(rng.uniform(35, 60))
            img = bh.models.jet(npix, FOV, pa_deg=pa, length_uas=length, core_share=float(rng.uniform(0.3, 0.7)))
            label = f"jet l{length:.0f} pa{pa:.0f}"
        out.append((label, img))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npix", type=int, default=64)
    parser.add_argument("--random", type=int, default=8, help="models drawn from the random family")
    parser.add_argument("--bundled", default="ring,crescent,double")
    parser.add_argument("--starts", default="1,3", help="rml's starts (empty: its default)")
    parser.add_argument("--first", type=int, default=0, help="skip the first models of the random family")
    parser.add_argument("--ehtim", action="store_true", help="also eht-imaging's closure imager (bench extra)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run rml and eht-imaging this many times each, alternating; print the median CPU s and the "
                             "median of the per-repeat ratios")
    args = parser.parse_args()
    ehtim_image = None
    if args.ehtim:
        sys.path.insert(0, str(Path(__file__).parent))
        import bench_blackhole

        bench_blackhole.NPIX = args.npix
        ehtim_image = bench_blackhole.ehtim_image
        tmp = Path(tempfile.mkdtemp())
    torch.set_num_threads(1)
    models = [(m, bh.models.get(m, args.npix, FOV)) for m in args.bundled.split(",") if m]
    models += random_family(args.random, args.npix)[args.first:]
    print("CPU s: time.process_time() of the call (one thread each; eht-imaging in this process); wall s: perf_counter")
    print(f"{'model':26s} {'method':>10s} {'aligned':>8s} {'χ² cp':>6s} {'χ² lca':>7s} {'CPU s':>7s} {'wall s':>7s}")
    for label, truth in models:
        obs = bh.simulate(truth, FOV, gain_error=0.1, phase_error=True, seed=0)
        C = bh.Closures(obs, args.npix, FOV)
        rows, cpus = [], {}
        for rep in range(args.repeat):
            for starts in args.starts.split(","):
                kw = {"starts": int(starts)} if starts else {}
                t, c = time.perf_counter(), time.process_time()
                rec = ni.reconstruct(C.data, C, "rml", noise=ni.noise.Gaussian(C.sigma), **kw)
                cpu, wall = time.process_time() - c, time.perf_counter() - t
                chi = rec.info["reduced_chi2"]
                name = f"rml s={starts or 'def'}"
                cpus.setdefault(name, []).append(cpu)
                if rep == 0:
                    rows.append((name, bh.nxcorr_aligned(rec.mean, truth)))
                print(f"{label:26s} {name:>10s} {bh.nxcorr_aligned(rec.mean, truth):8.3f} {chi['closure phase']:6.2f} "
                      f"{chi['log closure amplitude']:7.2f} {cpu:7.1f} {wall:7.1f}", flush=True)
            if ehtim_image is not None:
                path = obs.save_uvfits(tmp / "obs.uvfits")
                t, c = time.perf_counter(), time.process_time()
                image = ehtim_image(path, "closures", C.total_flux, iterations=200, rounds=2)
                cpu, wall = time.process_time() - c, time.perf_counter() - t
                cpus.setdefault("ehtim", []).append(cpu)
                score = bh.nxcorr_aligned(image, truth)
                print(f"{label:26s} {'ehtim':>10s} {score:8.3f} {'':6s} {'':7s} {cpu:7.1f} {wall:7.1f}", flush=True)
        if ehtim_image is not None:
            for name, nx in rows:
                ratios = [a / b for a, b in zip(cpus[name], cpus["ehtim"])]
                print(f"{label:26s} {name:>10s} {'≥ ehtim' if nx >= score else '< ehtim':>8s}  aligned {nx:.3f} / "
                      f"{score:.3f}  median CPU s {np.median(cpus[name]):.1f} / {np.median(cpus['ehtim']):.1f}  "
                      f"median ratio {np.median(ratios):.2f} (each: {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)


if __name__ == "__main__":
    main()
