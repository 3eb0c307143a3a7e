"""Closure quantities: a non-redundant set of closure phases and log closure amplitudes per scan.

Closure phase of a triangle (a, b, c): ``ψ = φ_ab + φ_bc + φ_ca``; log closure amplitude of a
quadrangle (a, b, c, d): ``log|V_ab| + log|V_cd| − log|V_ac| − log|V_bd|``. Station gains cancel in
both (Jennison 1958; Twiss et al. 1960). Per scan with N stations, at most (N−1)(N−2)/2 phases and
N(N−3)/2 amplitudes are independent; we choose a maximal linearly independent set greedily, highest
signal-to-noise first (Blackburn et al. 2020, ApJ 894, 31; Chael et al. 2018, ApJ 857, 23). Both are
linear maps of the visibility phases / log amplitudes, stored as ±1 design matrices, so their
thermal noise propagates as ``σ_ψ² = Σ σᵢ²/|Vᵢ|²`` and ``σ_logCA² = Σ σᵢ²/|Vᵢ|²`` (high-SNR limit).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch

__all__ = ["ClosureDesign", "closure_design", "closure_phases", "log_closure_amplitudes", "closure_sigmas",
           "wrap_phase"]


@dataclass(frozen=True)
class ClosureDesign:
    """±1 design matrices from visibility phases / log amplitudes to closure quantities, with labels."""

    phase: np.ndarray  # (n_closure_phases, n_vis)
    amplitude: np.ndarray  # (n_log_closure_amplitudes, n_vis)
    triangles: tuple[tuple[float, str, str, str], ...]  # (time, a, b, c)
    quadrangles: tuple[tuple[float, str, str, str, str], ...]  # (time, a, b, c, d)

    @property
    def n_phases(self) -> int:
        return self.phase.shape[0]

    @property
    def n_amplitudes(self) -> int:
        return self.amplitude.shape[0]


def wrap_phase(x):
    """Wrap angles to (−π, π] (numpy or torch)."""
    if isinstance(x, torch.Tensor):
        return torch.atan2(torch.sin(x), torch.cos(x))
    return np.angle(np.exp(1j * np.asarray(x)))


def _independent(candidates: list[np.ndarray], noise: list[float], limit: int) -> list[int]:
    """Indices of a maximal linearly independent subset of ``candidates``, lowest ``noise`` first."""
    chosen: list[int] = []
    basis: list[np.ndarray] = []
    for k in np.argsort(noise, kind="stable"):
        r = candidates[k].astype(np.float64)
        for b in basis:
            r = r - (r @ b) * b
        norm = np.linalg.norm(r)
        if norm > 1e-8:
            basis.append(r / norm)
            chosen.append(int(k))
            if len(chosen) == limit:
                break
    return sorted(chosen)


def closure_design(obs, min_snr: float = 0.0) -> ClosureDesign:
    """Non-redundant closure triangles and quadrangles of ``obs`` (an :class:`Observation`), per scan.

    Baselines with ``|V|/σ < min_snr`` are left out of the closures."""
    n = len(obs)
    scan = obs.scan_index()
    amp = np.abs(obs.vis)
    inv_snr2 = obs.sigma**2 / np.maximum(amp, 1e-30) ** 2
    phase_rows, amp_rows, tris, quads = [], [], [], []
    for s in range(int(scan.max()) + 1):
        rows = np.flatnonzero(scan == s)
        # one row per station pair (the best-measured if repeated), with the sign of its orientation
        pair: dict[tuple[str, str], tuple[int, int]] = {}
        for r in sorted(rows, key=lambda r: inv_snr2[r]):
            if amp[r] / obs.sigma[r] < min_snr:
                continue
            a, b = obs.station1[r], obs.station2[r]
            if (a, b) not in pair:
                pair[(a, b)] = (r, 1)
                pair[(b, a)] = (r, -1)
        stations = sorted({a for a, _ in pair})
        if len(stations) < 3:
            continue
        t = float(np.mean(obs.time[rows]))

        def phase_vec(cycle):
            vec = np.zeros(n)
            for a, b in cycle:
                r, sign = pair[(a, b)]
                vec[r] += sign
            return vec

        cands, noise, labels = [], [], []
        for a, b, c in combinations(stations, 3):
            edges = [(a, b), (b, c), (c, a)]
            if all(e in pair for e in edges):
                vec = phase_vec(edges)
                cands.append(vec)
                noise.append(float(np.abs(vec) @ inv_snr2))
                labels.append((t, a, b, c))
        m = len(stations)
        for k in _independent(cands, noise, (m - 1) * (m - 2) // 2):
            phase_rows.append(cands[k])
            tris.append(labels[k])

        cands, noise, labels = [], [], []
        for a, b, c, d in combinations(stations, 4):
            for num, den, lab in (
                ([(a, b), (c, d)], [(a, c), (b, d)], (t, a, b, c, d)),
                ([(a, b), (c, d)], [(a, d), (b, c)], (t, a, b, d, c)),
                ([(a, c), (b, d)], [(a, d), (b, c)], (t, a, c, d, b)),
            ):
                if all(e in pair for e in num + den):
                    vec = np.zeros(n)
                    for e in num:
                        vec[pair[e][0]] += 1
                    for e in den:
                        vec[pair[e][0]] -= 1
                    cands.append(vec)
                    noise.append(float(np.abs(vec) @ inv_snr2))
                    labels.append(lab)
        for k in _independent(cands, noise, m * (m - 3) // 2):
            amp_rows.append(cands[k])
            quads.append(labels[k])
    phase = np.array(phase_rows).reshape(-1, n)
    amplitude = np.array(amp_rows).reshape(-1, n)
    return ClosureDesign(phase, amplitude, tuple(tris), tuple(quads))


def closure_phases(vis: np.ndarray, design: ClosureDesign) -> np.ndarray:
    """Closure phases (radians, wrapped to (−π, π])."""
    return wrap_phase(design.phase @ np.angle(vis))


def log_closure_amplitudes(vis: np.ndarray, design: ClosureDesign) -> np.ndarray:
    """Log closure amplitudes."""
    return design.amplitude @ np.log(np.abs(vis))


def closure_sigmas(vis: np.ndarray, sigma: np.ndarray, design: ClosureDesign) -> tuple[np.ndarray, np.ndarray]:
    """Thermal noise of the closure phases and log closure amplitudes: ``√(Σ σᵢ²/|Vᵢ|²)`` over their baselines."""
    inv_snr2 = sigma**2 / np.maximum(np.abs(vis), 1e-30) ** 2
    return np.sqrt(np.abs(design.phase) @ inv_snr2), np.sqrt(np.abs(design.amplitude) @ inv_snr2)
