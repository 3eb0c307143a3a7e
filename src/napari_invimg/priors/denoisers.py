"""Denoisers ``D(x, σ)``: the interface that plug-and-play, RED, PnP-ULA and diffusion samplers use.

A denoiser maps a noisy image ``x`` (tensor, trailing dims = the image, any leading batch dims) and a
noise standard deviation ``σ`` (float, in the image's units) to an estimate of the clean image. By
Tweedie's formula its residual gives the score of the noisy-image density,
``∇ log p_σ(x) ≈ (D(x, σ) − x) / σ²``. Register a new denoiser by subclassing with a ``name``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from .._registry import Registry, import_submodules

__all__ = ["Denoiser", "ProxDenoiser", "denoiser_host_round_trip", "denoiser_names", "dihedral", "dihedral_mean",
           "get_denoiser", "score"]

DENOISERS = Registry("denoiser", discover=import_submodules("napari_invimg.priors"))


class Denoiser(ABC):
    """``D(x, σ)`` for real tensors; complex images are denoised as real and imaginary parts."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    #: the result is unchanged by shifts of the image by multiples of ``grid`` pixels along its last two axes
    #: (a network with stride-2 levels: 2^levels); tiles must start on this grid
    grid: ClassVar[int] = 1
    #: True when the denoiser was trained on images in ≈[0, 1] (a network): methods then run in those units
    unit_range: ClassVar[bool] = False
    #: why the denoiser's data leave the torch device (a CPU-only library), or ``None`` when it runs on it;
    #: :func:`napari_invimg.reconstruct` records it in ``info["host_round_trip"]``
    host_round_trip: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            DENOISERS.add(cls.name, cls)

    @abstractmethod
    def denoise(self, x: torch.Tensor, sigma: float, ndim: int) -> torch.Tensor:
        """Denoise a real tensor whose last ``ndim`` axes are the image."""

    def __call__(self, x: torch.Tensor, sigma: float, ndim: int = 2) -> torch.Tensor:
        if x.is_complex():
            return torch.complex(self.denoise(x.real, sigma, ndim), self.denoise(x.imag, sigma, ndim))
        return self.denoise(x, sigma, ndim)


class ProxDenoiser(Denoiser):
    """``D(x, σ) = prox_{strength·σ·R}(x)`` for a given regularizer ``R`` (its ``ndim`` must match); its
    one-pass :meth:`~napari_invimg.priors.base.Regularizer.shrink` where it has one (undecimated wavelets)."""

    def __init__(self, regularizer: Any, strength: float = 1.0):
        if not strength > 0:
            raise ValueError("The denoiser strength must be positive.")
        self.regularizer, self.strength = regularizer, float(strength)

    def denoise(self, x: torch.Tensor, sigma: float, ndim: int) -> torch.Tensor:
        if ndim != self.regularizer.ndim:
            raise ValueError(f"This denoiser was built for {self.regularizer.ndim}D images, got ndim={ndim}.")
        with torch.no_grad():
            return self.regularizer.shrink(x, self.strength * float(sigma))


def denoiser_names() -> list[str]:
    """Names of the available denoisers (importing the modules that define them)."""
    return DENOISERS.names()


def denoiser_unit_range(name: str) -> bool:
    """Whether the denoiser ``name`` works on images in ≈[0, 1] (``False`` for an unknown name)."""
    if name not in DENOISERS.names():
        return False
    return bool(DENOISERS.get(name).unit_range)


def denoiser_host_round_trip(name: Any) -> str | None:
    """Why the denoiser ``name`` copies its data to host memory (CPU-only code), or ``None`` (also for a name that
    is not a denoiser's)."""
    if not isinstance(name, str) or name not in DENOISERS.names():
        return None
    return DENOISERS.get(name).host_round_trip


def dihedral(f, x: torch.Tensor, k: int) -> torch.Tensor:
    """``T_k⁻¹ f(T_k x)`` for the k-th (mod 8) element ``T_k`` of the flips and 90° rotations of the last two axes: a
    learned denoiser made equivariant on average, which keeps plug-and-play from drifting (Terris, Moreau, Pustelnik &
    Tachella, "Equivariant plug-and-play image reconstruction", CVPR 2024)."""
    rot, flip = k % 4, (k // 4) % 2
    t = torch.rot90(x, rot, dims=(-2, -1))
    t = t.flip(-1) if flip else t
    out = f(t)
    out = out.flip(-1) if flip else out
    return torch.rot90(out, -rot, dims=(-2, -1))


def dihedral_mean(f, x: torch.Tensor) -> torch.Tensor:
    """``(1/8) Σ_k T_k⁻¹ f(T_k x)`` over the 8 flips and 90° rotations of the last two axes: test-time self-ensemble,
    an exactly flip/rotation-equivariant ``f`` at 8× the cost (Lim et al., "EDSR", CVPRW 2017; DRUNet's "+": Zhang
    et al., IEEE TPAMI 44 (2022) 6360)."""
    out = dihedral(f, x, 0)
    for k in range(1, 8):
        out = out + dihedral(f, x, k)
    return out / 8


def get_denoiser(name: str, **kwargs) -> Denoiser:
    """Build a denoiser by name (``"tv"``, ``"wavelet"``, ``"hessian"``, ``"nlm"``, ``"drunet"``, ...)."""
    return DENOISERS.get(name)(**kwargs)


def score(denoiser: Denoiser, x: torch.Tensor, sigma: float, ndim: int = 2) -> torch.Tensor:
    """Tweedie score ``(D(x, σ) − x) / σ²``."""
    return (denoiser(x, sigma, ndim) - x) / (sigma * sigma)
