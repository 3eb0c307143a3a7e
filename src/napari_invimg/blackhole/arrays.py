"""Telescope arrays and earth-rotation (u, v) coverage.

Station tables ship as package data (``arrays/*.txt``, the 5-column eht-imaging layout with the
sources in each file's header). The (u, v) coordinates of a baseline ``b = x₁ − x₂`` (ITRF meters)
towards a source at right ascension α, declination δ, at Greenwich mean sidereal time θ (hour angle
H = θ − α) follow Thompson, Moran & Swenson, *Interferometry and Synthesis in Radio Astronomy*,
3rd ed. (2017), eq. 4.1::

    u = ( sin H · b_x + cos H · b_y) / λ
    v = (−sin δ cos H · b_x + sin δ sin H · b_y + cos δ · b_z) / λ
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from importlib import resources

import numpy as np

__all__ = [
    "Array",
    "Coverage",
    "SOURCES",
    "array",
    "array_names",
    "coverage",
    "gmst_hours",
    "mjd_of",
    "resolution_uas",
    "RAD_PER_UAS",
    "SPEED_OF_LIGHT",
]

SPEED_OF_LIGHT = 299_792_458.0
RAD_PER_UAS = np.pi / 180.0 / 3600.0 / 1e6

#: Source presets: name -> (right ascension in hours, declination in degrees), J2000.
SOURCES: dict[str, tuple[float, float]] = {
    "M87*": (12.514, 12.391),
    "Sgr A*": (17.761, -29.008),
}


@dataclass(frozen=True)
class Array:
    """A telescope array: station names, ITRF positions (N, 3) in meters, zenith SEFDs (N,) in Jy."""

    name: str
    stations: tuple[str, ...]
    xyz: np.ndarray
    sefd: np.ndarray
    sources: str = ""

    def index(self, station: str) -> int:
        try:
            return self.stations.index(station)
        except ValueError:
            raise ValueError(f"Array {self.name} has no station {station!r}; it has {', '.join(self.stations)}.") from None

    def __len__(self) -> int:
        return len(self.stations)


def array_names() -> list[str]:
    """Names of the shipped station tables (``EHT2017``, ``EHT2018``, ``ngEHT``)."""
    folder = resources.files(__package__) / "arrays"
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".txt"))


def parse_array(text: str, name: str) -> Array:
    """Parse a 5-column station table (``NAME X Y Z SEFD``, ``#`` comments)."""
    names, xyz, sefd, header = [], [], [], []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            header.append(stripped.lstrip("# "))
            continue
        parts = stripped.split("#")[0].split()
        if len(parts) < 5:
            raise ValueError(f"Station line {line!r} of array {name} needs NAME X Y Z SEFD.")
        names.append(parts[0])
        xyz.append([float(p) for p in parts[1:4]])
        sefd.append(float(parts[4]))
    if len(names) < 2:
        raise ValueError(f"Array {name} needs at least two stations.")
    return Array(name, tuple(names), np.asarray(xyz, dtype=np.float64), np.asarray(sefd, dtype=np.float64),
                 "\n".join(header))


def array(name: str | Array) -> Array:
    """The shipped station table ``name`` (see :func:`array_names`); an :class:`Array` passes through."""
    if isinstance(name, Array):
        return name
    known = array_names()
    if name not in known:
        raise ValueError(f"Unknown array {name!r}; shipped arrays: {', '.join(known)}.")
    text = (resources.files(__package__) / "arrays" / f"{name}.txt").read_text()
    return parse_array(text, name)


_station_table = array


def mjd_of(date: str | _dt.date) -> float:
    """Modified Julian date of 0 h UTC on ``date`` (ISO ``YYYY-MM-DD`` or a ``datetime.date``)."""
    if isinstance(date, str):
        try:
            date = _dt.date.fromisoformat(date)
        except ValueError:
            raise ValueError(f"The observing date {date!r} must be written YYYY-MM-DD.") from None
    return float(date.toordinal() - _dt.date(1858, 11, 17).toordinal())


def gmst_hours(mjd: np.ndarray | float) -> np.ndarray:
    """Greenwich mean sidereal time in hours at UT1 ≈ UTC ``mjd`` (IAU 1982, Aoki et al. 1982, A&A 105, 359)."""
    mjd = np.asarray(mjd, dtype=np.float64)
    t = (mjd - 51544.5) / 36525.0
    seconds = 67310.54841 + (876600.0 * 3600.0 + 8640184.812866) * t + 0.093104 * t**2 - 6.2e-6 * t**3
    return np.mod(seconds / 3600.0, 24.0)


@dataclass(frozen=True)
class Coverage:
    """The visible baselines of a schedule: one row per baseline and scan."""

    time: np.ndarray  # UTC hours from 0 h of the observing date (scan center)
    station1: np.ndarray  # station names (str)
    station2: np.ndarray
    u: np.ndarray  # wavelengths
    v: np.ndarray
    scan: np.ndarray  # scan number
    mjd: float
    freq_hz: float
    ra_hours: float
    dec_deg: float
    array: Array

    def __len__(self) -> int:
        return len(self.u)

    @property
    def resolution_uas(self) -> float:
        return resolution_uas(self.u, self.v)


def _source_geometry(gmst_h: np.ndarray, ra_hours: float, dec_deg: float):
    """Unit vectors (ITRF) of the source direction and of the u and v axes at sidereal times ``gmst_h``."""
    h = (np.asarray(gmst_h) - ra_hours) * np.pi / 12.0
    d = np.deg2rad(dec_deg)
    ch, sh, cd, sd = np.cos(h), np.sin(h), np.cos(d), np.sin(d)
    source = np.stack([cd * ch, -cd * sh, np.full_like(h, sd)], axis=-1)
    e_u = np.stack([sh, ch, np.zeros_like(h)], axis=-1)
    e_v = np.stack([-sd * ch, sd * sh, np.full_like(h, cd)], axis=-1)
    return source, e_u, e_v


def elevation_deg(xyz: np.ndarray, gmst_h: np.ndarray, ra_hours: float, dec_deg: float) -> np.ndarray:
    """Elevation (degrees) of the source seen from stations ``xyz`` (N, 3) at times ``gmst_h`` (T,): (T, N).

    The local vertical is the geocentric direction; a station at the geocenter (an orbiter) sees everything.
    """
    source, _, _ = _source_geometry(gmst_h, ra_hours, dec_deg)
    r = np.linalg.norm(xyz, axis=1)
    up = xyz / np.where(r > 0, r, 1.0)[:, None]
    el = np.rad2deg(np.arcsin(np.clip(source @ up.T, -1.0, 1.0)))
    el[:, r == 0] = 90.0
    return el


def coverage(
    array: str | Array = "EHT2017",
    ra_hours: float = SOURCES["M87*"][0],
    dec_deg: float = SOURCES["M87*"][1],
    freq_ghz: float = 230.0,
    date: str | _dt.date = "2017-04-11",
    start_hours: float = 0.0,
    duration_hours: float = 24.0,
    scan_minutes: float = 10.0,
    interval_minutes: float = 60.0,
    elevation_min_deg: float = 10.0,
    min_stations: int = 2,
) -> Coverage:
    """Earth-rotation coverage: scans of ``scan_minutes`` every ``interval_minutes`` from ``start_hours``
    UTC on ``date`` for ``duration_hours``; a baseline is kept in a scan when both stations see the
    source above ``elevation_min_deg`` at the scan center. (u, v) at the scan center, in wavelengths."""
    arr = _station_table(array)
    if not 0.0 <= ra_hours < 24.0:
        raise ValueError(f"Right ascension must be in hours, 0 to 24; got {ra_hours}.")
    if not -90.0 <= dec_deg <= 90.0:
        raise ValueError(f"Declination must be in degrees, -90 to 90; got {dec_deg}.")
    if not (np.isfinite(freq_ghz) and freq_ghz > 0):
        raise ValueError(f"The observing frequency must be positive and finite (GHz), got {freq_ghz}.")
    for name, value in (("start_hours", start_hours), ("duration_hours", duration_hours),
                        ("scan_minutes", scan_minutes), ("interval_minutes", interval_minutes)):
        if not np.isfinite(value):
            raise ValueError(f"The schedule's {name} must be a finite number, got {value}.")
    if not 0.0 <= elevation_min_deg < 90.0:
        raise ValueError(f"The elevation limit must be in degrees, 0 to 90; got {elevation_min_deg}.")
    if duration_hours <= 0 or scan_minutes <= 0 or interval_minutes < scan_minutes:
        raise ValueError("The schedule needs a positive duration and scan length, and an interval ≥ the scan length.")
    centers = start_hours + (np.arange(0.0, duration_hours * 60.0 - scan_minutes + 1e-9, interval_minutes)
                             + scan_minutes / 2.0) / 60.0
    if centers.size == 0:
        raise ValueError("The observing window is shorter than one scan.")
    mjd = mjd_of(date)
    gmst = gmst_hours(mjd + centers / 24.0)
    el = elevation_deg(arr.xyz, gmst, ra_hours, dec_deg)
    _, e_u, e_v = _source_geometry(gmst, ra_hours, dec_deg)
    wavelength = SPEED_OF_LIGHT / (freq_ghz * 1e9)
    rows = []
    for k in range(len(centers)):
        up = np.flatnonzero(el[k] >= elevation_min_deg)
        if len(up) < max(2, min_stations):
            continue
        for a in range(len(up)):
            for b in range(a + 1, len(up)):
                i, j = up[a], up[b]
                base = arr.xyz[i] - arr.xyz[j]
                rows.append((centers[k], i, j, base @ e_u[k] / wavelength, base @ e_v[k] / wavelength, k))
    if not rows:
        raise ValueError(
            f"No two stations of {arr.name} see the source (dec {dec_deg:+.2f}°) above {elevation_min_deg}° "
            "elevation at the same time in this schedule; choose another source, array or night."
        )
    t, i, j, u, v, s = (np.asarray(c) for c in zip(*rows))
    names = np.asarray(arr.stations)
    _, scan = np.unique(s, return_inverse=True)
    return Coverage(t.astype(np.float64), names[i.astype(int)], names[j.astype(int)], u, v, scan, mjd,
                    freq_ghz * 1e9, float(ra_hours), float(dec_deg), arr)


def resolution_uas(u: np.ndarray, v: np.ndarray) -> float:
    """Nominal resolution ``λ / |b|_max = 1 / max √(u² + v²)`` in micro-arcseconds (u, v in wavelengths)."""
    r = np.hypot(np.asarray(u), np.asarray(v))
    if r.size == 0 or r.max() <= 0:
        raise ValueError("The (u, v) coverage has no non-zero baseline, so it has no resolution.")
    return float(1.0 / r.max() / RAD_PER_UAS)
