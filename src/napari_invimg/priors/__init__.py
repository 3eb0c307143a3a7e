"""Regularizers and denoisers (floor 1)."""

from .base import AnalysisRegularizer, Regularizer, SmoothRegularizer, get_regularizer, regularizer_names
from .constraints import Flux, Positivity
from .denoisers import Denoiser, denoiser_names, get_denoiser, score
from .differences import gradient, gradient_adjoint, laplacian
from .hessian import HessianSchatten
from .tikhonov import Tikhonov
from .tv import TotalVariation
from .wavelet import WaveletSparsity

__all__ = [
    "gradient", "gradient_adjoint", "laplacian", "Denoiser", "denoiser_names", "get_denoiser", "score",
    "Regularizer", "SmoothRegularizer", "AnalysisRegularizer", "get_regularizer", "regularizer_names",
    "TotalVariation", "WaveletSparsity", "HessianSchatten", "Tikhonov", "Positivity", "Flux",
]
