"""Non-uniform FFT at fixed points, differentiable in torch: the one finufft wrapper of the non-Cartesian MRI and
the interferometer operators (finufft: Barnett, Magland & af Klinteberg, SIAM J. Sci. Comput. 41 (2019) C479)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["NUFFT"]

#: nonuniform points × transforms from which finufft uses torch's threads (below, spreading is too small to share)
THREADS_ABOVE = 2**16


class NUFFT:
    """``forward``: type 2, ``c_j = s Σ_k f[k] e^{−i k·p_j}`` (grid → points); ``adjoint``: type 1,
    ``f[k] = s Σ_j c_j e^{+i k·p_j}`` (points → grid); each is the other's adjoint and its backward in torch
    (conjugate Wirtinger convention), itself differentiable. ``points`` (M, d): radians per pixel in [−π, π), columns
    in the grid's axis order; ``scale`` = ``s``; leading axes of the data are a batch. It runs on the CPU (tensors on
    another device make a round trip through host memory).

    One accuracy rule for every use: single precision (complex64) at tolerance 1.5e-5 on the 1.25× fine grid — the
    widest kernel finufft allows there (8 points; measured error 2.5e-5 of the largest value, at a sixth of the time
    of the default 2× grid) — and double precision at 1e-10 on the 2× grid (measured 8e-11). Threads: torch's when
    points × transforms ≥ :data:`THREADS_ABOVE`, else one. Plans are made once per (type, batch, precision, threads)
    and kept; they are not pickled.
    """

    def __init__(self, shape: tuple[int, ...], points, scale: float = 1.0):
        self.shape = tuple(int(s) for s in shape)
        self.points = np.ascontiguousarray(np.asarray(points, dtype=np.float64))
        if self.points.ndim != 2 or self.points.shape[1] != len(self.shape):
            raise ValueError(f"NUFFT points must have shape (M, {len(self.shape)}), got {self.points.shape}.")
        self.scale = float(scale)
        self._plans: dict[tuple[int, int, bool, int], Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_plans": {}}  # finufft plans are C objects: remade on first use

    def _plan(self, kind: int, n_trans: int, single: bool):
        import finufft  # only the NUFFT paths need it

        threads = torch.get_num_threads() if self.points.shape[0] * n_trans >= THREADS_ABOVE else 1
        key = (kind, n_trans, single, threads)
        if key not in self._plans:
            options = {"eps": 1.5e-5, "upsampfac": 1.25} if single else {"eps": 1e-10, "upsampfac": 2.0}
            plan = finufft.Plan(kind, self.shape, n_trans=n_trans, isign=-1 if kind == 2 else 1,
                                dtype=np.complex64 if single else np.complex128, nthreads=threads, **options)
            real = np.float32 if single else np.float64
            plan.setpts(*(np.ascontiguousarray(self.points[:, i], dtype=real) for i in range(self.points.shape[1])))
            self._plans[key] = plan
        return self._plans[key]

    def _execute(self, kind: int, data: torch.Tensor) -> torch.Tensor:
        lead = tuple(data.shape[: data.ndim - (len(self.shape) if kind == 2 else 1)])
        n_trans = math.prod(lead)
        single = data.dtype in (torch.complex64, torch.float32)
        arr = data.detach().cpu().numpy().astype(np.complex64 if single else np.complex128, copy=False)
        arr = np.ascontiguousarray(arr).reshape((n_trans,) + tuple(data.shape[len(lead):]))
        out = self._plan(kind, n_trans, single).execute(arr[0] if n_trans == 1 else arr)
        if self.scale != 1.0:
            out = out * np.asarray(self.scale, dtype=out.real.dtype)
        tail = (self.points.shape[0],) if kind == 2 else self.shape
        return torch.from_numpy(np.asarray(out).reshape(lead + tail)).to(data.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Type 2 of complex images ``x`` (…, *shape) → (…, M)."""
        return _Transform.apply(x, self, 2)

    def adjoint(self, c: torch.Tensor) -> torch.Tensor:
        """Type 1 of complex values ``c`` (…, M) → (…, *shape)."""
        return _Transform.apply(c, self, 1)


class _Transform(torch.autograd.Function):
    @staticmethod
    def forward(ctx, data: torch.Tensor, nufft: NUFFT, kind: int) -> torch.Tensor:
        ctx.nufft, ctx.kind = nufft, kind
        return nufft._execute(kind, data)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _Transform.apply(grad.contiguous(), ctx.nufft, 3 - ctx.kind), None, None
