"""napari sample data: synthetic fluorescence (2D and a small 3D stack) with its measurement, ``cell``, a 3D
beads stack (for the PSF workbench), MRI phantoms with their undersampled multi-coil k-space (for the MRI dock)
and a simulated black-hole observation (for the Black hole imaging dock).

Everything is generated offline and deterministically (fixed seeds). The measurement layers carry
``metadata["invimg"]`` with the operator and noise specs that made them, so the Reconstruct widget
picks the forward model up without retyping anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import __version__, datasets, operators, psf, simulate
from .operators.noise import PoissonGaussian

__all__ = ["fluorescence_2d", "fluorescence_3d", "cell", "beads_3d", "black_hole", "mri_brain", "mri_shepp_logan",
           "mri_phantom", "PIXEL_SIZE_UM", "Z_STEP_UM"]

#: lateral pixel size (µm) of the synthetic data: a 100× / 1.4 NA objective on a 6.5 µm camera pixel
PIXEL_SIZE_UM = 0.065
#: axial step (µm) of the synthetic 3D stack
Z_STEP_UM = 0.2

LayerDataTuple = tuple[np.ndarray, dict[str, Any], str]


def _pair(truth: np.ndarray, kernel: np.ndarray, scale: tuple[float, ...], name: str,
          noise: PoissonGaussian, seed: int) -> list[LayerDataTuple]:
    """Ground truth and its blurred noisy measurement as two image layers in µm."""
    A = operators.Blur(kernel, truth.shape, boundary="reflect")
    y = simulate(truth, A, noise, seed=seed).astype(np.float32)
    units = ("µm",) * truth.ndim
    truth_name = f"{name} truth"
    meta = {"invimg": {"operator": A.spec(), "noise": noise.spec(), "seed": seed, "source": truth_name,
                       "version": __version__}}
    return [
        (truth, {"name": truth_name, "scale": scale, "units": units, "colormap": "gray"}, "image"),
        (y, {"name": f"{name} measurement", "scale": scale, "units": units, "colormap": "gray",
             "metadata": meta}, "image"),
    ]


def fluorescence_2d() -> list[LayerDataTuple]:
    """256×256 synthetic fluorescence and its widefield (Born–Wolf, NA 1.4, 520 nm) Poisson–Gaussian measurement."""
    truth = datasets.fluorescence((256, 256), seed=0)
    kernel = psf.widefield((31, 31), wavelength_um=0.52, na=1.4, pixel_size_um=PIXEL_SIZE_UM)
    return _pair(truth, kernel, (PIXEL_SIZE_UM, PIXEL_SIZE_UM), "fluorescence",
                 PoissonGaussian(gain=0.01, sigma=0.01), seed=0)


def fluorescence_3d() -> list[LayerDataTuple]:
    """A 32×128×128 synthetic stack and its 3D widefield (Born–Wolf) Poisson–Gaussian measurement."""
    truth = datasets.fluorescence((32, 128, 128), seed=1)
    kernel = psf.widefield((15, 31, 31), wavelength_um=0.52, na=1.4, pixel_size_um=PIXEL_SIZE_UM,
                           z_step_um=Z_STEP_UM)
    return _pair(truth, kernel, (Z_STEP_UM, PIXEL_SIZE_UM, PIXEL_SIZE_UM), "fluorescence 3D",
                 PoissonGaussian(gain=0.01, sigma=0.01), seed=1)


def cell() -> list[LayerDataTuple]:
    """scikit-image's bundled ``cell`` micrograph, rescaled to [0, 1]."""
    return [(datasets.cell(), {"name": "cell", "colormap": "gray"}, "image")]


def beads_3d() -> list[LayerDataTuple]:
    """A 32×128×128 stack of 12 sub-resolution beads imaged by the 3D widefield PSF (NA 1.4, 520 nm) with
    Poisson noise, and that PSF: for the PSF workbench (extract a PSF from the beads, compare to the truth)."""
    kernel = psf.widefield((15, 21, 21), wavelength_um=0.52, na=1.4, pixel_size_um=PIXEL_SIZE_UM, z_step_um=Z_STEP_UM)
    counts, centers = datasets.beads((32, 128, 128), kernel, n=12, photons=2e5, background=10.0, seed=0)
    scale = (Z_STEP_UM, PIXEL_SIZE_UM, PIXEL_SIZE_UM)
    units = ("µm",) * 3
    optics = {"na": 1.4, "wavelength_um": 0.52, "immersion_index": 1.515, "pixel_size_um": list(scale),
              "axes": "zyx", "bead_centers": centers.tolist()}
    return [
        (counts, {"name": "beads", "scale": scale, "units": units, "colormap": "gray",
                  "metadata": {"invimg_file": optics}}, "image"),
        (kernel, {"name": "beads PSF (truth)", "scale": scale, "units": units, "colormap": "magma",
                  "visible": False}, "image"),
    ]


def black_hole() -> list[LayerDataTuple]:
    """An EHT 2017-like observation of a crescent (M87*, 230 GHz, one night, thermal noise, 10 % gain errors):
    the true sky and the dirty image carrying the observation (``metadata["invimg_observation"]``), with
    its (u, v) coverage, ready for the Black hole imaging dock."""
    from . import blackhole
    from .widgets.uvfits_reader import FOV_UAS, NPIX, dirty_image_layers, image_geometry

    sky = blackhole.models.crescent(NPIX, FOV_UAS)
    obs = blackhole.simulate(sky, fov_uas=FOV_UAS, gain_error=0.1, seed=0, source="M87*")
    truth = (sky.astype(np.float32), {"name": "black hole sky (truth)", **image_geometry(NPIX, FOV_UAS),
                                      "colormap": "afmhot",
                                      "metadata": {"invimg": {"product": "sky model", "model": "crescent",
                                                              "unit": "µas", "version": __version__}}}, "image")
    return [truth, *dirty_image_layers(obs, "M87* (simulated)")]


def mri_phantom(kind: str, size: int) -> np.ndarray:
    """The complex brain phantom (``kind="brain"``) or Shepp–Logan (``"shepp_logan"``), ``size``×``size``."""
    from . import mri

    return mri.brain((size, size)) if kind == "brain" else mri.shepp_logan((size, size)).astype(np.complex64)


def _mri_sample(kind: str) -> list[LayerDataTuple]:
    from . import mri
    from .widgets.kspace_reader import log_magnitude

    x = mri_phantom(kind, 256)
    sc = mri.simulate_kspace(x, 8, kind="equispaced", acceleration=4, snr_db=30.0, seed=0)
    meta = {"invimg": {"kspace": sc.kspace, "coil_maps": sc.coil_maps, "mask": sc.mask, "sigma": sc.sigma,
                       "operator": sc.operator.spec(), "source": kind, "acceleration": sc.acceleration}}
    return [(np.abs(x), {"name": f"{kind} · truth", "colormap": "gray"}, "image"),
            (log_magnitude(sc.kspace), {"name": f"{kind} · k-space", "metadata": meta, "colormap": "gray"}, "image")]


def mri_brain() -> list[LayerDataTuple]:
    """The complex brain phantom and its 8-coil, 4× undersampled k-space at 30 dB."""
    return _mri_sample("brain")


def mri_shepp_logan() -> list[LayerDataTuple]:
    """Shepp–Logan and its 8-coil, 4× undersampled k-space at 30 dB."""
    return _mri_sample("shepp_logan")
