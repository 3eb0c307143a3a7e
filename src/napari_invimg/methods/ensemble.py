"""Empirical sampling: repeat a registered method over seeds or regularization weights.

The spread of the results says how much the answer depends on those choices. It is not a posterior and
is labeled ``"ensemble"`` so that front ends say so.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from . import registry
from .registry import Context, Estimate, Method, Param

__all__ = ["Ensemble", "sample_std"]

_STEPS_PER_MEMBER = 1000


def sample_std(stack: torch.Tensor) -> torch.Tensor | None:
    """Standard deviation over the first axis (samples, members), ``None`` for fewer than two: ``√(Σ|x_i − x̄|²/(n−1))``
    for real images, the modulus deviation ``√(Σ|x_i − x̄|²/n)`` for complex ones."""
    if stack.shape[0] < 2:
        return None
    centered = stack - stack.mean(0)
    return (centered.abs() ** 2).mean(0).sqrt() if stack.is_complex() else centered.std(0)


class Ensemble(Method):
    name = "ensemble"
    label = "Ensemble (seeds or λ)"
    description = (
        "Runs base_method n_samples times over seeds (or over λ log-spaced in [lam_low, lam_high]) and returns the "
        "mean and std of the runs: a sensitivity of the method to these choices, not a posterior."
    )
    reference = (
        "Lakshminarayanan, Pritzel & Blundell, Simple and scalable predictive uncertainty estimation using deep "
        "ensembles, NeurIPS 2017 (seed ensembles)."
    )
    returns_std = True
    uncertainty = "ensemble"
    needs_adjoint = False  # the base method's own requirements are checked at run time
    params = (
        Param("base_method", str, None, doc="name of the registered method to repeat (empty: dip, or tv where dip "
              "is not offered, e.g. MRI k-space)"),
        Param("vary", str, "seed", choices=("seed", "lam"), doc="what changes between runs"),
        Param("n_samples", int, 8, 2, 1000, doc="number of runs"),
        Param("lam_low", float, None, 0.0, None, doc="smallest λ (empty: the base's automatic λ ÷ lam_spread)",
              log_scale=True),
        Param("lam_high", float, None, 0.0, None, doc="largest λ (empty: the base's automatic λ × lam_spread)",
              log_scale=True),
        Param("lam_spread", float, 3.0, 1.0, 1e6, doc="factor around the automatic λ when no range is given"),
        Param("base_params", str, "{}", doc='parameters of the base method as JSON, e.g. {"iterations": 500}'),
    )

    def run(self, y, A, noise, ctx: Context, base_method: str | None, vary: str, n_samples: int,
            lam_low: float | None, lam_high: float | None, lam_spread: float, base_params: str) -> Estimate:
        if base_method is None:  # automatic: dip, or tv where dip is not offered (its default failed on MRI k-space)
            base_method = "dip" if registry.get("dip").supports(A) is None else "tv"
        base = registry.get(base_method)
        if base is Ensemble:
            raise ValueError("An ensemble cannot repeat the ensemble method itself; choose another base_method.")
        reason = base.supports(A)
        if reason:
            raise ValueError(reason)
        try:
            fixed = json.loads(base_params) if base_params.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"base_params must be a JSON object such as {{\"iterations\": 500}}: {exc.msg}.") from None
        if not isinstance(fixed, dict):
            raise ValueError("base_params must be a JSON object such as {\"iterations\": 500}.")
        names = {p.name for p in base.params}
        if vary == "lam":
            if "lam" not in names:
                raise ValueError(f"{base_method!r} has no regularization weight 'lam'; vary the seed instead.")
            fixed.pop("lam", None)
        base.validate(fixed)  # reject unknown names and bad values before any run

        members = []

        def run_member(k: int, seed: int, params: dict[str, Any]) -> Estimate:
            def progress(i: int, total: int, preview) -> None:
                done = k * _STEPS_PER_MEMBER + int(_STEPS_PER_MEMBER * min(i, total) / max(total, 1))
                ctx.step(done, n_samples * _STEPS_PER_MEMBER, None if preview is None else torch.as_tensor(preview))

            sub = Context(ctx.device, seed, progress)
            est = base().run(y, A, noise, sub, **base.validate(params))
            ctx.evaluations += sub.evaluations
            return est

        if vary == "lam":
            lams = self._lambdas(run_member, fixed, n_samples, lam_low, lam_high, lam_spread)
            bounds = next(p for p in base.params if p.name == "lam")
            if (bounds.low is not None and lams[0] < bounds.low) or (bounds.high is not None and lams[-1] > bounds.high):
                raise ValueError(f"The members' λ span [{lams[0]:.3g}, {lams[-1]:.3g}] (lam_low/lam_high, else the "
                                 f"automatic λ ÷/× lam_spread={lam_spread:g}) leaves {base_method}'s λ range "
                                 f"[{bounds.low or 0:g}, {'∞' if bounds.high is None else format(bounds.high, 'g')}]; "
                                 "give lam_low and lam_high inside it or a "
                                 "smaller lam_spread.")
            settings = [(ctx.seed, {**fixed, "lam": float(lam)}) for lam in lams]
        else:
            settings = [(ctx.seed + k, fixed) for k in range(n_samples)]
        for k, (seed, params) in enumerate(settings):
            est = run_member(k, seed, params)
            members.append(est.mean.detach())
            ctx.log(member_seed=seed, **({"member_lam": params["lam"]} if vary == "lam" else {}))
            stack = torch.stack(members)
            ctx.keep(stack.mean(0), sample_std(stack), stack, members=len(members))
        samples = torch.stack(members)
        std = sample_std(samples)
        info: dict[str, Any] = {"base_method": base_method, "vary": vary, "members": n_samples,
                                "member_seeds": [s for s, _ in settings]}
        if vary == "lam":
            info["member_lams"] = [p["lam"] for _, p in settings]
        if float(std.max()) == 0.0:
            info["note"] = f"all runs of {base_method!r} gave the same image: it does not depend on the {vary}."
        return Estimate(samples.mean(0), std=std, samples=samples, info=info)

    @staticmethod
    def _lambdas(run_member, fixed: dict[str, Any], n: int, low: float | None, high: float | None,
                 spread: float) -> np.ndarray:
        """``n`` weights log-spaced in ``[low, high]``; a missing end comes from the base's automatic λ."""
        if low is None or high is None:
            est = run_member(0, 0, fixed)
            auto = est.info.get("lam_relative", est.info.get("lam"))
            if auto is None or not np.isfinite(auto) or auto <= 0:
                raise ValueError("The base method reports no automatic λ; give lam_low and lam_high.")
            low = auto / spread if low is None else low
            high = auto * spread if high is None else high
        if not 0 < low <= high:
            raise ValueError(f"Need 0 < lam_low ≤ lam_high, got {low:g} and {high:g}.")
        return np.geomspace(low, high, n)
