"""Richardson–Lucy's loop before and after a change, in one process: ``_BlurGrid.iterate`` of a git revision against
the working tree's, alternated round by round under the same load.

``iter`` mode times iterations 3–16 of 16-iteration runs of both loops with the two-FFT floor on RL's grid (as
``bench_rl_same_floor.py``); ``call`` mode times whole ``ni.reconstruct`` calls of as many iterations as reach
scikit-image's best (case 0: 5, 1: 9, 2: 5; ``bench_rl_time_to_best.py``) with scikit-image's own call
(``richardson_lucy``, its best iteration 8 / 33 / 11) in the same rotation, and counts each call's minor page faults.
The 20th percentile of each; ``max|Δ|`` is the largest difference between the two loops' last results (0: bitwise
equal). Only the loop is swapped (the revision's ``iterate`` runs with the working tree's helpers), so a change
elsewhere in the module is not compared.

    PYTHONPATH=src python benchmarks/bench_rl_ab.py THREADS CASE ROUNDS iter|call [cpu] [base=REV]

``base`` defaults to ``HEAD``; ``cpu`` times process CPU seconds (meaningful at one thread on a loaded machine).
"""
from __future__ import annotations

import ast
import functools
import os
import resource
import subprocess
import sys
import textwrap
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import napari_invimg as ni  # noqa: E402
from bench_rl import CASES, IterationClock, floor_timer, make_case  # noqa: E402
from napari_invimg.methods import classical  # noqa: E402
from napari_invimg.methods.classical import RichardsonLucy, _rl_grid  # noqa: E402

#: (scikit-image's best iteration, the iteration at which ours reaches it) per case (bench_rl_time_to_best.py)
CALL_ITERATIONS = {0: (8, 5), 1: (33, 9), 2: (11, 5)}


def revision_iterate(rev: str):
    """``_BlurGrid.iterate`` as written at git revision ``rev``, bound to this module's helpers."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    text = subprocess.run(["git", "-C", root, "show", f"{rev}:src/napari_invimg/methods/classical.py"],
                          capture_output=True, text=True, check=True).stdout
    cls = next(n for n in ast.parse(text).body if isinstance(n, ast.ClassDef) and n.name == "_BlurGrid")
    fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "iterate")
    namespace: dict = {}
    exec(textwrap.dedent(ast.get_source_segment(text, fn)), dict(vars(classical), partial=functools.partial),
         namespace)
    return namespace["iterate"]


def time_loops(loops: dict, yt: torch.Tensor, A, noise, clock, times: dict, results: dict, iterations: int = 16) -> None:
    """One ``iterations``-step RL run per loop of ``loops`` (each swapped in as ``_BlurGrid.iterate``): its
    per-iteration times after the first two appended to ``times[key]``, its result kept in ``results[key]``. The
    caller restores ``_BlurGrid.iterate``."""
    for key, loop in loops.items():
        classical._BlurGrid.iterate = loop
        ctx = IterationClock(clock)
        results[key] = RichardsonLucy().run(yt, A, noise, ctx, iterations, True, "none", 1.0, None, None).mean
        times.setdefault(key, []).extend(np.diff(ctx.ts)[2:])


def main() -> None:
    args = sys.argv[1:]
    torch.set_num_threads(int(args[0]))
    case, rounds, mode = int(args[1]), int(args[2]), args[3]
    clock = time.process_time if "cpu" in args[4:] else time.perf_counter
    rev = next((a.split("=", 1)[1] for a in args[4:] if a.startswith("base=")), "HEAD")
    loops = {"base": revision_iterate(rev), "new": classical._BlurGrid.iterate}
    _, psf, A, noise, y = make_case(list(CASES)[case])
    times: dict[str, list[float]] = {}
    faults: dict[str, int] = {}
    results = {}

    def minflt() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    try:
        if mode == "iter":
            ref = "floor"
            yt = torch.from_numpy(np.asarray(y, np.float32))
            floor = floor_timer(_rl_grid(A), psf, clock)
            for _ in range(rounds):
                times.setdefault("floor", []).extend(floor(15))
                time_loops(loops, yt, A, noise, clock, times, results)
        else:
            from skimage.restoration import richardson_lucy

            ref = "skimage"
            k_sk, k_ours = CALL_ITERATIONS[case]
            data = np.clip(y, 0, None)
            for _ in range(rounds):
                for key in (ref, *loops):
                    start_faults, start = minflt(), clock()
                    if key == ref:
                        richardson_lucy(data, psf, num_iter=k_sk, clip=False)
                    else:
                        classical._BlurGrid.iterate = loops[key]
                        results[key] = ni.reconstruct(y, A, "richardson_lucy", noise=noise, iterations=k_ours,
                                                      stop="none").mean
                    times.setdefault(key, []).append(clock() - start)
                    faults[key] = faults.get(key, 0) + minflt() - start_faults
    finally:
        classical._BlurGrid.iterate = loops["new"]
    p20 = {k: float(np.percentile(v, 20)) for k, v in times.items()}
    print(f"{list(CASES)[case]}, {mode}: {torch.get_num_threads()} thread(s), "
          f"{'CPU' if clock is time.process_time else 'wall'} ms, 20th percentile of {len(times[ref])}, base {rev}, "
          f"load {os.getloadavg()[0]:.1f}; {ref} {p20[ref] * 1e3:.3f} ms"
          + (f", {faults[ref] / rounds:.0f} faults a call" if faults else ""))
    for key in loops:
        ratio = p20[key] / p20[ref] if mode == "iter" else p20[ref] / p20[key]
        delta = float(np.abs(np.asarray(results[key]) - np.asarray(results["base"])).max())
        print(f"  {key}: {p20[key] * 1e3:.3f} ms, {'/ floor' if mode == 'iter' else 'scikit-image /'} {ratio:.3f}, "
              f"base / {key} {p20['base'] / p20[key]:.3f}"
              + (f", {faults[key] / rounds:.0f} faults a call" if faults else "") + f", max|Δ| {delta:.3g}")


if __name__ == "__main__":
    main()
