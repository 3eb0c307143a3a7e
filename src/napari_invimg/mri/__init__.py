"""MRI: k-space operators (Cartesian 2D/3D, non-Cartesian), sampling masks, coil maps, phantoms, fastMRI files.

Importing this module registers the MRI operators (for ``from_spec``) and the MRI methods ``cg_sense`` and ``sparse_laplace`` (a posterior);
zero-filling and compressed sensing are the generic ``adjoint``, ``wavelet`` and ``tv`` methods.
"""

from . import methods, posterior  # noqa: F401  (register the MRI methods)
from .coils import birdcage, calibration_region, espirit, map_correlation, rss, sense_combine
from .io import Scan, load, save_h5
from .masks import MASK_KINDS, acceleration_of, default_center_fraction, mask, radial_trajectory
from .operators import (CartesianMRI, GatheredCartesianMRI, NonCartesianMRI, coil_compression, density_compensation,
                        fft_centered, ifft_centered)
from .phantoms import (TEST_PHANTOMS, SimulatedScan, brain, flat_ellipses, noise_sigma_for_snr, random_ellipses, shepp_logan,
                       simulate_kspace, training_magnitudes)

__all__ = [
    "CartesianMRI", "GatheredCartesianMRI", "NonCartesianMRI", "fft_centered", "ifft_centered", "density_compensation",
    "coil_compression",
    "mask", "MASK_KINDS", "radial_trajectory", "default_center_fraction", "acceleration_of",
    "birdcage", "espirit", "rss", "sense_combine", "calibration_region", "map_correlation",
    "shepp_logan", "brain", "random_ellipses", "flat_ellipses", "training_magnitudes", "TEST_PHANTOMS", "simulate_kspace", "SimulatedScan", "noise_sigma_for_snr",
    "Scan", "load", "save_h5",
]
