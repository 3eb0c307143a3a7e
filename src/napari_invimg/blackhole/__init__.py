"""Black-hole (VLBI) imaging: telescope arrays, observations, visibility and closure operators, RML and CLEAN.

    import napari_invimg as ni
    obs = ni.blackhole.simulate(ni.blackhole.models.ring(), fov_uas=160.0, array="EHT2017")
    A = ni.blackhole.Interferometer(obs, npix=64, fov_uas=160.0)
    rec = ni.reconstruct(obs.vis, A, "rml", noise=ni.noise.Gaussian(obs.sigma))
"""

from . import models  # noqa: F401
from .arrays import SOURCES, Array, Coverage, array, array_names, coverage, gmst_hours, resolution_uas
from .compare import (blur_reconstruction, blur_to_resolution, centroid, closure_gauge, flux_interval,
                      nxcorr_aligned, shift_to_centroid, unit_flux)
from .closures import ClosureDesign, closure_design, closure_phases, closure_sigmas, log_closure_amplitudes
from .observation import Observation, apply_station_gains, load_uvfits, save_uvfits, thermal_sigma
from .operators import Closures, Interferometer, gaussian_image
from .simulation import simulate

__all__ = [
    "SOURCES", "Array", "Coverage", "array", "array_names", "coverage", "gmst_hours", "resolution_uas",
    "ClosureDesign", "closure_design", "closure_phases", "closure_sigmas", "log_closure_amplitudes",
    "Observation", "apply_station_gains", "load_uvfits", "save_uvfits", "simulate", "thermal_sigma",
    "Closures", "Interferometer", "gaussian_image", "models", "nxcorr_aligned", "blur_to_resolution",
    "blur_reconstruction", "centroid", "shift_to_centroid", "unit_flux", "flux_interval",
    "closure_gauge",
]

from . import clean, posterior, rml  # noqa: E402,F401  (registers the methods)
