"""VLBI observations: the visibility table, thermal noise and station gains, UVFITS.

A visibility ``V₁₂ = Σ I(x, y) exp(+2πi(u x + v y))`` (the eht-imaging sign convention, with
``(u, v) = (x₁ − x₂)/λ`` projected) is recorded per baseline and scan with its thermal noise
``σ = √(SEFD₁ SEFD₂) / (η √(2 Δν τ))`` (radiometer equation, Thompson, Moran & Swenson 2017,
eq. 6.50; η = 0.88 for 2-bit sampling), divided by √2 for Stokes I from two polarizations.
Station gain errors multiply ``V₁₂`` by ``g₁ g₂*``.

UVFITS follows the random-groups layout of AIPS Memo 117 (Greisen 2016) as eht-imaging, AIPS and
CASA exchange it: groups with UU/VV/WW in light-seconds, BASELINE = 256 a₁ + a₂, DATE (two parts),
INTTIM; DATA axes (COMPLEX, STOKES, FREQ, IF, RA, DEC) with [re, im, weight]; an ``AIPS AN`` table.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .arrays import (
    SOURCES,
    SPEED_OF_LIGHT,
    Array,
    resolution_uas,
)

__all__ = ["Observation", "load_uvfits", "save_uvfits", "thermal_sigma", "apply_station_gains"]

_MJD_TO_JD = 2400000.5


@dataclass
class Observation:
    """A table of visibilities: one row per baseline and time.

    ``time`` in UTC hours from 0 h of day ``mjd``; ``u``, ``v`` in wavelengths; ``vis`` complex (Jy);
    ``sigma`` the thermal noise std of the real and of the imaginary part (Jy).
    """

    time: np.ndarray
    station1: np.ndarray
    station2: np.ndarray
    u: np.ndarray
    v: np.ndarray
    vis: np.ndarray
    sigma: np.ndarray
    freq_hz: float = 230e9
    bandwidth_hz: float = 2e9
    ra_hours: float = SOURCES["M87*"][0]
    dec_deg: float = SOURCES["M87*"][1]
    mjd: float = 57854.0
    source: str = "M87"
    integration_s: np.ndarray | None = None
    stations: Array | None = field(default=None, repr=False)

    def __post_init__(self):
        self.time = np.asarray(self.time, dtype=np.float64).ravel()
        self.station1 = np.asarray(self.station1).astype(str).ravel()
        self.station2 = np.asarray(self.station2).astype(str).ravel()
        self.u = np.asarray(self.u, dtype=np.float64).ravel()
        self.v = np.asarray(self.v, dtype=np.float64).ravel()
        self.vis = np.asarray(self.vis, dtype=np.complex128).ravel()
        self.sigma = np.asarray(self.sigma, dtype=np.float64).ravel()
        n = self.vis.size
        if n == 0:
            raise ValueError("The observation holds no visibilities.")
        lengths = {k: getattr(self, k).size for k in ("time", "station1", "station2", "u", "v", "sigma")}
        if any(m != n for m in lengths.values()):
            raise ValueError(f"Every column of an observation needs {n} rows (one per visibility); got {lengths}.")
        if not np.all(np.isfinite(self.sigma)):
            raise ValueError(f"{int((~np.isfinite(self.sigma)).sum())} visibility sigmas are NaN or infinite; "
                             "flag (remove) those rows or give their thermal noise.")
        if np.any(self.sigma <= 0):
            raise ValueError("Every visibility sigma must be positive; remove rows with zero weight.")
        for k in ("time", "u", "v", "vis"):
            if not np.all(np.isfinite(getattr(self, k))):
                raise ValueError(f"The observation's {k} column contains NaN or infinite values; flag those rows.")
        for k in ("freq_hz", "bandwidth_hz"):
            value = getattr(self, k)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"The observation's {k} must be positive and finite (Hz), got {value}.")
        if np.any(self.station1 == self.station2):
            raise ValueError("An observation row pairs a station with itself (an autocorrelation); remove it.")
        if self.integration_s is not None:
            self.integration_s = np.broadcast_to(np.asarray(self.integration_s, dtype=np.float64), (n,)).copy()

    def __len__(self) -> int:
        return self.vis.size

    # -- derived quantities -------------------------------------------------------------------------
    @property
    def station_names(self) -> list[str]:
        """Stations present, in the order of the station table when there is one."""
        present = set(self.station1) | set(self.station2)
        order = list(self.stations.stations) if self.stations is not None else sorted(present)
        return [s for s in order if s in present] + sorted(present - set(order))

    @property
    def resolution_uas(self) -> float:
        """Nominal resolution λ / |b|max in µas."""
        return resolution_uas(self.u, self.v)

    @property
    def wavelength_m(self) -> float:
        return SPEED_OF_LIGHT / self.freq_hz

    def scan_index(self, tolerance_s: float = 1.0) -> np.ndarray:
        """Scan (time stamp) number of each row: rows within ``tolerance_s`` share a scan."""
        order = np.argsort(self.time, kind="stable")
        t = self.time[order]
        new = np.concatenate([[True], np.diff(t) * 3600.0 > tolerance_s])
        scan = np.empty(len(t), dtype=np.int64)
        scan[order] = np.cumsum(new) - 1
        return scan

    @property
    def n_scans(self) -> int:
        return int(self.scan_index().max()) + 1

    def select(self, rows: np.ndarray) -> Observation:
        """A new observation with the rows ``rows`` (indices or a boolean mask)."""
        it = None if self.integration_s is None else self.integration_s[rows]
        return replace(self, time=self.time[rows], station1=self.station1[rows], station2=self.station2[rows],
                       u=self.u[rows], v=self.v[rows], vis=self.vis[rows], sigma=self.sigma[rows], integration_s=it)

    def with_vis(self, vis: np.ndarray, sigma: np.ndarray | None = None) -> Observation:
        """The same table with new visibilities (and sigmas)."""
        return replace(self, vis=np.asarray(vis), sigma=self.sigma if sigma is None else np.asarray(sigma))

    def average(self, seconds: float) -> Observation:
        """Coherent, inverse-variance weighted average per baseline over bins of ``seconds``
        (``V̄ = Σ wᵢVᵢ / Σ wᵢ``, ``σ̄ = (Σ wᵢ)^-½``, ``wᵢ = σᵢ⁻²``; u, v, time averaged with the same weights)."""
        if not (np.isfinite(seconds) and seconds > 0):
            raise ValueError(f"The averaging time must be positive and finite (seconds), got {seconds}.")
        pair = np.char.add(np.char.add(self.station1, "-"), self.station2)
        bins = np.floor(self.time * 3600.0 / seconds).astype(np.int64)
        keys, inverse = np.unique(np.stack([np.unique(pair, return_inverse=True)[1], bins]), axis=1,
                                  return_inverse=True)
        inverse = inverse.ravel()
        w = 1.0 / self.sigma**2
        m = keys.shape[1]

        def wmean(a):
            return np.bincount(inverse, w * a, m) / np.bincount(inverse, w, m)

        first = np.zeros(m, dtype=np.int64)
        first[inverse[::-1]] = np.arange(len(inverse))[::-1]
        it = None
        if self.integration_s is not None:
            it = np.bincount(inverse, self.integration_s, m)
        vis = wmean(self.vis.real) + 1j * wmean(self.vis.imag)
        out = replace(self, time=wmean(self.time), station1=self.station1[first], station2=self.station2[first],
                      u=wmean(self.u), v=wmean(self.v), vis=vis, sigma=1.0 / np.sqrt(np.bincount(inverse, w, m)),
                      integration_s=it)
        return out.select(np.lexsort((out.station2, out.station1, out.time)))

    def save_uvfits(self, path: str | Path) -> Path:
        """Write this observation as a random-groups UVFITS file (see :func:`save_uvfits`)."""
        return save_uvfits(self, path)


# -- noise and gains -----------------------------------------------------------------------------------
def thermal_sigma(sefd1, sefd2, bandwidth_hz: float, seconds, efficiency: float = 0.88,
                  polarizations: int = 2) -> np.ndarray:
    """Radiometer equation ``σ = √(SEFD₁ SEFD₂) / (η √(2 Δν τ)) / √n_pol`` (Jy, per real/imaginary part)."""
    for what, value in (("Bandwidth", bandwidth_hz), ("Integration time", seconds), ("SEFD", sefd1), ("SEFD", sefd2),
                        ("Efficiency", efficiency), ("Number of polarizations", polarizations)):
        if not np.all(np.isfinite(np.asarray(value, dtype=np.float64)) & (np.asarray(value, dtype=np.float64) > 0)):
            raise ValueError(f"{what} must be positive and finite, got {value}.")
    return np.sqrt(np.asarray(sefd1) * np.asarray(sefd2)) / (efficiency * np.sqrt(2.0 * bandwidth_hz * np.asarray(seconds))) \
        / np.sqrt(polarizations)


def apply_station_gains(obs: Observation, amplitude_error: float = 0.0, random_phase: bool = False,
                        seed: int = 0) -> tuple[Observation, dict[str, np.ndarray]]:
    """Corrupt visibilities with station gains ``V₁₂ → g₁ g₂* V₁₂`` drawn independently per station and scan:
    ``|g| = 1 + amplitude_error · N(0, 1)`` (clipped at 0.05), phase uniform on [0, 2π) when ``random_phase``.
    Returns the corrupted observation and the gains per station (one value per scan)."""
    if not (np.isfinite(amplitude_error) and amplitude_error >= 0):
        raise ValueError("The gain amplitude error is a non-negative fraction (0.1 = 10%).")
    rng = np.random.default_rng(seed)
    scan = obs.scan_index()
    names = obs.station_names
    n_scans = int(scan.max()) + 1
    amp = np.clip(1.0 + amplitude_error * rng.standard_normal((len(names), n_scans)), 0.05, None)
    phase = rng.uniform(0, 2 * np.pi, (len(names), n_scans)) if random_phase else np.zeros((len(names), n_scans))
    g = amp * np.exp(1j * phase)
    idx = {s: k for k, s in enumerate(names)}
    i1 = np.array([idx[s] for s in obs.station1])
    i2 = np.array([idx[s] for s in obs.station2])
    factor = g[i1, scan] * np.conj(g[i2, scan])
    return obs.with_vis(obs.vis * factor), {s: g[k] for s, k in idx.items()}


# -- UVFITS ----------------------------------------------------------------------------------------------
def save_uvfits(obs: Observation, path: str | Path) -> Path:
    """Write ``obs`` as random-groups UVFITS: Stokes I stored as RR = LL = I (circular basis, each with
    σ√2, so that (RR + LL)/2 gives back I and σ), u, v in light-seconds, an AIPS AN antenna table (and
    the AIPS FQ table), so that eht-imaging's ``load_uvfits``, AIPS and CASA read it. Written to a temporary
    name and renamed on success; an existing ``path`` is replaced only when it is a FITS file."""
    from astropy.io import fits

    path = Path(path)
    names = obs.station_names
    if obs.stations is not None:
        xyz = np.array([obs.stations.xyz[obs.stations.index(s)] if s in obs.stations.stations else np.zeros(3)
                        for s in names])
        sefd = np.array([obs.stations.sefd[obs.stations.index(s)] if s in obs.stations.stations else 0.0
                         for s in names])
    else:
        xyz, sefd = np.zeros((len(names), 3)), np.zeros(len(names))
    number = {s: k + 1 for k, s in enumerate(names)}
    a1 = np.array([number[s] for s in obs.station1])
    a2 = np.array([number[s] for s in obs.station2])
    n = len(obs)
    mjd0 = float(np.floor(obs.mjd))
    day = obs.time / 24.0 + (obs.mjd - mjd0)
    sigma_rr = obs.sigma * np.sqrt(2.0)
    data = np.zeros((n, 1, 1, 1, 1, 2, 3))
    for p in range(2):
        data[:, 0, 0, 0, 0, p, 0] = obs.vis.real
        data[:, 0, 0, 0, 0, p, 1] = obs.vis.imag
        data[:, 0, 0, 0, 0, p, 2] = 1.0 / sigma_rr**2
    tint = obs.integration_s if obs.integration_s is not None else np.zeros(n)
    groups = fits.GroupData(
        data,
        parnames=["UU---SIN", "VV---SIN", "WW---SIN", "BASELINE", "DATE", "DATE", "INTTIM"],
        pardata=[obs.u / obs.freq_hz, obs.v / obs.freq_hz, np.zeros(n), 256.0 * a1 + a2,
                 np.full(n, mjd0 + _MJD_TO_JD), day, tint],
        bitpix=-32,
    )
    primary = fits.GroupsHDU(groups)
    h = primary.header
    date_obs = (_dt.date(1858, 11, 17) + _dt.timedelta(days=int(mjd0))).isoformat()
    ra_deg = obs.ra_hours * 15.0
    for key, value in [("OBJECT", obs.source), ("TELESCOP", "VLBA"), ("INSTRUME", "VLBA"), ("OBSERVER", "EHT"),
                       ("DATE-OBS", date_obs), ("MJD", mjd0), ("OBSRA", ra_deg), ("OBSDEC", obs.dec_deg),
                       ("EQUINOX", "J2000"), ("BSCALE", 1.0), ("BZERO", 0.0), ("BUNIT", "JY")]:
        h[key] = value
    axes = [("COMPLEX", 1.0, 1.0), ("STOKES", -1.0, -1.0), ("FREQ", obs.freq_hz, obs.bandwidth_hz),
            ("IF", 1.0, 1.0), ("RA", ra_deg, 1.0), ("DEC", obs.dec_deg, 1.0)]
    for k, (ctype, crval, cdelt) in enumerate(axes, start=2):
        h[f"CTYPE{k}"], h[f"CRVAL{k}"], h[f"CDELT{k}"], h[f"CRPIX{k}"], h[f"CROTA{k}"] = ctype, crval, cdelt, 1.0, 0.0
    for k in range(1, 8):
        h[f"PSCAL{k}"], h[f"PZERO{k}"] = 1.0, 0.0

    cols = [
        fits.Column(name="ANNAME", format="8A", array=np.array(names)),
        fits.Column(name="STABXYZ", format="3D", unit="METERS", array=xyz),
        fits.Column(name="NOSTA", format="1J", array=np.arange(1, len(names) + 1)),
        fits.Column(name="MNTSTA", format="1J", array=np.zeros(len(names), dtype=np.int32)),
        fits.Column(name="STAXOF", format="1E", unit="METERS", array=np.zeros(len(names))),
        fits.Column(name="POLTYA", format="1A", array=np.array(["R"] * len(names))),
        fits.Column(name="POLAA", format="1E", unit="DEGREES", array=np.zeros(len(names))),
        fits.Column(name="POLCALA", format="3E", array=np.zeros((len(names), 3))),
        fits.Column(name="POLTYB", format="1A", array=np.array(["L"] * len(names))),
        fits.Column(name="POLAB", format="1E", unit="DEGREES", array=np.full(len(names), 90.0)),
        fits.Column(name="POLCALB", format="3E", array=np.zeros((len(names), 3))),
        fits.Column(name="SEFD", format="1D", array=sefd),
    ]
    an = fits.BinTableHDU.from_columns(cols, name="AIPS AN")
    for key, value in [("EXTVER", 1), ("ARRAYX", 0.0), ("ARRAYY", 0.0), ("ARRAYZ", 0.0), ("RDATE", date_obs),
                       ("FREQ", obs.freq_hz), ("TIMESYS", "UTC"), ("ARRNAM", "VLBA"), ("XYZHAND", "RIGHT"),
                       ("NO_IF", 1), ("POLTYPE", "VLBI"), ("FREQID", 1), ("DEGPDY", 360.9856), ("DATUTC", 0.0)]:
        an.header[key] = value
    fq = fits.BinTableHDU.from_columns([
        fits.Column(name="FRQSEL", format="1J", array=np.array([1], dtype=np.int32)),
        fits.Column(name="IF FREQ", format="1D", array=np.array([0.0])),
        fits.Column(name="CH WIDTH", format="1E", array=np.array([obs.bandwidth_hz])),
        fits.Column(name="TOTAL BANDWIDTH", format="1E", array=np.array([obs.bandwidth_hz])),
        fits.Column(name="SIDEBAND", format="1J", array=np.array([1], dtype=np.int32)),
    ], name="AIPS FQ")
    fq.header["NO_IF"] = 1
    fq.header["EXTVER"] = 1
    from ..io._image import atomic_output

    with atomic_output(path, kind="fits") as tmp:
        fits.HDUList([primary, an, fq]).writeto(tmp)
    return path


def _open_fits_checked(path: Path):
    """Open a FITS file and check that every HDU it announces is complete; a :class:`ValueError` naming the
    file when it is not FITS, truncated (data or a header cut short) or damaged."""
    import warnings

    from astropy.io import fits

    size = path.stat().st_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy warns about truncation; we raise instead
        try:
            hdus = fits.open(path)
            hdus.readall()
        except (OSError, ValueError, TypeError, IndexError, EOFError) as exc:
            with open(path, "rb") as fh:
                fits_like = fh.read(9) == b"SIMPLE  ="
            what = "a damaged or truncated FITS file" if fits_like else "not a FITS file"
            raise ValueError(f"{path.name} is {what} ({exc}).") from None
    try:
        end = 0
        for k in range(len(hdus)):
            info = hdus.fileinfo(k)
            end = max(end, int(info["datLoc"]) + int(info["datSpan"]))
            if int(info["datLoc"]) + int(hdus[k]._data_size) > size:
                raise ValueError(f"{path.name} is truncated: HDU {k} ({hdus[k].name or 'primary'}) needs "
                                 f"{int(info['datLoc']) + int(hdus[k]._data_size)} bytes, the file has {size}.")
        if size < end:
            raise ValueError(f"{path.name} is truncated: its last HDU ends at byte {end} (whole 2880-byte FITS "
                             f"blocks), the file has {size} bytes.")
        if size > end:
            with open(path, "rb") as fh:
                fh.seek(end)
                tail = fh.read()
            if tail.strip(b"\x00 "):
                raise ValueError(f"{path.name} is truncated or damaged: {size - end} bytes after its last complete "
                                 f"HDU are not a complete FITS header (an extension such as the AIPS AN table is "
                                 f"cut short).")
    except BaseException:
        hdus.close()
        raise
    return hdus


def load_uvfits(path: str | Path) -> Observation:
    """Read a random-groups UVFITS file into Stokes I visibilities.

    Correlations: a Stokes axis starting at 1 (I, Q, U, V) gives I directly; starting at −1 (RR, LL,
    RL, LR) gives I = (RR + LL)/2, or the one parallel hand present. Frequency channels and IFs are
    averaged with inverse-variance weights; rows with no positive weight are dropped (flagged)."""
    from astropy.io import fits

    path = Path(path)
    if not path.exists():
        raise ValueError(f"No file at {path}.")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a UVFITS file.")
    hdus = _open_fits_checked(path)
    with hdus:
        primary = hdus[0]
        if not isinstance(primary, fits.GroupsHDU) or primary.data is None or len(primary.data) == 0:
            raise ValueError(f"{path.name} holds no visibilities (no random-groups data in the primary HDU).")
        h = primary.header
        data = primary.data
        axes = {h.get(f"CTYPE{k}", "").strip(): k for k in range(2, h["NAXIS"] + 1)}
        for required in ("COMPLEX", "STOKES", "FREQ"):
            if required not in axes:
                raise ValueError(f"{path.name} has no {required} axis in its visibility data.")
        raw = np.asarray(data.data, dtype=np.float64)
        # numpy axes: (group, last FITS axis, ..., first FITS axis after NAXIS1)
        nfits = h["NAXIS"]

        def np_axis(name):
            return nfits - axes[name] + 1

        arr = np.moveaxis(raw, [np_axis("COMPLEX"), np_axis("STOKES")], [-1, -2])
        arr = arr.reshape(arr.shape[0], -1, arr.shape[-2], arr.shape[-1])  # (rows, channels, stokes, complex)
        stokes0 = float(h[f"CRVAL{axes['STOKES']}"])
        stokes_step = float(h.get(f"CDELT{axes['STOKES']}", 1.0))
        codes = stokes0 + stokes_step * np.arange(arr.shape[2])
        if arr.shape[-1] < 3:
            raise ValueError(f"{path.name} has visibilities without weights (COMPLEX axis of length {arr.shape[-1]}).")
        re, im, wt = arr[..., 0], arr[..., 1], arr[..., 2]
        # a correlation with a positive weight but a NaN/infinite value or an infinite weight is damaged, not
        # flagged: it is dropped like a flagged one, and counted for the warning below
        damaged = (np.isfinite(wt) & (wt > 0) & ~(np.isfinite(re) & np.isfinite(im))) | np.isposinf(wt)
        wt = np.where(np.isfinite(re) & np.isfinite(im) & np.isfinite(wt) & (wt > 0), wt, 0.0)
        re, im = np.nan_to_num(re), np.nan_to_num(im)
        if damaged.any():
            warnings.warn(f"{path.name}: {int(damaged.sum())} correlations with a positive weight have a NaN or "
                          "infinite value or weight; they are treated as flagged.", RuntimeWarning, stacklevel=2)

        def channel_average(p):
            w = wt[:, :, p]
            total = w.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                vis = ((re[:, :, p] + 1j * im[:, :, p]) * w).sum(axis=1) / total
            return vis, total

        if 1 in codes:  # Stokes I present
            vis, total = channel_average(int(np.flatnonzero(codes == 1)[0]))
            with np.errstate(divide="ignore"):
                sigma = 1.0 / np.sqrt(total)
        elif -1 in codes or -2 in codes:
            parts = [channel_average(int(np.flatnonzero(codes == c)[0])) for c in (-1, -2) if c in codes]
            vr, wr = parts[0]
            vl, wl = parts[1] if len(parts) > 1 else (np.zeros_like(vr), np.zeros_like(wr))
            both = (wr > 0) & (wl > 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                vis = np.where(both, 0.5 * (vr + vl), np.where(wr > 0, vr, vl))
                var = np.where(both, 0.25 * (1.0 / wr + 1.0 / wl), np.where(wr > 0, 1.0 / wr, 1.0 / wl))
            total = np.where((wr > 0) | (wl > 0), 1.0, 0.0)
            sigma = np.sqrt(var)
        else:
            raise ValueError(f"{path.name} holds no total-intensity correlations (Stokes codes {codes.tolist()}).")
        keep = total > 0
        if not np.any(keep):
            raise ValueError(f"{path.name} holds no visibilities with positive weight (all flagged).")

        parnames = [p.upper() for p in data.parnames]

        def par(*candidates):
            for c in candidates:
                if c in parnames:
                    return np.asarray(data.par(parnames.index(c)), dtype=np.float64)
            raise ValueError(f"{path.name} has no {candidates[0]} random parameter.")

        date_idx = [k for k, p in enumerate(parnames) if p == "DATE"]
        jd = sum(np.asarray(data.par(k), dtype=np.float64) for k in date_idx) if date_idx else None
        if jd is None:
            raise ValueError(f"{path.name} has no DATE random parameter.")
        an = hdus["AIPS AN"].data if "AIPS AN" in hdus else None
        if an is None:
            raise ValueError(f"{path.name} has no AIPS AN antenna table, so its stations are unknown.")
        missing = [c for c in ("ANNAME", "NOSTA") if c not in an.names]
        if missing:
            raise ValueError(f"{path.name}'s AIPS AN table has no {' or '.join(missing)} column, so its stations "
                             "are unknown.")
        names = np.char.strip(np.asarray(an["ANNAME"]).astype(str))
        numbers = np.asarray(an["NOSTA"], dtype=np.int64)
        if "STABXYZ" in an.names:
            xyz = np.asarray(an["STABXYZ"], dtype=np.float64).reshape(len(names), 3)
        else:
            warnings.warn(f"{path.name}'s AIPS AN table has no STABXYZ column; station positions are set to zero "
                          "(imaging uses only u, v).", RuntimeWarning, stacklevel=2)
            xyz = np.zeros((len(names), 3))
        sefd = np.asarray(an["SEFD"], dtype=np.float64) if "SEFD" in an.names else np.zeros(len(names))
        freq = float(hdus["AIPS AN"].header.get("FREQ", h[f"CRVAL{axes['FREQ']}"]))
        if not (np.isfinite(freq) and freq > 0):
            raise ValueError(f"{path.name} gives a reference frequency of {freq} Hz (AIPS AN FREQ, else the FREQ "
                             "axis); u and v cannot be converted to wavelengths.")
        nchan = int(np.prod(arr.shape[1:2]))
        bandwidth = abs(float(h.get(f"CDELT{axes['FREQ']}", 0.0))) * nchan
        ra_deg = h.get("OBSRA", h.get(f"CRVAL{axes['RA']}") if "RA" in axes else 0.0)
        dec_deg = h.get("OBSDEC", h.get(f"CRVAL{axes['DEC']}") if "DEC" in axes else 0.0)

        baseline = par("BASELINE").astype(np.int64)
        lookup = dict(zip(numbers, names))
        try:
            s1 = np.array([lookup[b // 256] for b in baseline])
            s2 = np.array([lookup[b % 256] for b in baseline])
        except KeyError as exc:
            raise ValueError(f"{path.name} refers to antenna {exc.args[0]} that its AN table does not list.") from None
        u = par("UU---SIN", "UU", "UU--") * freq
        v = par("VV---SIN", "VV", "VV--") * freq
        tint = par("INTTIM") if "INTTIM" in parnames else None
        keep &= s1 != s2
        if not np.any(keep):
            raise ValueError(f"{path.name} holds no cross-correlations (only autocorrelations).")
        mjd_all = jd[keep] - _MJD_TO_JD
        mjd0 = float(np.floor(mjd_all.min()))
        stations = Array(path.stem, tuple(names), xyz, sefd, f"AIPS AN table of {path.name}")
        return Observation(
            (mjd_all - mjd0) * 24.0, s1[keep], s2[keep], u[keep], v[keep], vis[keep], sigma[keep],
            freq_hz=freq, bandwidth_hz=bandwidth or 2e9, ra_hours=float(ra_deg) / 15.0, dec_deg=float(dec_deg),
            mjd=mjd0, source=str(h.get("OBJECT", path.stem)).strip(),
            integration_s=None if tint is None else tint[keep], stations=stations,
        )
