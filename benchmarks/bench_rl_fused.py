"""Richardson–Lucy's elementwise passes fused by numexpr against today's torch passes, in one process.

numexpr evaluates a whole expression block by block (cache-sized chunks), so several of the padded 2D loop's passes
could become one pass over numpy views of the torch buffers (zero-copy). This script measures whether that pays, in two
parts, both alternated round by round in one process:

(a) each fused expression against the torch passes it would replace, on the 560² grid of the 512² / 31² case (the
    arrays as in ``_BlurGrid.iterate``: the model a strided 512² window of the grid, the ratio contiguous):
    the model's floor and the ratio ``y / max(Ax + c, floor)`` (torch: ``clamp_`` + ``div``), the update
    ``x · Aᵀr · (1/Aᵀ1)`` (torch: two ``mul_``), the extrapolation ``max(x + α (x − x_prev), tiny)`` (torch: ``lerp_`` +
    ``clamp_``), the deviance's ``Σ a log r`` (torch: ``log`` + ``dot``), and single operations for reference (on the
    grid, on 64 K values that stay in L2, on 16 values: the per-call cost);
(b) the working tree's ``_BlurGrid.iterate`` against a copy whose three fusable stages (ratio, update,
    extrapolation) are numexpr expressions, with the two-FFT floor on RL's grid, per iteration (iterations 3–16 of
    16-iteration runs, as ``bench_rl_ab.py iter``), and the largest difference between the two loops' results.

numexpr's threads are set to torch's (``numexpr.set_num_threads(torch.get_num_threads())``); scalars are passed as
float32 and floors written as ``where(v > f, v, f)`` so that the expressions stay float32 (numexpr's ``maximum`` has
only a float64 kernel: with it the expressions upcast and took 14× the torch passes, against 5–9× with ``where``).
Needs numexpr (``pip install -e ".[bench]"``); it is not a dependency of the package: it did not pay
(benchmarks/RESULTS.md §1, helper ``rl8``).

    PYTHONPATH=src python benchmarks/bench_rl_fused.py THREADS CASE ROUNDS [cpu]
"""
from __future__ import annotations

import os
import sys
import textwrap
import time

import numexpr as ne
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_rl import CASES, floor_timer, make_case  # noqa: E402
from bench_rl_ab import time_loops  # noqa: E402
from napari_invimg.methods import classical  # noqa: E402
from napari_invimg.methods.classical import _rl_grid  # noqa: E402

#: (today's line, its numexpr replacement) in ``_BlurGrid.iterate``; each must occur exactly once
PATCHES = (
    # the model's floor and the ratio in one pass (the model's sum then reads the unfloored model: the floor is 1e-12
    # of the data's scale and the model ≥ the offset c > 0 here, so the two sums agree)
    ("model = self._conv(point, self.otf, c)[window].clamp_(min=floor)",
     "model = self._conv(point, self.otf, c)[window]"),
    ("torch.div(yc, model, out=ratio_log if shared_log else ratio)",
     "torch.div(yc, model, out=ratio_log if shared_log else ratio) if not torch.is_tensor(model) else "
     "_ne.evaluate('a / where(m > f, m, f)', "
     "local_dict={'a': yc.numpy(), 'm': model.numpy(), 'f': _np.float32(floor)}, "
     "out=(ratio_log if shared_log else ratio).numpy())"),
    # the update x · Aᵀr · (1/Aᵀ1) in one pass (outside the over-relaxed steps)
    ("x_new = _relaxed(x_new, k, relax).mul_(point)",
     "x_new = _relaxed(x_new, k, relax).mul_(point) if (relax[0] != 1.0 and k <= relax[1]) or self.inv_norm is None "
     "else x_new"),
    ("x_new.mul_(self.inv_norm)",
     "(x_new.mul_(self.inv_norm) if relax[0] != 1.0 and k <= relax[1] else _ne.evaluate("
     "'x * w * p', local_dict={'x': x_new.numpy(), 'w': self.inv_norm.numpy(), 'p': point.numpy()}, "
     "out=x_new.numpy()))"),
    # the extrapolation and its floor in one pass, written over x_{k−1} as today (torch's lerp for a weight ≥ 0.5 is
    # end − (end − start)(1 − weight), i.e. x + α (x − x_prev))
    ("point = x_prev.lerp_(x, 1.0 + alpha).clamp_(min=tiny)",
     "point = torch.from_numpy(_ne.evaluate('where(x + b * (x - p) > t, x + b * (x - p), t)', "
     "local_dict={'x': x.numpy(), "
     "'p': x_prev.numpy(), 'b': _np.float32(alpha), 't': _np.float32(tiny)}, out=x_prev.numpy()))"),
)


def fused_iterate():
    """The working tree's ``_BlurGrid.iterate`` with ``PATCHES`` applied (CPU tensors; the padded grid's
    normalization present)."""
    import inspect

    text = textwrap.dedent(inspect.getsource(classical._BlurGrid.iterate))
    for old, new in PATCHES:
        if text.count(old) != 1:
            raise SystemExit(f"the loop changed: {old!r} occurs {text.count(old)} times")
        text = text.replace(old, new)
    namespace: dict = {}
    exec(text, dict(vars(classical), _ne=ne, _np=np), namespace)
    loop = namespace["iterate"]

    def iterate(self, *args, **kwargs):
        ne.set_num_threads(torch.get_num_threads())  # numexpr's pool follows the caller's torch threads
        return loop(self, *args, **kwargs)
    return iterate


def pass_timers(grid: tuple[int, int], n: int):
    """(name, torch passes, numexpr expression) on the loop's arrays: the grid, its central ``n × n`` window."""
    g = torch.rand(grid) + 0.5
    lo = [(s - n) // 2 for s in grid]
    window = tuple(slice(a, a + n) for a in lo)
    model = g[window]
    yc, ratio, logb = torch.rand(n, n) + 0.5, torch.empty(n, n), torch.empty(n, n)
    x, x_prev, point, inv_norm = (torch.rand(grid) + 0.1 for _ in range(4))
    out, work = torch.empty(grid), torch.empty(grid)
    f32 = np.float32
    floor, alpha, tiny = f32(1e-6), f32(0.3), f32(1e-6)
    yn, mn, rn, ln = yc.numpy(), model.numpy(), ratio.numpy(), logb.numpy()
    xn, pn, wn, outn, workn, xpn = x.numpy(), point.numpy(), inv_norm.numpy(), out.numpy(), work.numpy(), x_prev.numpy()
    yf = yc.reshape(-1)
    return [
        ("floor + ratio (window)", lambda: torch.div(yc, model.clamp_(min=float(floor)), out=ratio),
         lambda: ne.evaluate("a / where(m > f, m, f)", local_dict={"a": yn, "m": mn, "f": floor}, out=rn)),
        ("update x·r·w", lambda: torch.mul(x, inv_norm, out=out).mul_(point),
         lambda: ne.evaluate("x * w * p", local_dict={"x": xn, "w": wn, "p": pn}, out=outn)),
        ("extrapolation + floor", lambda: torch.lerp(x_prev, x, 1 + float(alpha), out=work).clamp_(min=float(tiny)),
         lambda: ne.evaluate("where(x + b * (x - p) > t, x + b * (x - p), t)",
                             local_dict={"x": xn, "p": xpn, "b": alpha, "t": tiny}, out=workn)),
        ("deviance Σ a log r", lambda: float(torch.dot(yf, torch.log(ratio, out=logb).reshape(-1))),
         lambda: float(ne.evaluate("sum(a * log(r))", local_dict={"a": yn, "r": rn}))),
        ("one product (grid)", lambda: torch.mul(x, point, out=out),
         lambda: ne.evaluate("x * p", local_dict={"x": xn, "p": pn}, out=outn)),
        ("one log (window, contiguous)", lambda: torch.log(ratio, out=logb),
         lambda: ne.evaluate("log(r)", local_dict={"r": rn}, out=ln)),
        # why: one operation on arrays that stay in L2 (64 K values, 256 KiB), and a call on 16 values (overhead)
        ("one product, 64 K values (L2)", lambda: torch.mul(x.view(-1)[:65536], point.view(-1)[:65536],
                                                            out=out.view(-1)[:65536]),
         lambda: ne.evaluate("x * p", local_dict={"x": xn.reshape(-1)[:65536], "p": pn.reshape(-1)[:65536]},
                             out=outn.reshape(-1)[:65536])),
        ("one product, 16 values (a call)", lambda: torch.mul(x.view(-1)[:16], point.view(-1)[:16],
                                                              out=out.view(-1)[:16]),
         lambda: ne.evaluate("x * p", local_dict={"x": xn.reshape(-1)[:16], "p": pn.reshape(-1)[:16]},
                             out=outn.reshape(-1)[:16])),
    ]


def main() -> None:
    args = sys.argv[1:]
    torch.set_num_threads(int(args[0]))
    ne.set_num_threads(torch.get_num_threads())
    case, rounds = int(args[1]), int(args[2])
    clock = time.process_time if "cpu" in args[3:] else time.perf_counter
    _, psf, A, noise, y = make_case(list(CASES)[case])
    grid = _rl_grid(A)
    if len(grid) != 2:
        raise SystemExit("2D cases only (0, 1)")
    yt = torch.from_numpy(np.asarray(y, np.float32))
    passes = pass_timers(grid, y.shape[0])
    loops = {"torch": classical._BlurGrid.iterate, "numexpr": fused_iterate()}
    floor = floor_timer(grid, psf, clock)
    times: dict[str, list[float]] = {}
    results = {}
    try:
        for _ in range(rounds):
            for name, *fs in passes:
                for key, f in zip(("torch", "numexpr"), fs):
                    for _ in range(5):
                        t = clock()
                        f()
                        times.setdefault((name, key), []).append(clock() - t)
            times.setdefault("floor", []).extend(floor(15))
            time_loops(loops, yt, A, noise, clock, times, results)
    finally:
        classical._BlurGrid.iterate = loops["torch"]
    p20 = {k: float(np.percentile(v, 20)) * 1e3 for k, v in times.items()}
    print(f"{list(CASES)[case]}: {torch.get_num_threads()} torch / {ne.get_num_threads()} numexpr thread(s), "
          f"numexpr {ne.__version__} (VML {'on' if ne.use_vml else 'off'}), "
          f"{'CPU' if clock is time.process_time else 'wall'} ms, 20th percentile, {rounds} rounds, "
          f"load {os.getloadavg()[0]:.1f}")
    print("(a) passes on the loop's arrays: torch ms, numexpr ms, numexpr / torch")
    for name, *_ in passes:
        a, b = p20[(name, "torch")], p20[(name, "numexpr")]
        print(f"  {name:30s} {a:7.3f} {b:7.3f} {b / a:6.2f}")
    delta = float(np.abs(np.asarray(results["numexpr"]) - np.asarray(results["torch"])).max())
    scale = float(np.abs(np.asarray(results["torch"])).max())
    print(f"(b) loop per iteration: floor {p20['floor']:.3f} ms; torch {p20['torch']:.3f} ms (/ floor "
          f"{p20['torch'] / p20['floor']:.3f}); numexpr {p20['numexpr']:.3f} ms (/ floor "
          f"{p20['numexpr'] / p20['floor']:.3f}); torch / numexpr {p20['torch'] / p20['numexpr']:.3f}; "
          f"max|Δ| {delta:.3g} ({delta / scale:.2g} of the result's max)")


if __name__ == "__main__":
    main()
