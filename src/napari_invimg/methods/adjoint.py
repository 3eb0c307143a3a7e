"""The adjoint ("zero-filled", "dirty") image: the fastest look at any linear measurement."""

from __future__ import annotations

import torch

from ..operators.kernels import dot
from .registry import Context, Estimate, Method

__all__ = ["Adjoint"]


class Adjoint(Method):
    name = "adjoint"
    label = "Adjoint (zero-filled / dirty image)"
    description = (
        "x̂ = c · Aᴴ W y with W the operator's density compensation where it has one (else I) and "
        "c = Re⟨A Aᴴ W y, y⟩ / ‖A Aᴴ W y‖² the least-squares scale; the zero-filled MRI image, the dirty image of "
        "interferometry. Instant, no parameters."
    )
    reference = "Pipe & Menon, MRM 41 (1999) 179 (density compensation); Högbom, A&AS 15 (1974) 417 (dirty image)."
    params = ()

    def run(self, y, A, noise, ctx: Context) -> Estimate:
        with torch.no_grad():
            density = getattr(A, "density", None)
            weighted = y * density.to(y.device) if isinstance(density, torch.Tensor) else y
            x = A.apply_adjoint(weighted)
            z = A.apply(x)
            zz = dot(z, z)
            scale = dot(z, y) / zz if zz > 0 else 1.0
            x = x * scale
        ctx.step(1, 1, x)
        return Estimate(x, info={"scale": scale, "density_compensated": weighted is not y, "iterations": 1})
