"""Regularisers and denoisers (floor 1)."""

import importlib
import pkgutil

from .denoisers import Denoiser, denoiser_names, get_denoiser, score
from .differences import gradient, gradient_adjoint, laplacian


def _discover() -> None:
    """Import every module of this package so that the denoisers they define register themselves."""
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


__all__ = ["gradient", "gradient_adjoint", "laplacian", "Denoiser", "denoiser_names", "get_denoiser", "score"]
