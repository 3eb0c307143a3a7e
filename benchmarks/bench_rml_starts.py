"""Closure-only ``rml`` (several starts as one batch, the least objective kept) against one start and eht-imaging.

Gain-corrupted EHT 2017 observations of M87* (10% station amplitude errors, random station phases per scan) of
the three bundled sky models and of a random family (rings, crescents, doubles, jets with random sizes and
angles, seeded). Prints the aligned NXCORR with the truth, the closure χ² and seconds for each ``starts``, and with
``--ehtim`` (when eht-imaging is importable: the ``bench`` extra) eht-imaging's closure imager on the same data
(``bench_blackhole.ehtim_image``, from our UVFITS file).

    PYTHONPATH=src python benchmarks/bench_rml_starts.py [--random 8] [--starts 1,3] [--npix 64] [--ehtim] [--repeat 3]
        [--draws 5] [--variant 'NAME={"rounds": 4}'] [--records runs.jsonl] [--summarize runs.jsonl ...]

``--draws N``: N noise and gain draws per model (``simulate(seed=0…N−1)``), then per model and method the mean ±
std of the aligned NXCORR, the per-draw win rate against eht-imaging on the same draw and the median CPU ratio.
``--records``: one JSON line per run (processes run in parallel, one per model, append to one file; eht-imaging's
recorded score for a draw is reused unless ``--ehtim-live``); ``--summarize FILES``: the summary of recorded runs.

(``--starts ''``: rml's default.) Times are CPU seconds (``time.process_time``, one thread) and wall seconds.
"""

from __future__ import annotations

import argparse
import json
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


def parse_variants(starts: str, variants: list[str]) -> list[tuple[str, dict]]:
    """rml variants to run: one per ``--starts`` entry, then each ``--variant NAME=JSON`` (rml keyword arguments)."""
    out = [] if starts == "none" else [(f"rml s={s or 'def'}", {"starts": int(s)} if s else {})
                                       for s in starts.split(",")]
    for v in variants:
        name, _, kw = v.partition("=")
        out.append((name, json.loads(kw) if kw else {}))
    return out


def summarize(records: list[dict]) -> None:
    """Per model and method: mean ± std of the aligned NXCORR over the draws, the per-draw win rate against
    eht-imaging (same draw), the median CPU-time ratio (same process, same draw); then the totals per method."""
    by_model: dict[str, dict[str, dict[int, dict]]] = {}
    for r in records:
        by_model.setdefault(r["model"], {}).setdefault(r["method"], {})[r["seed"]] = r
    methods = sorted({r["method"] for r in records if r["method"] != "ehtim"})
    print(f"\n{'model':26s} {'method':>14s} {'draws':>5s} {'aligned mean ± std':>19s} {'min':>6s} {'ehtim mean':>10s} "
          f"{'Δ mean':>7s} {'wins':>6s} {'ratio':>6s}")
    totals: dict[str, dict[str, list]] = {}
    for model, per in by_model.items():
        eht = per.get("ehtim", {})
        for m in methods:
            draws = per.get(m, {})
            if not draws:
                continue
            nx = np.array([d["aligned"] for d in draws.values()])
            common = [s for s in draws if s in eht]
            wins = [draws[s]["aligned"] >= eht[s]["aligned"] for s in common]
            ratios = [draws[s]["cpu"] / eht[s]["cpu"] for s in common if eht[s].get("live", True)]
            e = np.array([eht[s]["aligned"] for s in common]) if common else np.array([np.nan])
            t = totals.setdefault(m, {"d": [], "w": [], "r": [], "nx": [], "mean_win": []})
            t["d"] += [draws[s]["aligned"] - eht[s]["aligned"] for s in common]
            t["w"] += wins
            t["r"] += ratios
            t["nx"] += list(nx)
            if common:
                t["mean_win"].append(np.mean([draws[s]["aligned"] for s in common]) >= e.mean())
            print(f"{model:26s} {m:>14s} {len(nx):5d} {nx.mean():10.3f} ± {nx.std(ddof=1) if len(nx) > 1 else 0:.3f} "
                  f"{nx.min():6.3f} {e.mean():10.3f} {nx[:len(common)].mean() - e.mean() if common else np.nan:+7.3f} "
                  f"{sum(wins):2d}/{len(wins):<3d} {np.median(ratios) if ratios else np.nan:6.2f}")
    print()
    for m, t in totals.items():
        if t["w"]:
            print(f"ALL {m:>14s}: mean aligned {np.mean(t['nx']):.3f}, mean Δ vs ehtim {np.mean(t['d']):+.4f}, "
                  f"per-draw wins {sum(t['w'])}/{len(t['w'])}, models with mean ≥ ehtim {sum(t['mean_win'])}/"
                  f"{len(t['mean_win'])}, CPU ratio median {np.median(t['r']) if t['r'] else np.nan:.2f} "
                  f"max {max(t['r']) if t['r'] else np.nan:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npix", type=int, default=64)
    parser.add_argument("--random", type=int, default=8, help="models drawn from the random family")
    parser.add_argument("--bundled", default="ring,crescent,double")
    parser.add_argument("--starts", default="1,3", help="rml's starts (empty: its default; none: only the --variant runs)")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=JSON: also rml with these keyword arguments (repeatable), e.g. 'r4={\"rounds\": 4}'")
    parser.add_argument("--first", type=int, default=0, help="skip the first models of the random family")
    parser.add_argument("--ehtim", action="store_true", help="also eht-imaging's closure imager (bench extra)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run rml and eht-imaging this many times each, alternating; print the median CPU s and the "
                             "median of the per-repeat ratios")
    parser.add_argument("--draws", type=int, default=1,
                        help="noise and gain draws per model (simulate's seed = --seed0 … --seed0 + N − 1); prints "
                             "mean ± std over the draws and the per-draw win rate against eht-imaging")
    parser.add_argument("--seed0", type=int, default=0, help="the first draw's seed")
    parser.add_argument("--records", type=Path, default=None,
                        help="append one JSON line per run to this file; with --ehtim, eht-imaging's score of a (model, "
                             "npix, seed) already there is reused (marked not live: no time ratio) unless --ehtim-live")
    parser.add_argument("--ehtim-live", action="store_true", help="always run eht-imaging, even if recorded")
    parser.add_argument("--summarize", type=Path, nargs="*", default=None,
                        help="only print the summary of these record files (no runs)")
    args = parser.parse_args()
    if args.summarize is not None:
        records = [json.loads(line) for f in args.summarize for line in f.read_text().splitlines() if line.strip()]
        summarize([r for r in records if r.get("npix", 64) == args.npix])
        return
    ehtim_image = None
    if args.ehtim:
        sys.path.insert(0, str(Path(__file__).parent))
        import bench_blackhole

        bench_blackhole.NPIX = args.npix
        ehtim_image = bench_blackhole.ehtim_image
        tmp = Path(tempfile.mkdtemp())
    recorded: dict[tuple, dict] = {}
    if args.records is not None and args.records.exists():
        for line in args.records.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if r["method"] == "ehtim":
                    recorded[(r["model"], r["npix"], r["seed"])] = r
    variants = parse_variants(args.starts, args.variant)
    torch.set_num_threads(1)
    models = [(m, bh.models.get(m, args.npix, FOV)) for m in args.bundled.split(",") if m]
    models += random_family(args.random, args.npix)[args.first:]
    records: list[dict] = []

    def record(**r) -> None:
        r["npix"] = args.npix
        records.append(r)
        if args.records is not None:
            with open(args.records, "a") as f:
                f.write(json.dumps(r) + "\n")

    print("CPU s: time.process_time() of the call (one thread each; eht-imaging in this process); wall s: perf_counter")
    print(f"{'model':26s} {'seed':>4s} {'method':>14s} {'aligned':>8s} {'χ² cp':>6s} {'χ² lca':>7s} {'CPU s':>7s} "
          f"{'wall s':>7s}")
    for label, truth in models:
        for seed in range(args.seed0, args.seed0 + args.draws):
            obs = bh.simulate(truth, FOV, gain_error=0.1, phase_error=True, seed=seed)
            C = bh.Closures(obs, args.npix, FOV)
            rows, cpus = [], {}
            for rep in range(args.repeat):
                for name, kw in variants:
                    t, c = time.perf_counter(), time.process_time()
                    rec = ni.reconstruct(C.data, C, "rml", noise=ni.noise.Gaussian(C.sigma), **kw)
                    cpu, wall = time.process_time() - c, time.perf_counter() - t
                    chi = rec.info["reduced_chi2"]
                    cpus.setdefault(name, []).append(cpu)
                    score = bh.nxcorr_aligned(rec.mean, truth)
                    if rep == 0:
                        rows.append((name, score))
                    print(f"{label:26s} {seed:4d} {name:>14s} {score:8.3f} {chi['closure phase']:6.2f} "
                          f"{chi['log closure amplitude']:7.2f} {cpu:7.1f} {wall:7.1f}", flush=True)
                if ehtim_image is not None:
                    key = (label, args.npix, seed)
                    if key in recorded and not args.ehtim_live:
                        cpus.setdefault("ehtim", []).append(recorded[key]["cpu"])
                        eht_score, live = recorded[key]["aligned"], False
                    else:
                        path = obs.save_uvfits(tmp / "obs.uvfits")
                        t, c = time.perf_counter(), time.process_time()
                        image = ehtim_image(path, "closures", C.total_flux, iterations=200, rounds=2)
                        cpu, wall = time.process_time() - c, time.perf_counter() - t
                        cpus.setdefault("ehtim", []).append(cpu)
                        eht_score, live = bh.nxcorr_aligned(image, truth), True
                        print(f"{label:26s} {seed:4d} {'ehtim':>14s} {eht_score:8.3f} {'':6s} {'':7s} {cpu:7.1f} "
                              f"{wall:7.1f}", flush=True)
            if ehtim_image is not None:
                record(model=label, seed=seed, method="ehtim", aligned=float(eht_score),
                       cpu=float(np.median(cpus["ehtim"])), live=live)
            for name, nx in rows:
                record(model=label, seed=seed, method=name, aligned=float(nx), cpu=float(np.median(cpus[name])))
                if ehtim_image is not None:
                    ratios = [a / b for a, b in zip(cpus[name], cpus["ehtim"])]
                    print(f"{label:26s} {seed:4d} {name:>14s} {'≥ ehtim' if nx >= eht_score else '< ehtim':>8s}  "
                          f"aligned {nx:.3f} / {eht_score:.3f}  median CPU s {np.median(cpus[name]):.1f} / "
                          f"{np.median(cpus['ehtim']):.1f}  median ratio {np.median(ratios):.2f} "
                          f"(each: {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
    if args.draws > 1 or len(models) > 1:
        summarize(records)


if __name__ == "__main__":
    main()
