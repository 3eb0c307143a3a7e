"""MRI test objects, generated offline: Shepp–Logan and a complex brain-like phantom; simulated k-space."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .coils import birdcage
from .masks import mask as make_mask
from .operators import CartesianMRI

__all__ = ["shepp_logan", "brain", "random_ellipses", "flat_ellipses", "training_magnitudes", "TEST_PHANTOMS", "simulate_kspace",
           "SimulatedScan", "noise_sigma_for_snr"]

#: the benchmark's test images (RESULTS §6): never in a training corpus (:func:`training_magnitudes`)
TEST_PHANTOMS = ("shepp_logan", "brain seed 0")

# Modified Shepp–Logan (Toft, PhD thesis, DTU 1996, table B.3; higher contrast than Shepp & Logan,
# IEEE Trans. Nucl. Sci. 21 (1974) 21): intensity, semi-axes a, b, center x0, y0, rotation (degrees).
_SHEPP_LOGAN = (
    (1.0, 0.69, 0.92, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.8740, 0.0, -0.0184, 0.0),
    (-0.2, 0.1100, 0.3100, 0.22, 0.0, -18.0),
    (-0.2, 0.1600, 0.4100, -0.22, 0.0, 18.0),
    (0.1, 0.2100, 0.2500, 0.0, 0.35, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, 0.1, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, -0.1, 0.0),
    (0.1, 0.0460, 0.0230, -0.08, -0.605, 0.0),
    (0.1, 0.0230, 0.0230, 0.0, -0.606, 0.0),
    (0.1, 0.0230, 0.0460, 0.06, -0.605, 0.0),
)


def _coords(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) in [-1, 1), y pointing up (row 0 at the top)."""
    ny, nx = shape
    y = -(np.arange(ny) - ny // 2) / (ny / 2)
    x = (np.arange(nx) - nx // 2) / (nx / 2)
    return np.meshgrid(y, x, indexing="ij")


def _ellipse(y, x, a, b, x0, y0, phi_deg) -> np.ndarray:
    phi = math.radians(phi_deg)
    c, s = math.cos(phi), math.sin(phi)
    xr = (x - x0) * c + (y - y0) * s
    yr = -(x - x0) * s + (y - y0) * c
    return (xr / a) ** 2 + (yr / b) ** 2 <= 1.0


def shepp_logan(shape: tuple[int, ...] = (256, 256)) -> np.ndarray:
    """Modified Shepp–Logan head phantom (real, values in [0, 1]) from Toft's ellipse table; 3D shapes stack it."""
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"The phantom shape must be 2D or 3D, got {shape}.")
    y, x = _coords(shape[-2:])
    img = np.zeros(shape[-2:], np.float64)
    for value, a, b, x0, y0, phi in _SHEPP_LOGAN:
        img[_ellipse(y, x, a, b, x0, y0, phi)] += value
    img = np.clip(img, 0, None).astype(np.float32)
    return np.broadcast_to(img, shape).copy() if len(shape) == 3 else img


def _smooth_field(shape: tuple[int, int], scale: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian random field with correlation length ``scale`` (fraction of the field of view), unit std."""
    ny, nx = shape
    fy, fx = np.fft.fftfreq(ny)[:, None], np.fft.fftfreq(nx)[None, :]
    spectrum = np.exp(-((fy * ny) ** 2 + (fx * nx) ** 2) * (scale * math.pi) ** 2 / 2)
    f = np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * spectrum).real
    return (f - f.mean()) / (f.std() + 1e-12)


def brain(shape: tuple[int, int] = (256, 256), seed: int = 0, phase: bool = True) -> np.ndarray:
    """A complex brain-like phantom: skull and scalp, folded gray/white matter, ventricles, vessels, smooth phase.

    Magnitude in [0, 1]: scalp 0.9, skull 0.1, cerebrospinal fluid 1.0, gray matter 0.7, white matter 0.5,
    with cortical folds from a thresholded random field (fine, sharp structure), two ventricles, small
    bright vessels and a mild smooth intensity bias; the phase is a smooth field of a few radians
    (B0 inhomogeneity), so the image is genuinely complex. Deterministic for a given ``seed``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 16:
        raise ValueError(f"The brain phantom is 2D with at least 16 pixels per axis, got {shape}.")
    rng = np.random.default_rng(seed)
    y, x = _coords(shape)
    r_head = np.sqrt((x / 0.72) ** 2 + (y / 0.90) ** 2)
    img = np.zeros(shape)
    img[r_head <= 1.0] = 0.9                      # scalp
    img[r_head <= 0.95] = 0.1                     # skull
    brain_r = np.sqrt((x / 0.64) ** 2 + (y / 0.82) ** 2)
    inside = brain_r <= 1.0
    img[inside] = 1.0                             # CSF around the brain
    folds = _smooth_field(shape, 0.018, rng) + 1.5 * (brain_r - 0.55)
    cortex = brain_r <= 0.97
    grey_white = np.where(folds > 0.35, 0.7, 0.5)  # gray outside, white inside; folds are sharp edges
    sulci = np.abs(_smooth_field(shape, 0.012, rng)) < 0.08
    img[cortex] = grey_white[cortex]
    img[cortex & sulci & (brain_r > 0.5)] = 1.0   # CSF in the sulci
    for sx in (-1, 1):                            # lateral ventricles
        vent = _ellipse(y, x, 0.07, 0.22, sx * 0.11, 0.05, sx * 12.0)
        img[vent] = 1.0
    img[_ellipse(y, x, 0.05, 0.05, 0.0, -0.25, 0.0)] = 0.6  # deep gray nucleus
    n_vessels = 25
    for _ in range(n_vessels):
        rad = rng.uniform(0.1, 0.75)
        ang = rng.uniform(0, 2 * math.pi)
        cxv, cyv = 0.6 * rad * math.cos(ang), 0.78 * rad * math.sin(ang)
        size = rng.uniform(0.006, 0.014)
        img[_ellipse(y, x, size, size, cxv, cyv, 0.0)] = 0.95
    bias = 1 + 0.1 * _smooth_field(shape, 0.25, rng)
    mag = np.clip(img * bias, 0, None)
    mag /= mag.max()
    if not phase:
        return mag.astype(np.complex64)
    ph = 1.5 * _smooth_field(shape, 0.3, rng) + 0.8 * x + 0.4 * y
    return (mag * np.exp(1j * ph)).astype(np.complex64)



def random_ellipses(shape: tuple[int, int] = (256, 256), seed: int = 0) -> np.ndarray:
    """A random piecewise-constant/piecewise-smooth head-like magnitude image in [0, 1] (real, float32).

    Like Shepp–Logan (additive ellipses in a bright ring) but random: a head ellipse with a skull ring, 4–24 inner
    ellipses of random size, angle and signed intensity, some with a weak 1/f texture, then a smooth multiplicative
    bias field (coil shading) and, sometimes, a slight blur (partial volume). Deterministic for a given ``seed``.
    """
    from ..nets.corpus import _power_law_noise  # floor 1

    shape = tuple(int(s) for s in shape)
    rng = np.random.default_rng(seed)
    y, x = _coords(shape)
    img = np.zeros(shape)
    a, b = rng.uniform(0.55, 0.95), rng.uniform(0.65, 0.98)
    x0, y0, phi = rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), rng.uniform(-20, 20)
    head = rng.uniform(0.6, 1.0)
    img[_ellipse(y, x, a, b, x0, y0, phi)] += head                          # scalp/skull
    t = rng.uniform(0.03, 0.1)
    img[_ellipse(y, x, a - t, b - t, x0, y0 - rng.uniform(0, 0.03), phi)] -= head * rng.uniform(0.2, 0.9)  # inside
    texture = _power_law_noise(shape, rng.uniform(1.5, 3.0), rng)
    for _ in range(int(rng.integers(4, 25))):
        r = (a - t) * rng.uniform(0.03, 0.45)
        ea, eb = r, r * rng.uniform(0.3, 1.0)
        cx = x0 + rng.uniform(-1, 1) * (a - t - ea) * 0.9
        cy = y0 + rng.uniform(-1, 1) * (b - t - ea) * 0.9
        inside = _ellipse(y, x, ea, eb, cx, cy, rng.uniform(0, 180))
        value = rng.choice([-1, 1]) * rng.uniform(0.02, 0.4)
        img[inside] += value
        if rng.random() < 0.3:
            img[inside] += rng.uniform(0.005, 0.04) * texture[inside]
    img = np.clip(img, 0, None)
    if rng.random() < 0.7:
        img *= 1 + rng.uniform(0.03, 0.25) * _smooth_field(shape, rng.uniform(0.15, 0.4), rng)
    if rng.random() < 0.3:
        from scipy import ndimage

        img = ndimage.gaussian_filter(img, rng.uniform(0.3, 1.0))
    img = np.clip(img, 0, None)
    return (img / max(float(img.max()), 1e-12)).astype(np.float32)


def flat_ellipses(shape: tuple[int, int] = (256, 256), seed: int = 0) -> np.ndarray:
    """A random piecewise-constant head-like image in [0, 1] (real, float32): exactly flat regions, hard edges.

    Like Shepp–Logan (additive ellipses in a thin bright ring, sampled at the pixel centers) but random: a head
    ellipse with a skull ring 2–8 % of the field thick, a darker inside, then 3–16 inner ellipses, some of them tiny
    (1–3 % of the field) and some nested, of signed intensity 0.02–0.4, no texture, no bias field, no blur — what
    :func:`random_ellipses` does not cover. Deterministic for a given ``seed``.
    """
    shape = tuple(int(s) for s in shape)
    rng = np.random.default_rng(seed)
    y, x = _coords(shape)
    img = np.zeros(shape)
    a, b = rng.uniform(0.5, 0.95), rng.uniform(0.6, 0.98)
    x0, y0, phi = rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), rng.uniform(-25, 25)
    img[_ellipse(y, x, a, b, x0, y0, phi)] += 1.0
    t = rng.uniform(0.02, 0.08)
    img[_ellipse(y, x, a - t, b - t, x0, y0 - rng.uniform(0, 0.03), phi)] -= rng.uniform(0.5, 0.95)
    centers: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(3, 17))):
        if centers and rng.random() < 0.3:  # nested in an earlier ellipse
            cx, cy, r0 = centers[int(rng.integers(len(centers)))]
            r = r0 * rng.uniform(0.2, 0.7)
        else:
            r = (a - t) * (rng.uniform(0.02, 0.06) if rng.random() < 0.35 else rng.uniform(0.06, 0.45))
            cx = x0 + rng.uniform(-1, 1) * (a - t - r) * 0.9
            cy = y0 + rng.uniform(-1, 1) * (b - t - r) * 0.9
        centers.append((cx, cy, r))
        img[_ellipse(y, x, r, r * rng.uniform(0.3, 1.0), cx, cy, rng.uniform(0, 180))] += \
            rng.choice([-1, 1]) * rng.uniform(0.02, 0.4)
    img = np.clip(img, 0, None)
    return (img / max(float(img.max()), 1e-12)).astype(np.float32)


def training_magnitudes(n: int = 64, shape: tuple[int, int] = (256, 256), seed: int = 0,
                        flat: int = 0) -> dict[str, list[np.ndarray]]:
    """MR-like training images for a denoiser, by source, none of them a test image (:data:`TEST_PHANTOMS`):

    ``ellipses`` (:func:`random_ellipses`, seeds ``seed·10⁵ + k``, half of ``n``), ``brain`` (magnitudes of
    :func:`brain` seeds 2, 3, … — seed 0 is the benchmark's test image, seed 1 the tuning image — at sizes from
    0.75× to 1.5× ``shape``, a quarter of ``n``), ``residual`` (the small signed imaginary part a phase-removed
    image keeps: ``m·sin δ``, δ a smooth field of std 0.02–0.15 rad, a quarter of ``n``); with ``flat`` > 0 also
    ``flat`` piecewise-constant images (:func:`flat_ellipses`, seeds ``seed·10⁵ + 50 000 + k``).
    """
    base = int(seed) * 100_000
    n_ell, n_brain = n // 2, n // 4
    rng = np.random.default_rng(base + 7)
    ellipses = [random_ellipses(shape, seed=base + k) for k in range(n_ell)]
    brains = []
    for k in range(n_brain):
        f = rng.uniform(0.75, 1.5)
        size = (max(16, int(shape[0] * f)), max(16, int(shape[1] * f)))
        brains.append(np.abs(brain(size, seed=2 + base + k, phase=False)).astype(np.float32))
    residual = []
    for k in range(n - n_ell - n_brain):
        m = (ellipses if k % 2 else brains)[k % len(ellipses if k % 2 else brains)]
        delta = rng.uniform(0.02, 0.15) * _smooth_field(m.shape, rng.uniform(0.05, 0.3), rng)
        residual.append((m * np.sin(delta)).astype(np.float32))
    out = {"ellipses": ellipses, "brain": brains, "residual": residual}
    if flat > 0:
        out["flat"] = [flat_ellipses(shape, seed=base + 50_000 + k) for k in range(int(flat))]
    return out


def noise_sigma_for_snr(kspace_clean: np.ndarray, measured: np.ndarray, snr_db: float) -> float:
    """σ (per real and imaginary part) for which the measured samples have ``snr_db`` dB SNR:
    ``20 log10(rms(signal) / rms(noise))`` with the noise's rms = σ√2."""
    vals = kspace_clean[np.broadcast_to(measured, kspace_clean.shape)]
    rms = float(np.sqrt(np.mean(np.abs(vals) ** 2)))
    return rms / (10 ** (snr_db / 20) * math.sqrt(2))


@dataclass
class SimulatedScan:
    """A simulated acquisition: ``kspace`` (C, Y, X) or (Y, X), the operator, the truth, maps, mask, σ."""

    kspace: np.ndarray
    operator: CartesianMRI
    image: np.ndarray
    coil_maps: np.ndarray | None
    mask: np.ndarray
    sigma: float

    @property
    def acceleration(self) -> float:
        return self.operator.acceleration


def simulate_kspace(image, n_coils: int = 8, mask=None, kind: str = "equispaced", acceleration: float = 4.0,
                    center_fraction: float | None = None, snr_db: float | None = 30.0, seed: int = 0) -> SimulatedScan:
    """Undersampled (multi-coil) Cartesian k-space of ``image`` with birdcage coils and complex Gaussian noise.

    ``y_c = M ⊙ (F(S_c x) + n_c)``, ``n`` with ``snr_db`` dB SNR on the measured samples
    (:func:`noise_sigma_for_snr`); ``n_coils = 1`` gives single-coil data without maps (shape (Y, X)).
    """
    x = np.asarray(image)
    if x.ndim not in (2, 3):
        raise ValueError(f"The image must be 2D or 3D, got shape {x.shape}.")
    if n_coils < 1:
        raise ValueError("The number of coils must be at least 1.")
    if x.dtype.kind not in "biufc" or not np.isfinite(x).all():
        raise ValueError("The image must hold finite numbers (no NaN or infinite values).")
    if snr_db is not None and not math.isfinite(float(snr_db)):
        raise ValueError(f"The SNR must be a finite number of dB (or None for no noise), got {snr_db}.")
    x = x.astype(np.complex64)
    m = make_mask(kind, x.shape, acceleration, center_fraction, seed) if mask is None else np.asarray(mask)
    if m.shape != x.shape:
        raise ValueError(f"The mask has shape {m.shape} but the image has shape {x.shape}.")
    maps = birdcage(n_coils, x.shape) if n_coils > 1 else None
    A = CartesianMRI(m, coil_maps=maps)
    clean = A.forward(x)
    sigma = 0.0
    k = clean
    if snr_db is not None:
        sigma = noise_sigma_for_snr(clean, m > 0, snr_db)
        rng = np.random.default_rng(seed + 1)
        noise = (rng.standard_normal(clean.shape) + 1j * rng.standard_normal(clean.shape)) * sigma
        k = (clean + noise * (np.broadcast_to(m, clean.shape) > 0)).astype(np.complex64)
    return SimulatedScan(kspace=k, operator=A, image=x, coil_maps=maps, mask=m, sigma=float(sigma))
