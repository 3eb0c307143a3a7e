"""Richardson–Lucy on the padded grid: where an iteration's time goes, stage by stage, against the two-FFT floor.

Each stage of ``_BlurGrid.iterate`` (accelerated, the RL offset equal to the noise model's: the ~2000-photon path) is
run alone in the loop's order on the case's padded grid and timed; the floor (two rfftn · OTF · irfftn convolutions
of the same grid, as ``bench_rl_ratio.py``) in the same rotation. Also timed: the deviance's ``log`` of the strided
window view (the loop's previous form; torch does not vectorize transcendental functions of strided views).
Prints the 20th percentile per stage (ms), their sum, and sum / floor.

    PYTHONPATH=src python benchmarks/bench_rl_stages.py CASE [THREADS] [cpu]   # CASE: 0, 1 (2D) or 2 (3D)
"""
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_rl import CASES, make_case

from napari_invimg.methods.classical import _BlurGrid


def main() -> None:
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    clock = time.process_time if "cpu" in sys.argv[3:] else time.perf_counter
    _, _, A, _, y = make_case(list(CASES)[int(sys.argv[1])])
    yc = (torch.from_numpy(np.asarray(y, np.float32)) + 0.02).clamp(min=1e-9)
    g = _BlurGrid(A, yc)
    G, dims, win = g.grid, g.dims, g.window
    scale = float(yc.mean())
    x, x_prev, v = torch.rand(G) * scale, torch.rand(G) * scale, torch.empty(G)
    ratio = g.ratio_grid[win]
    ratio_c, log_buf = torch.empty_like(yc), torch.empty_like(yc)
    steps = torch.empty((2, g.size))
    times: dict[str, list[float]] = {}

    def timed(name, f):
        t = clock()
        r = f()
        times.setdefault(name, []).append(clock() - t)
        return r

    def floor():
        for _ in range(2):
            torch.fft.irfftn(torch.fft.rfftn(x, dim=dims) * g.otf, s=G, dim=dims)

    for it in range(60 if A.ndim == 2 else 8):
        timed("extrapolation lerp", lambda: torch.lerp(x_prev, x, 1.3, out=v))
        timed("its floor (clamp_)", lambda: v.clamp_(min=1e-9))
        S = timed("rfftn 1", lambda: torch.fft.rfftn(v, dim=dims))
        timed("× OTF 1", lambda: S.mul_(g.otf))
        timed("+ c on the zero frequency", lambda: S.view(-1)[:1].add_(0.02 * g.size))
        M = timed("irfftn 1", lambda: torch.fft.irfftn(S, s=G, dim=dims))
        model = M[win]
        timed("model floor (window)", lambda: model.clamp_(min=1e-9))
        timed("ratio y / model", lambda: torch.div(yc, model, out=ratio_c))
        timed("Σ model (window)", lambda: float(model.sum()))
        timed("log, contiguous", lambda: torch.log(ratio_c, out=log_buf))
        timed("dot counts · log", lambda: float(torch.dot(yc.reshape(-1), log_buf.reshape(-1))))
        timed("ratio into the window", lambda: ratio.copy_(ratio_c))
        S2 = timed("rfftn 2", lambda: torch.fft.rfftn(g.ratio_grid, dim=dims))
        timed("× conj OTF 2", lambda: S2.mul_(g.otf_conj))
        xn = timed("irfftn 2", lambda: torch.fft.irfftn(S2, s=G, dim=dims))
        timed("× point", lambda: xn.mul_(v))
        timed("× 1/Aᴴ1", lambda: xn.mul_(g.inv_norm))
        row = steps[it % 2]
        timed("g = x_new − point", lambda: torch.sub(xn, v, out=row.view(G)))
        timed("Biggs–Andrews mv", lambda: torch.mv(steps, row).tolist())
        timed("(not in the loop) log of the strided window", lambda: torch.log(ratio, out=log_buf))
        timed("FLOOR (two convolutions)", floor)
        x, x_prev = xn, x
    skip = len(times["FLOOR (two convolutions)"]) // 6
    p20 = {k: float(np.percentile(t[skip:], 20)) * 1e3 for k, t in times.items()}
    total = sum(t for k, t in p20.items() if not k.startswith(("FLOOR", "(not")))
    print(f"{list(CASES)[int(sys.argv[1])]}: grid {tuple(G)}, {torch.get_num_threads()} thread(s), "
          f"{'CPU' if clock is time.process_time else 'wall'} ms (p20), load {os.getloadavg()[0]:.1f}")
    for k, t in p20.items():
        print(f"  {k:45s} {t:7.3f}")
    print(f"  sum of stages {total:.3f} ms; floor {p20['FLOOR (two convolutions)']:.3f} ms; "
          f"ratio {total / p20['FLOOR (two convolutions)']:.2f}")


if __name__ == "__main__":
    main()
