"""The default 3D widefield PSF against psfmodels: lateral and axial FWHM at NA 0.8, 1.2, 1.4 (issue #15).

``napari_invimg.psf.widefield(model="born_wolf")`` (scalar Debye, exact defocus, aplanatic apodization, pure
numpy) beside ``psfmodels``' scalar (Gibson–Lanni) and vectorial (Aguet et al.) models, index-matched (sample
index = immersion index), emission 0.52 µm, 20 nm pixels, 20 nm z steps; the old paraxial model for reference.

    python benchmarks/bench_psf.py          # needs psfmodels (pip install psfmodels)
"""

from __future__ import annotations

import time

import numpy as np
from scipy.special import j0

import napari_invimg as ni

#: (NA, immersion index): air-free dry objective, water, oil
CASES = ((0.8, 1.0), (1.2, 1.33), (1.4, 1.515))
WAVELENGTH, DXY, DZ = 0.52, 0.02, 0.02


def fwhm(profile: np.ndarray, step: float) -> float:
    """Full width at half maximum of a peaked 1D profile (linear interpolation of the half-maximum crossings)."""
    p = np.asarray(profile, dtype=np.float64)
    p = p / p.max()
    i = int(np.argmax(p))
    lo = i
    while lo > 0 and p[lo - 1] >= 0.5:
        lo -= 1
    hi = i
    while hi < len(p) - 1 and p[hi + 1] >= 0.5:
        hi += 1
    if lo == 0 or hi == len(p) - 1:
        raise ValueError("The profile does not fall to half its maximum inside the array.")
    left = lo - (p[lo] - 0.5) / (p[lo] - p[lo - 1])
    right = hi + (p[hi] - 0.5) / (p[hi] - p[hi + 1])
    return float((right - left) * step)


def widths(h: np.ndarray) -> tuple[float, float]:
    """Lateral (x through the focus) and axial (z on the axis) FWHM in µm of a (Z, Y, X) PSF."""
    z, y, x = np.unravel_index(np.argmax(h), h.shape)
    return fwhm(h[z, y, :], DXY), fwhm(h[:, y, x], DZ)


def paraxial(shape, na, n) -> np.ndarray:
    """The previous default: ``|∫ J₀(k NA r ρ) exp(−i k NA² z ρ²/2n) ρ dρ|²`` (for the record)."""
    nz, ny, nx = shape
    k = 2 * np.pi / WAVELENGTH
    rho, w = np.polynomial.legendre.leggauss(400)
    rho, w = 0.5 * (rho + 1), 0.5 * w
    yy, xx = np.meshgrid((np.arange(ny) - ny // 2) * DXY, (np.arange(nx) - nx // 2) * DXY, indexing="ij")
    r = np.hypot(yy, xx).ravel()
    b = j0(k * na * r[:, None] * rho[None, :]) * (rho * w)[None, :]
    out = np.empty(shape)
    for i, z in enumerate((np.arange(nz) - nz // 2) * DZ):
        out[i] = (np.abs(b @ np.exp(-0.5j * k * na**2 * z * rho**2 / n)) ** 2).reshape(ny, nx)
    return out


def main() -> list[dict]:
    import psfmodels

    rows = []
    for na, n in CASES:
        nz = 201 if na < 1 else 121  # ±2 µm (dry) / ±1.2 µm: the axial half maximum inside
        shape = (nz, 61, 61)
        t0 = time.perf_counter()
        ours = ni.psf.widefield(shape, wavelength_um=WAVELENGTH, na=na, pixel_size_um=DXY, z_step_um=DZ, ni=n)
        t_ours = time.perf_counter() - t0
        vectorial = ni.psf.widefield(shape, wavelength_um=WAVELENGTH, na=na, pixel_size_um=DXY, z_step_um=DZ, ni=n,
                                     model="richards_wolf")
        zv = (np.arange(nz) - nz // 2) * DZ
        ref = {}
        for model in ("scalar", "vectorial"):
            ref[model] = psfmodels.make_psf(zv, 61, dxy=DXY, NA=na, wvl=WAVELENGTH, ns=n, ni=n, ni0=n, model=model)
        row = {"na": na, "n": n, "ours": widths(ours), "paraxial": widths(paraxial(shape, na, n)),
               "richards_wolf": widths(vectorial),
               **{m: widths(h) for m, h in ref.items()}, "seconds": t_ours}
        rows.append(row)
    print(f"{'NA':>4} {'n':>6} | {'lateral FWHM (nm)':^44} | {'axial FWHM (nm)':^44}")
    print(f"{'':>4} {'':>6} | {'ours':>8} {'scalar':>8} {'vector':>8} {'Δ max':>7} {'parax':>8} |"
          f" {'ours':>8} {'scalar':>8} {'vector':>8} {'Δ max':>7} {'parax':>8}")
    for r in rows:
        cells = []
        for j in (0, 1):
            o, s, v, p = r["ours"][j], r["scalar"][j], r["vectorial"][j], r["paraxial"][j]
            d = max(abs(o / s - 1), abs(o / v - 1))
            cells.append(f"{o * 1e3:8.0f} {s * 1e3:8.0f} {v * 1e3:8.0f} {100 * d:6.1f}% {p * 1e3:8.0f}")
        print(f"{r['na']:4.1f} {r['n']:6.3f} | {cells[0]} | {cells[1]}")
    print("\nours, vectorial (model='richards_wolf', numpy) against psfmodels' vectorial model")
    print(f"{'NA':>4} {'n':>6} | {'lateral FWHM (nm)':^26} | {'axial FWHM (nm)':^26}")
    for r in rows:
        cells = []
        for j in (0, 1):
            o, v = r["richards_wolf"][j], r["vectorial"][j]
            cells.append(f"{o * 1e3:8.0f} {v * 1e3:8.0f} {100 * abs(o / v - 1):7.1f}%")
        print(f"{r['na']:4.1f} {r['n']:6.3f} | {cells[0]} | {cells[1]}")
    return rows


if __name__ == "__main__":
    main()
