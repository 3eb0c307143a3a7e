"""Simulated VLBI observations: exact visibilities of a sky model by earth-rotation synthesis, thermal noise
from the radiometer equation and station gain errors (see :mod:`.observation` for the conventions)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import SOURCES, SPEED_OF_LIGHT, _source_geometry, coverage, gmst_hours
from .observation import Observation, apply_station_gains, thermal_sigma
from .operators import Interferometer, check_field

__all__ = ["simulate"]


def simulate(
    sky: np.ndarray,
    fov_uas: float = 160.0,
    *,
    bandwidth_ghz: float = 2.0,
    integration_s: float | None = None,
    thermal_noise: bool = True,
    gain_error: float = 0.0,
    phase_error: bool = False,
    seed: int = 0,
    source: str = "",
    **schedule: Any,
) -> Observation:
    """Observe the sky image ``sky`` (Jy per pixel, row 0 north, column 0 east, ``fov_uas`` wide) with a
    station array by earth rotation: ``schedule`` holds the keywords of :func:`~.arrays.coverage` (``array``,
    ``ra_hours``, ``dec_deg``, ``freq_ghz``, ``date``, ``start_hours``, ``duration_hours``, ``scan_minutes``,
    ``interval_minutes`` — here 30 by default —, ``elevation_min_deg``); exact visibilities of the pixelated
    sky (:class:`~.operators.Interferometer`), thermal noise from the SEFDs over ``bandwidth_ghz`` and
    ``integration_s`` (the scan length when omitted), then station gain errors (``gain_error``: the
    amplitude std, 0.1 = 10%; ``phase_error``: a random phase per station and scan)."""
    sky = np.asarray(sky, dtype=np.float64)
    if sky.ndim != 2 or sky.shape[0] != sky.shape[1]:
        raise ValueError(f"The sky model must be a square 2D image; got shape {sky.shape}.")
    if not np.all(np.isfinite(sky)):
        raise ValueError("The sky model contains NaN or infinite values.")
    check_field(sky, fov_uas)
    if not (np.isfinite(gain_error) and gain_error >= 0):
        raise ValueError(f"The gain amplitude error is a non-negative fraction (0.1 = 10%), got {gain_error}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"The seed must be a non-negative whole number, got {seed!r}.")
    schedule = {"scan_minutes": 10.0, "interval_minutes": 30.0, **schedule}
    cov = coverage(**schedule)
    arr, scan_minutes, ra_hours, dec_deg = cov.array, schedule["scan_minutes"], cov.ra_hours, cov.dec_deg
    tau = scan_minutes * 60.0 if integration_s is None else float(integration_s)
    if integration_s is not None and integration_s < scan_minutes * 60.0:
        # several integrations per scan: each at its own time (and so its own u, v)
        n_int = int(np.floor(scan_minutes * 60.0 / tau))
        offsets = (np.arange(n_int) + 0.5) * tau / 3600.0 - scan_minutes / 120.0
        rows = _integrations(cov, offsets)
    else:
        rows = (cov.time, cov.station1, cov.station2, cov.u, cov.v)
    time, s1, s2, u, v = rows
    sefd = dict(zip(arr.stations, arr.sefd))
    sigma = thermal_sigma(np.array([sefd[s] for s in s1]), np.array([sefd[s] for s in s2]), bandwidth_ghz * 1e9, tau)
    obs = Observation(time, s1, s2, u, v, np.zeros(len(u), complex), sigma, freq_hz=cov.freq_hz,
                      bandwidth_hz=bandwidth_ghz * 1e9, ra_hours=ra_hours, dec_deg=dec_deg, mjd=cov.mjd,
                      source=source or _preset_name(ra_hours, dec_deg), integration_s=np.full(len(u), tau), stations=arr)
    A = Interferometer(obs, npix=sky.shape[0], fov_uas=fov_uas)
    vis = A.forward(sky.astype(np.float32)).astype(np.complex128)
    rng = np.random.default_rng(seed)
    if thermal_noise:
        vis = vis + sigma * (rng.standard_normal(len(u)) + 1j * rng.standard_normal(len(u)))
    obs = obs.with_vis(vis)
    if gain_error > 0 or phase_error:
        obs, _ = apply_station_gains(obs, gain_error, phase_error, seed=seed + 1)
    return obs


def _integrations(cov, offsets: np.ndarray):
    """Rows of every integration inside each scan: (u, v) rotated to each integration's own time."""
    arr = cov.array
    wavelength = SPEED_OF_LIGHT / cov.freq_hz
    t = (cov.time[:, None] + offsets[None, :]).ravel()
    i = np.repeat([arr.index(s) for s in cov.station1], len(offsets))
    j = np.repeat([arr.index(s) for s in cov.station2], len(offsets))
    _, e_u, e_v = _source_geometry(gmst_hours(cov.mjd + t / 24.0), cov.ra_hours, cov.dec_deg)
    base = arr.xyz[i] - arr.xyz[j]
    names = np.asarray(arr.stations)
    return t, names[i], names[j], (base * e_u).sum(1) / wavelength, (base * e_v).sum(1) / wavelength


def _preset_name(ra_hours: float, dec_deg: float) -> str:
    for name, (ra, dec) in SOURCES.items():
        if abs(ra - ra_hours) < 1e-3 and abs(dec - dec_deg) < 1e-3:
            return name.rstrip("*")
    return f"RA{ra_hours:.3f}h_DEC{dec_deg:+.3f}"
