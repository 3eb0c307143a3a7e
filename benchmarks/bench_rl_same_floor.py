"""Richardson–Lucy per iteration, both 2D cases of ``bench_rl.py`` and their common FFT floor timed in one process.

The ~100- and ~2000-photon cases run the same code path (Poisson–Gaussian noise, the RL offset equal to the noise
model's shift) on the same 560² grid, and their floor (two rfftn · OTF · irfftn convolutions of that grid) is one
computation. ``bench_rl_ratio.py`` times each case in its own process, where the floor's 20th percentile moved by up to
1.33× between processes on the quiet machine (3.90 against 5.17 ms at 17:58 UTC, benchmarks/RESULTS.md §1): that, not
the RL loop, made the two cases' ratios 1.53 and 1.29. Here the floor and both RLs are timed alternately in one
rotation (``ROUNDS`` rounds of 15 iterations; the 20th percentile of each), so the two ratios share one floor.

    PYTHONPATH=src python benchmarks/bench_rl_same_floor.py [THREADS] [cpu] [ROUNDS]
"""
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_rl import CASES, floor_timer, make_case, rl_timer  # noqa: E402

from napari_invimg.methods.classical import _rl_grid  # noqa: E402


def main() -> None:
    args = sys.argv[1:]
    torch.set_num_threads(int(args[0]) if args else 2)
    clock = time.process_time if "cpu" in args[1:] else time.perf_counter
    rounds = next((int(a) for a in args[1:] if a.isdigit()), 6)
    cases = {}
    for name in list(CASES)[:2]:
        _, psf, A, noise, y = make_case(name)
        cases[name] = (A, noise, torch.from_numpy(np.asarray(y, np.float32)))
    A = cases[list(CASES)[0]][0]
    grid = _rl_grid(A)  # both cases share the PSF (``psf`` of the loop)
    timers = {"floor": floor_timer(grid, psf, clock), **{name: rl_timer(y, A, noise, clock)
                                                         for name, (A, noise, y) in cases.items()}}
    times = {k: [] for k in timers}
    for _ in range(rounds):
        for k, f in timers.items():
            times[k] += f(15)
    p20 = {k: float(np.percentile(v, 20)) for k, v in times.items()}
    print(f"RL per iteration, {torch.get_num_threads()} thread(s), {'CPU' if clock is time.process_time else 'wall'} "
          f"s, 20th percentile of {len(times['floor'])}, load {os.getloadavg()[0]:.1f}; floor = two convolutions on "
          f"RL's grid {grid}: {p20['floor'] * 1e3:.3f} ms")
    for name in cases:
        print(f"  {name}: {p20[name] * 1e3:.3f} ms, / floor {p20[name] / p20['floor']:.2f}")
    a, b = list(cases)
    print(f"  {a.split(', ')[-1]} / {b.split(', ')[-1]}: {p20[a] / p20[b]:.3f}")


if __name__ == "__main__":
    main()
