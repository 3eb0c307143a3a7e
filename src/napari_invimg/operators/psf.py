"""Point-spread functions: parametric (Gaussian, widefield Born–Wolf / Gibson–Lanni) and measured beads.

Every function returns a float32 numpy array that sums to 1, centered on the array's central pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi
from scipy.special import j0, j1, jv

__all__ = ["gaussian", "widefield", "from_bead", "WIDEFIELD_MODELS", "center_of_mass_shift", "widefield_like",
           "detect_beads", "from_beads", "resample", "check", "PSFCheck", "otf"]

WIDEFIELD_MODELS = ("born_wolf", "richards_wolf", "gibson_lanni", "vectorial")


def _as_shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    sizes = (shape,) * 2 if np.isscalar(shape) else tuple(shape)
    if not all(isinstance(s, (int, np.integer)) or (isinstance(s, (float, np.floating)) and float(s).is_integer())
               for s in sizes):
        raise ValueError(f"A PSF shape has whole-number sizes, got {sizes}.")
    shape = tuple(int(s) for s in sizes)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"A PSF shape has 2 or 3 positive sizes, got {shape}.")
    return shape


def gaussian(shape: int | Sequence[int], sigma: float | Sequence[float] = 2.0) -> np.ndarray:
    """Sampled Gaussian kernel ``h(r) ∝ exp(−Σ r_i² / 2σ_i²)``, normalized to sum 1.

    Parameters
    ----------
    shape : int or tuple of int
        Kernel size, (Y, X) or (Z, Y, X); odd sizes keep the peak on a pixel.
    sigma : float or tuple of float
        Standard deviation in pixels, one value or one per axis.
    """
    shape = _as_shape(shape)
    sig = np.asarray(sigma, dtype=np.float64)
    if sig.ndim > 1 or sig.size not in (1, len(shape)):
        raise ValueError(f"Gaussian PSF sigma is one value or one per axis ({len(shape)}), got {sig.size}.")
    sig = np.broadcast_to(sig.reshape(-1), (len(shape),))
    if not (np.all(np.isfinite(sig)) and np.all(sig > 0)):
        raise ValueError(f"Gaussian PSF sigma must be positive and finite (pixels), got {sig.tolist()}.")
    grids = np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in shape], indexing="ij")
    h = np.exp(-0.5 * sum((g / s) ** 2 for g, s in zip(grids, sig)))
    return (h / h.sum()).astype(np.float32)


def _born_wolf(shape, wavelength_um, na, pixel_size_um, z_step_um, ni, oversample=3, vectorial=False):
    """Scalar Debye model of an aplanatic objective in an index-matched sample (Richards & Wolf 1959):
    ``h(r,z) = |∫₀^α √cosθ · J₀(k n r sinθ) · exp(i k n z cosθ) · sinθ dθ|²``, ``sin α = NA/n``.

    ``k n z cosθ = k z √(n² − NA²ρ²)`` (``ρ = n sinθ / NA``) is the exact defocus phase; its paraxial form
    ``k NA² z ρ²/2n`` makes the axial FWHM about 40% too long at NA 1.4. ``√cosθ`` is the aplanatic
    (sine-condition) apodization. Pixels are integrated by ``oversample``² sub-samples.

    ``vectorial=True``: the Richards–Wolf vectorial field of a randomly polarized emitter,
    ``h = |I₀|² + 2|I₁|² + |I₂|²`` with ``I_m = ∫ √cosθ sinθ g_m(θ) J_m(k n r sinθ) e^{i k n z cosθ} dθ``,
    ``g₀ = 1 + cosθ``, ``g₁ = sinθ``, ``g₂ = 1 − cosθ`` (Richards & Wolf 1959; Novotny & Hecht, 3.6).
    """
    ny, nx = shape[-2:]
    nz = shape[0] if len(shape) == 3 else 1
    k = 2 * np.pi / wavelength_um
    alpha = float(np.arcsin(na / ni))
    sub = (np.arange(oversample) - (oversample - 1) / 2) / oversample
    yy = (np.arange(ny) - (ny - 1) / 2)[:, None] + sub[None, :]
    xx = (np.arange(nx) - (nx - 1) / 2)[:, None] + sub[None, :]
    r = np.hypot(yy.reshape(-1, 1) * pixel_size_um, xx.reshape(1, -1) * pixel_size_um)  # (ny*o, nx*o)
    zs = (np.arange(nz) - (nz - 1) / 2) * (z_step_um or 0.0)
    # Gauss–Legendre on θ ∈ [0, α] with enough nodes for the fastest Bessel and defocus oscillations
    cycles = (k * ni * float(r.max()) * np.sin(alpha) + k * ni * float(np.abs(zs).max()) * (1 - np.cos(alpha))) / np.pi
    t, w = np.polynomial.legendre.leggauss(int(min(4000, 200 + 4 * cycles)))
    theta = 0.5 * alpha * (t + 1)
    w = 0.5 * alpha * w
    sin_t, cos_t = np.sin(theta), np.cos(theta)
    r_unique, inverse = np.unique(np.round(r, 9), return_inverse=True)
    arg = k * ni * r_unique[:, None] * sin_t[None, :]
    base = (np.sqrt(cos_t) * sin_t * w)[None, :]
    if vectorial:  # (order weight, Bessel term) of |I₀|² + 2|I₁|² + |I₂|²
        terms = [(1.0, j0(arg) * base * (1 + cos_t)), (2.0, j1(arg) * base * sin_t), (1.0, jv(2, arg) * base * (1 - cos_t))]
    else:
        terms = [(1.0, j0(arg) * base)]  # (R, Q)
    out = np.empty((nz, ny, nx))
    for i, z in enumerate(zs):
        phase = np.exp(1j * k * ni * z * cos_t)
        intensity = sum(weight * np.abs(bessel @ phase) ** 2 for weight, bessel in terms)
        img = intensity[inverse].reshape(r.shape)
        out[i] = img.reshape(ny, oversample, nx, oversample).mean(axis=(1, 3))
    return out if len(shape) == 3 else out[0]


def widefield(
    shape: int | Sequence[int],
    wavelength_um: float = 0.52,
    na: float = 1.4,
    pixel_size_um: float = 0.065,
    z_step_um: float | None = None,
    ni: float = 1.515,
    ns: float = 1.33,
    model: str = "born_wolf",
) -> np.ndarray:
    """Widefield fluorescence PSF from the objective's optics, 2D (in focus) or 3D (``shape`` = (Z, Y, X)).

    ``born_wolf`` (the default, pure numpy): scalar Debye model of an aplanatic objective in an index-matched
    sample, with the exact (non-paraxial) defocus phase ``k z √(n² − NA²ρ²)`` and ``√cosθ`` apodization
    (Born & Wolf, *Principles of Optics*, 8.8; Richards & Wolf, Proc. R. Soc. A 253 (1959) 358); its lateral and
    axial FWHM agree with ``psfmodels``' scalar model within 5% at NA 0.8–1.4 (benchmarks/bench_psf.py).
    ``richards_wolf`` (pure numpy): the same objective's vectorial field for a randomly polarized emitter, laterally
    7–12% wider at high NA; it agrees with ``psfmodels``' vectorial model (index-matched) within 5%.
    ``gibson_lanni``: scalar model with a refractive-index mismatch between immersion
    ``ni`` and sample ``ns`` (Gibson & Lanni, JOSA A 8 (1991) 1601), computed by ``psfmodels``;
    ``vectorial``: Aguet et al., Opt. Express 17 (2009), also through ``psfmodels``.

    Parameters
    ----------
    shape : (Y, X) or (Z, Y, X)
    wavelength_um : emission wavelength in µm.
    na : numerical aperture; must be below the immersion index ``ni``.
    pixel_size_um : lateral pixel size in the sample plane, µm.
    z_step_um : axial step for 3D PSFs, µm (required when ``shape`` has three sizes).
    ni, ns : refractive indices of immersion medium and sample.
    model : one of ``born_wolf``, ``richards_wolf``, ``gibson_lanni``, ``vectorial``.
    """
    shape = _as_shape(shape)
    if model not in WIDEFIELD_MODELS:
        raise ValueError(f"model must be one of {WIDEFIELD_MODELS}, got {model!r}.")
    optics = [("wavelength_um", wavelength_um), ("na", na), ("pixel_size_um", pixel_size_um), ("ni", ni), ("ns", ns)]
    if len(shape) == 3 and z_step_um is not None:
        optics.append(("z_step_um", z_step_um))
    for name, value in optics:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}.")
        if not np.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}.")
    if not (0 < na < ni):
        raise ValueError(f"The numerical aperture must lie between 0 and the immersion index ni={ni}; got NA={na}.")
    if wavelength_um <= 0 or pixel_size_um <= 0:
        raise ValueError("Wavelength and pixel size must be positive (in µm).")
    if ns <= 0:
        raise ValueError(f"The sample's refractive index ns must be positive, got {ns}.")
    if len(shape) == 3 and not (z_step_um and z_step_um > 0):
        raise ValueError("A 3D widefield PSF needs a positive z_step_um.")
    if model in ("born_wolf", "richards_wolf"):
        h = _born_wolf(shape, wavelength_um, na, pixel_size_um, z_step_um, ni, vectorial=model == "richards_wolf")
    else:
        try:
            import psfmodels
        except ImportError:
            raise ImportError(
                f"The {model!r} widefield PSF is computed by the optional package psfmodels, which is not "
                f"installed: pip install 'napari-invimg[psfmodels]' (wheels for CPython 3.11 on Linux; elsewhere "
                f"it builds from source), or use model='born_wolf'.") from None

        nz = shape[0] if len(shape) == 3 else 1
        n_lat = max(shape[-2:]) | 1  # psfmodels makes square, odd-sized planes
        z = (np.arange(nz) - (nz - 1) / 2) * (z_step_um or 0.0)
        h = psfmodels.make_psf(
            z, n_lat, dxy=pixel_size_um, NA=na, wvl=wavelength_um, ni=ni, ni0=ni, ns=ns,
            model="scalar" if model == "gibson_lanni" else "vectorial",
        )
        cy, cx = (n_lat - shape[-2]) // 2, (n_lat - shape[-1]) // 2
        h = h[:, cy : cy + shape[-2], cx : cx + shape[-1]]
        if len(shape) == 2:
            h = h[0]
    h = np.clip(h, 0, None)
    return (h / h.sum()).astype(np.float32)


def center_of_mass_shift(img: np.ndarray) -> np.ndarray:
    """Shift (per axis) that moves the intensity centroid of ``img`` to its central pixel."""
    com = np.asarray(ndi.center_of_mass(np.clip(img, 0, None)))
    center = (np.asarray(img.shape) - 1) / 2
    return center - com


centre_of_mass_shift = center_of_mass_shift  # deprecated spelling (issue #17: one spelling, US)


def from_bead(image, shape: Sequence[int] | None = None, background: float | None = None) -> np.ndarray:
    """A measured PSF from an image of one sub-resolution bead: background-subtracted, centered, normalized.

    ``background`` defaults to the median of the image's outer border. The bead's centroid is moved to
    the central pixel with a sub-pixel Fourier shift, the result is cropped to ``shape`` (default: the
    image's shape, made odd) and normalized to sum 1.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim not in (2, 3) or img.size == 0:
        raise ValueError(f"A bead image must be 2D or 3D and non-empty, got shape {img.shape}.")
    if np.iscomplexobj(img) or not np.isfinite(img).all():
        raise ValueError("A bead image must be real and finite.")
    if background is None:
        border = np.concatenate([np.moveaxis(img, ax, 0)[[0, -1]].ravel() for ax in range(img.ndim)])
        background = float(np.median(border))
    img = np.clip(img - background, 0, None)
    if img.sum() <= 0:
        raise ValueError("After background subtraction the bead image is empty; is there a bead in it?")
    img = np.real(np.fft.ifftn(ndi.fourier_shift(np.fft.fftn(img), center_of_mass_shift(img))))
    img = np.clip(img, 0, None)
    target = tuple(int(s) for s in (shape if shape is not None else [n - (1 - n % 2) for n in img.shape]))
    if len(target) != img.ndim or any(t > n for t, n in zip(target, img.shape)):
        raise ValueError(f"Cannot crop a bead image of shape {img.shape} to {target}.")
    starts = [(n - 1) // 2 - (t - 1) // 2 for n, t in zip(img.shape, target)]
    img = img[tuple(slice(s, s + t) for s, t in zip(starts, target))]
    return (img / img.sum()).astype(np.float32)


# -- PSF workbench: beads, resampling, checks, OTF -----------------------------------------------------
def widefield_like(image, shape: Sequence[int], **overrides) -> np.ndarray:
    """A :func:`widefield` PSF that matches an image read by :func:`napari_invimg.io.imread`.

    Pixel size and z-step come from ``image.pixel_size_um``; NA, emission wavelength and immersion index
    from ``image.metadata`` where the file has them. ``overrides`` supply or replace any of
    ``na``, ``wavelength_um``, ``ni``, ``ns``, ``model``; a missing optical value is an error.
    """
    sizes = tuple(image.pixel_size_um)
    meta = dict(getattr(image, "metadata", {}) or {})
    shape = _as_shape(shape)
    kwargs = {"pixel_size_um": sizes[-1]}
    if abs(sizes[-1] - sizes[-2]) > 1e-6 * sizes[-1]:
        raise ValueError(f"The image's pixels are not square ({sizes[-2]} × {sizes[-1]} µm); the widefield "
                         "model needs square pixels.")
    if len(shape) == 3:
        if len(sizes) < 3:
            raise ValueError("A 3D PSF needs the image's z-step; this image is 2D.")
        kwargs["z_step_um"] = sizes[-3]
    wavelength = meta.get("wavelength_um")
    if isinstance(wavelength, (list, tuple)):
        wavelength = None  # several channels: the caller picks one
    found = {"na": meta.get("na"), "wavelength_um": wavelength, "ni": meta.get("immersion_index")}
    found = {k: v for k, v in found.items() if v is not None}
    kwargs.update(found)
    kwargs.update(overrides)
    missing = [k for k in ("na", "wavelength_um") if k not in kwargs]
    if missing:
        raise ValueError(f"The image's metadata give no {' or '.join(missing)}; pass them "
                         f"({', '.join(f'{m}=...' for m in missing)}).")
    return widefield(shape, **kwargs)


def detect_beads(image, shape: Sequence[int], min_separation: float | None = None,
                 threshold: float | None = None, saturation: float | None = None) -> np.ndarray:
    """Integer positions (N, d) of isolated, unclipped sub-resolution beads whose ``shape`` box fits the image.

    Local maxima of the lightly smoothed image above ``threshold`` (default: background + the larger of
    8 robust noise σ and 10% of the brightest peak) are kept when no other candidate lies within
    ``min_separation`` pixels (default: the box's half-diagonal), the peak is not clipped (a plateau at
    the maximum, or at ``saturation``, default the integer dtype's maximum) and the box lies inside.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise ValueError(f"A bead image is 2D or 3D, got shape {img.shape}.")
    shape = _as_shape(shape)
    if len(shape) != img.ndim:
        raise ValueError(f"The PSF box {shape} and the bead image {img.shape} differ in dimensions.")
    if saturation is None and img.dtype.kind in "ui":
        saturation = float(np.iinfo(img.dtype).max)
    data = img.astype(np.float64)
    smooth = ndi.gaussian_filter(data, 1.0)
    background = float(np.median(smooth))
    noise = 1.4826 * float(np.median(np.abs(data - np.median(data)))) or 1e-3 * float(np.ptp(data)) or 1.0
    candidates = np.argwhere((smooth == ndi.maximum_filter(smooth, size=3)) & (smooth > background + 3 * noise))
    heights = smooth[tuple(candidates.T)]

    def clipped(p) -> bool:
        window = data[tuple(slice(max(c - 1, 0), c + 2) for c in p)]
        peak = window.max()
        return bool((saturation is not None and peak >= saturation) or
                    (peak == data.max() and (window == peak).sum() > 1))

    is_clipped = np.array([clipped(p) for p in candidates], dtype=bool)
    if threshold is None:
        top = heights[~is_clipped].max() if (~is_clipped).any() else background
        threshold = background + max(8 * noise, 0.1 * (top - background))
    half = np.array(shape) // 2
    if min_separation is None:
        min_separation = float(np.linalg.norm(half))
    neighbors = candidates[heights > background + 0.5 * (threshold - background)]
    keep = []
    for p, height, clip in zip(candidates, heights, is_clipped):
        if clip or height <= threshold:
            continue
        if np.any(p < half) or np.any(p >= np.array(img.shape) - half):
            continue
        dist = np.linalg.norm(neighbors - p, axis=1)
        if np.any((dist > 0) & (dist < min_separation)):
            continue
        keep.append(p)
    return np.array(keep, dtype=int).reshape(-1, img.ndim)


def _crop(img: np.ndarray, center: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    return img[tuple(slice(c - s // 2, c - s // 2 + s) for c, s in zip(center, shape))]


def from_beads(image, shape: Sequence[int], min_separation: float | None = None, threshold: float | None = None,
               saturation: float | None = None, background: float | None = None, upsample: int = 20,
               denoise: bool = True, lateral_symmetry: bool = False) -> np.ndarray:
    """A measured PSF from an image of many sub-resolution beads (Huygens/PSF-distiller style).

    Isolated beads are found by :func:`detect_beads`; each box (``shape`` plus a 2-pixel margin) has the
    ``background`` subtracted (default: the image's median — beads are sparse, and out of focus a PSF's
    wings reach a box's border, so the border is no background estimate) and is registered to the running
    average with sub-pixel precision (upsampled phase cross-correlation, Guizar-Sicairos et al., Opt.
    Lett. 33 (2008) 156). The average's centroid gives one common offset, and every bead is Fourier-shifted
    once, by its registration shift plus that offset, inside a box padded with the image around it (so no
    second, circular shift of the average rings at the box's ends). ``denoise``: empirical Wiener
    shrinkage of the average's spectrum, ``F·max(1 − N/|F|², 0)``, with the white-noise power ``N``
    measured from the beads' scatter about the average (their brightness fitted) — out of focus the
    PSF's planes are dim and the noise is what remains. ``lateral_symmetry``: average the 8 symmetries of
    the square pixel grid (flips and the x↔y swap) — exact for a rotationally symmetric PSF (aberration-free,
    defocus, spherical aberration), wrong for astigmatism or coma. Cropped to ``shape``, clipped at 0 and
    normalized to sum 1.
    """
    from skimage.registration import phase_cross_correlation

    img = np.asarray(image, dtype=np.float64)
    shape = _as_shape(shape)
    box = tuple(s + 4 for s in shape)
    beads = detect_beads(image, box, min_separation=min_separation, threshold=threshold, saturation=saturation)
    if len(beads) == 0:
        raise ValueError("No isolated, unclipped bead found; lower the threshold or the minimum separation, or "
                         "check that the box fits around the beads.")
    if background is None:
        background = float(np.median(img))
    pad = 4  # image around each box, so that the Fourier shift does not wrap the box's ends around
    padded = np.pad(img - background, pad, mode="symmetric")
    crops = [np.fft.fftn(_crop(padded, p + pad, tuple(b + 2 * pad for b in box))) for p in beads]
    inner = tuple(slice(pad, pad + n) for n in box)

    def aligned(shifts) -> np.ndarray:
        return np.stack([np.real(np.fft.ifftn(ndi.fourier_shift(c, s)))[inner] for c, s in zip(crops, shifts)])

    shifts = np.zeros((len(beads), img.ndim))
    reference = aligned(shifts)[int(np.argmax([_crop(padded, p + pad, box).max() for p in beads]))]
    for _ in range(2):
        shifts = np.array([phase_cross_correlation(reference, np.real(np.fft.ifftn(c))[inner],
                                                   upsample_factor=upsample, normalization=None)[0] for c in crops])
        reference = aligned(shifts).sum(axis=0)
    offset = np.zeros(img.ndim)
    for _ in range(2):  # center the average on the box's central voxel (centroid of its positive part)
        offset = offset + center_of_mass_shift(reference)
        stack = aligned(shifts + offset)
        reference = stack.sum(axis=0)
    if denoise and len(beads) >= 3:
        reference = _wiener_shrink(reference, stack)
    if lateral_symmetry:
        views = [reference, np.flip(reference, -1), np.flip(reference, -2), np.flip(reference, (-2, -1))]
        reference = np.mean(views + [np.swapaxes(v, -1, -2) for v in views], axis=0)
    starts = [(n - t) // 2 for n, t in zip(box, shape)]
    psf = np.clip(reference[tuple(slice(s, s + t) for s, t in zip(starts, shape))], 0, None)
    if not psf.sum() > 0:
        raise ValueError("The averaged beads are empty after background subtraction; check the background.")
    return (psf / psf.sum()).astype(np.float32)


def _wiener_shrink(total: np.ndarray, stack: np.ndarray) -> np.ndarray:
    """Empirical Wiener filter of the sum ``total`` of the aligned beads ``stack``: the noise power of the sum
    is the beads' scatter about their fitted multiple of the average (white, so flat in frequency)."""
    n = len(stack)
    brightness = stack.reshape(n, -1).sum(axis=1) / total.sum()
    scatter = stack - brightness.reshape((n,) + (1,) * total.ndim) * total
    noise_power = float((scatter**2).sum()) * n / (n - 1)  # E|F_noise(k)|² of the sum (Parseval, unnormalized FFT)
    spectrum = np.fft.fftn(total)
    power = ndi.uniform_filter(np.abs(spectrum) ** 2, size=3, mode="wrap")
    gain = np.clip(1.0 - noise_power / np.maximum(power, 1e-300), 0.0, 1.0)
    return np.real(np.fft.ifftn(spectrum * gain))


def _fourier_interpolation_matrix(n_in: int, n_out: int, ratio: float, integrated: bool) -> np.ndarray:
    """(n_out, n_in) matrix evaluating the band-limited (trigonometric) interpolant of ``n_in`` samples at
    the centered positions ``c_in + (j − c_out) · ratio``; with ``integrated`` the samples are pixel
    averages, and the output averages over its own (``ratio`` times smaller or larger) pixel."""
    k = np.fft.fftfreq(n_in) * n_in  # integer frequencies
    c_in, c_out = (n_in - 1) / 2, (n_out - 1) / 2
    t = c_in + (np.arange(n_out) - c_out) * ratio
    weights = np.ones(n_in)
    if n_in % 2 == 0:
        weights[n_in // 2] = 0.5  # split the Nyquist term symmetrically
    if integrated:
        f = k / n_in
        weights = weights * np.sinc(f * ratio) / np.sinc(f)
    basis = np.exp(2j * np.pi * np.outer(t, k) / n_in) * weights  # (n_out, n_in) in frequency
    dft = np.exp(-2j * np.pi * np.outer(k, np.arange(n_in)) / n_in)  # (n_in freq, n_in samples)
    m = np.real(basis @ dft) / n_in
    m[(t < -0.5) | (t > n_in - 0.5)] = 0.0  # no extrapolation beyond the measured box
    return m


def resample(psf, from_voxel_um: float | Sequence[float], to_voxel_um: float | Sequence[float],
             shape: Sequence[int] | None = None, pixel_integrated: bool = True) -> np.ndarray:
    """Resample a PSF from one voxel size to another (µm per axis) by band-limited Fourier interpolation.

    The PSF's center stays on the central pixel; ``shape`` defaults to the same physical extent (odd sizes).
    ``pixel_integrated``: lateral samples are averages over the camera pixel (as measured, and as
    :func:`widefield` computes them), so the interpolant is de-averaged over the old pixel and averaged
    over the new one. The result is clipped at zero and normalized to sum 1.
    """
    h = np.asarray(psf, dtype=np.float64)
    if h.ndim not in (2, 3) or not np.isfinite(h).all():
        raise ValueError(f"A PSF is a finite 2D or 3D array, got shape {h.shape}.")
    src = np.broadcast_to(np.asarray(from_voxel_um, dtype=np.float64), (h.ndim,))
    dst = np.broadcast_to(np.asarray(to_voxel_um, dtype=np.float64), (h.ndim,))
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst)) and np.all(src > 0) and np.all(dst > 0)):
        raise ValueError(f"Voxel sizes must be positive and finite (µm), got {src.tolist()} -> {dst.tolist()}.")
    if shape is None:
        shape = tuple(max(int(round(n * s / d)) | 1, 1) for n, s, d in zip(h.shape, src, dst))
    shape = _as_shape(shape)
    if len(shape) != h.ndim:
        raise ValueError(f"shape {shape} has {len(shape)} sizes for a {h.ndim}-D PSF.")
    out = h
    for ax, (n_out, s, d) in enumerate(zip(shape, src, dst)):
        lateral = ax >= h.ndim - 2
        m = _fourier_interpolation_matrix(out.shape[ax], n_out, d / s, integrated=pixel_integrated and lateral)
        out = np.moveaxis(np.tensordot(m, np.moveaxis(out, ax, 0), axes=(1, 0)), 0, ax)
    out = np.clip(out, 0, None)
    if not out.sum() > 0:
        raise ValueError("The resampled PSF is empty.")
    return (out / out.sum()).astype(np.float32)


@dataclass
class PSFCheck:
    """What :func:`check` found: ``ok`` and one message per problem (empty when all is well)."""

    ok: bool
    offset_px: tuple[float, ...]
    total: float
    z_edge_fraction: float | None
    messages: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        head = "PSF ok" if self.ok else "PSF has problems"
        offset = ", ".join(f"{o:+.2f}" for o in self.offset_px)
        lines = [f"{head}: centroid offset ({offset}) px, sum {self.total:.4f}"
                 + (f", end planes peak at {100 * self.z_edge_fraction:.1f}% of the maximum"
                    if self.z_edge_fraction is not None else "")]
        return "\n".join(lines + [f"- {m}" for m in self.messages])


def check(psf, voxel_um: float | Sequence[float], data_voxel_um: float | Sequence[float],
          max_offset_px: float = 0.5, max_z_edge: float = 0.05) -> PSFCheck:
    """Check a PSF before use: voxel size equal to the data's (else a ``ValueError``: resample it with
    :func:`resample`, never use it silently), centered within ``max_offset_px``, normalized (sum 1),
    non-negative, and — in 3D — long enough in z (the brightest pixel of either end plane below
    ``max_z_edge`` of the PSF's peak: the axial fall-off is inside the box)."""
    h = np.asarray(psf, dtype=np.float64)
    if h.ndim not in (2, 3) or h.size == 0 or not np.isfinite(h).all():
        raise ValueError(f"A PSF is a finite 2D or 3D array, got shape {h.shape}.")
    voxel = np.broadcast_to(np.asarray(voxel_um, dtype=np.float64), (h.ndim,))
    data_voxel = np.asarray(data_voxel_um, dtype=np.float64)
    data_voxel = np.broadcast_to(data_voxel, (h.ndim,)) if data_voxel.ndim == 0 else data_voxel[-h.ndim:]
    for what, v in (("PSF's", voxel), ("data's", data_voxel)):
        if not (np.all(np.isfinite(v)) and np.all(v > 0)):
            raise ValueError(f"The {what} voxel size must be positive and finite (µm), got {v.tolist()}.")
    if data_voxel.shape != (h.ndim,):
        raise ValueError(f"The data's voxel size {list(data_voxel)} does not cover the PSF's {h.ndim} axes.")
    if not np.allclose(voxel, data_voxel, rtol=1e-3):
        raise ValueError(f"The PSF's voxel size {tuple(voxel.round(5))} µm differs from the data's "
                         f"{tuple(data_voxel.round(5))} µm; resample it first "
                         f"(ni.psf.resample(psf, {tuple(voxel.round(5))}, {tuple(data_voxel.round(5))})).")
    messages = []
    total = float(h.sum())
    if h.min() < -1e-6 * abs(h).max():
        messages.append("it has negative values: subtract less background or clip at zero")
    if abs(total - 1) > 1e-3:
        messages.append(f"it sums to {total:.4g}, not 1: normalize it (a Blur operator does so itself)")
    offset = tuple(float(-s) for s in center_of_mass_shift(h))
    if max(abs(o) for o in offset) > max_offset_px:
        messages.append(f"its centroid is {offset} px from the central pixel: center it (ni.psf.from_bead)")
    z_edge = None
    if h.ndim == 3:
        peaks = h.max(axis=(1, 2))
        z_edge = float(max(peaks[0], peaks[-1]) / peaks.max()) if peaks.max() > 0 else 1.0
        if z_edge > max_z_edge:
            messages.append(f"it is cut short in z: its end planes still peak at {100 * z_edge:.0f}% of the "
                            "PSF's maximum; use more z-planes")
    return PSFCheck(ok=not messages, offset_px=offset, total=total, z_edge_fraction=z_edge, messages=messages)


def otf(psf, shape: Sequence[int] | None = None) -> np.ndarray:
    """Optical transfer function ``Ĥ(f) = F[h](f) / F[h](0)``, zero frequency at the center (fftshift).

    ``shape`` zero-pads the PSF for a finer frequency grid. ``np.abs`` of it is the MTF.
    """
    h = np.asarray(psf, dtype=np.float64)
    if h.ndim not in (2, 3):
        raise ValueError(f"A PSF is 2D or 3D, got shape {h.shape}.")
    if not np.isfinite(h).all():
        raise ValueError("The PSF contains NaN or infinite values.")
    if not h.sum() > 0:
        raise ValueError(f"The PSF must sum to a positive value to normalize its OTF, got {h.sum():.3g}.")
    shape = tuple(h.shape) if shape is None else tuple(int(s) for s in shape)
    if len(shape) != h.ndim or any(s < n for s, n in zip(shape, h.shape)):
        raise ValueError(f"The OTF grid {shape} must be at least the PSF's shape {h.shape}.")
    padded = np.zeros(shape)
    padded[tuple(slice(0, n) for n in h.shape)] = h
    padded = np.roll(padded, tuple(-(n // 2) for n in h.shape), axis=tuple(range(h.ndim)))
    H = np.fft.fftn(padded)
    return np.fft.fftshift(H / H.flat[0]).astype(np.complex64)
