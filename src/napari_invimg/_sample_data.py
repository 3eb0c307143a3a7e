"""napari sample data: synthetic fluorescence (2D and a small 3D stack) with its measurement, and ``cell``.

Everything is generated offline and deterministically (fixed seeds). The measurement layers carry
``metadata["invimg"]`` with the operator and noise specs that made them, so the Reconstruct widget
picks the forward model up without retyping anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import __version__, datasets, operators, psf, simulate
from .operators.noise import PoissonGaussian

__all__ = ["fluorescence_2d", "fluorescence_3d", "cell", "PIXEL_SIZE_UM", "Z_STEP_UM"]

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
