"""The shipped learned denoiser: a small noise-conditional UNet (DRUNet-like) as a :class:`Denoiser`.

``D(x, σ)`` is trained on images in [0, 1] for σ from 0.002 to 2 (Gaussian and Poisson–Gaussian
noise), so by Tweedie's formula ``(D(x, σ) − x)/σ²`` approximates the score ``∇ log p_σ(x)`` over the
whole range a variance-exploding diffusion uses (Zhang et al., IEEE TPAMI 44 (2022) 6360; Karras et al.,
NeurIPS 2022). 3D stacks are denoised slice by slice.
"""

from __future__ import annotations

import importlib.resources
import math
import os
import weakref
from pathlib import Path
from typing import Any

import torch

from ..nets.drunet import SmallDRUNet, load_weights, save_weights, shipped_weights
from .denoisers import Denoiser, dihedral_mean

__all__ = ["LearnedDenoiser", "MRIDenoiser"]

_SIGMA_RANGE = (0.002, 2.0)
_CACHE: dict[tuple, tuple[SmallDRUNet, dict[str, Any]]] = {}
_OOD_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its reference statistics
#: pixels per forward pass (bounds the memory of large stacks)
_CHUNK_PIXELS = 2**22


def _load(weights: str | Path | None, device: torch.device,
          shipped: str = "denoiser.pt") -> tuple[SmallDRUNet, dict[str, Any]]:
    """Load (once per file version and device) the model of a weights file; ``None`` = the shipped file ``shipped``."""
    if weights is None:
        key: tuple = ("shipped", shipped, str(device))
    else:
        path = Path(weights).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"No denoiser weights file at {weights}.")
        key = (str(path), os.path.getmtime(path), str(device))
    if key not in _CACHE:
        if weights is None:
            with importlib.resources.as_file(shipped_weights(shipped)) as path:
                model, meta = load_weights(path, device)
        else:
            model, meta = load_weights(weights, device)
        model.requires_grad_(False)
        _CACHE[key] = (model, meta)
    return _CACHE[key]


class LearnedDenoiser(Denoiser):
    """The shipped noise-conditional CNN denoiser, or one trained with ``ni.train_denoiser`` (``weights=path``).

    ``x`` in the images' [0, 1] units; ``σ`` a float or a tensor of one σ per leading batch entry; σ is
    clamped to the trained range. Runs on ``x``'s device (or ``device``), without gradients unless
    ``x`` requires them (as in DPS).

    ``self_ensemble=True`` averages the network over the 8 flips and 90° rotations of each slice
    (``priors.denoisers.dihedral_mean``, DRUNet's "+"): exactly equivariant to them, 8× the network passes. Off by
    default, and the methods (plug-and-play, RED, the samplers) build theirs without it: plug-and-play already applies
    one transform per iteration (``equivariant``). The out-of-distribution reference in the weights' metadata is the
    plain network's.
    """

    name = "drunet"
    unit_range = True  # trained on images in [0, 1]
    label = "learned CNN (DRUNet-like, shipped)"
    #: the package's weights file used when no ``weights`` are given (``nets.drunet.SHIPPED_FILES``)
    shipped_file = "denoiser.pt"

    def __init__(self, weights: str | Path | None = None, device: str | torch.device | None = None,
                 model: SmallDRUNet | None = None, metadata: dict[str, Any] | None = None,
                 self_ensemble: bool = False):
        if not isinstance(self_ensemble, bool):
            raise TypeError(f"self_ensemble must be True or False, got {self_ensemble!r}.")
        self.weights = None if weights is None else str(weights)
        #: average over the 8 flips/90° rotations (8× the network passes)
        self.self_ensemble = self_ensemble
        self.device = None if device is None else torch.device(device)
        self._model = model
        self._metadata = metadata
        if model is not None:
            model.eval().requires_grad_(False)

    # -- the model ---------------------------------------------------------------------------------
    def model(self, device: torch.device) -> SmallDRUNet:
        """The network on ``device`` (built lazily, cached per weights file and device)."""
        if self._model is None:
            self._model, self._metadata = _load(self.weights, device, self.shipped_file)
        if next(self._model.parameters()).device != device:
            if self._model_is_cached():
                return _load(self.weights, device, self.shipped_file)[0]
            self._model = self._model.to(device)
        return self._model

    def _model_is_cached(self) -> bool:
        return any(m is self._model for m, _ in _CACHE.values())

    @property
    def metadata(self) -> dict[str, Any]:
        """How the weights were trained (command, data, seed, steps, held-out PSNR ...)."""
        if self._metadata is None:
            self.model(self.device or torch.device("cpu"))
        return dict(self._metadata or {})

    @property
    def sigma_range(self) -> tuple[float, float]:
        lo, hi = self.metadata.get("sigma_range", _SIGMA_RANGE)
        return float(lo), float(hi)

    def save(self, path: str | Path) -> Path:
        """Write the weights (fp16) to ``path``; load them with ``LearnedDenoiser(weights=path)``."""
        meta = {k: v for k, v in self.metadata.items() if k != "losses"}
        model = self._model if self._model is not None else self.model(self.device or torch.device("cpu"))
        return save_weights(model, path, **meta)

    @property
    def receptive_field(self) -> int:
        """Pixels on each side of an output pixel that can change it (from the network's architecture)."""
        return self.model(self.device or torch.device("cpu")).receptive_field

    @property
    def grid(self) -> int:  # type: ignore[override]
        """Shift-equivariance period: 2^levels of the UNet (each slice is padded at its end to a multiple)."""
        return self.model(self.device or torch.device("cpu")).factor

    def ood_reference(self) -> dict[str, float]:
        """Spread of the relative denoising error on training-like crops (``nets.ood``): from the weights'
        metadata, else measured once (cached per model) on a few procedural, fluorescence and natural training images."""
        meta = self.metadata
        if "ood_reference" in meta:
            return dict(meta["ood_reference"])
        key = self.model(self.device or torch.device("cpu"))
        if key not in _OOD_CACHE:
            from ..datasets import fluorescence
            from ..nets.corpus import TRAINING_NATURAL, bundled_image, cells, dead_leaves
            from ..nets.ood import reference_statistics

            images = [fluorescence((128, 128), seed=1000 + i) for i in range(2)]
            images += [cells((128, 128), seed=i) for i in range(2)] + [dead_leaves((128, 128), seed=i) for i in range(2)]
            images += [bundled_image(name) for name in TRAINING_NATURAL[:4]]
            _OOD_CACHE[key] = reference_statistics(lambda t, s: self(t, s, 2), images, per_image=3)
        return dict(_OOD_CACHE[key])

    # -- denoising ---------------------------------------------------------------------------------
    def denoise(self, x: torch.Tensor, sigma, ndim: int) -> torch.Tensor:
        """``D(x, σ)``: the last ``ndim`` axes are the image (2D, or a 3D stack denoised slice by slice)."""
        if ndim not in (2, 3):
            raise ValueError(f"The learned denoiser handles 2D images and 3D stacks, not ndim={ndim}.")
        if x.ndim < ndim:
            raise ValueError(f"Expected an image with at least {ndim} axes, got shape {tuple(x.shape)}.")
        device = self.device or x.device
        model = self.model(device)
        lead = x.shape[:-ndim]
        h, w = x.shape[-2:]
        slices = x.reshape(-1, 1, h, w).to(device=device, dtype=torch.float32)
        sig = torch.as_tensor(sigma, dtype=torch.float32, device=device)
        if sig.numel() == 1:
            sig = sig.reshape(1).expand(slices.shape[0])
        else:
            if sig.numel() != math.prod(lead):
                raise ValueError(f"sigma must be a scalar or one value per image ({tuple(lead)}), got {tuple(sig.shape)}.")
            sig = sig.reshape(*lead, *([1] * (ndim - 2))).expand(x.shape[:-2]).reshape(-1)
        if not bool(torch.isfinite(sig).all()) or bool((sig <= 0).any()):
            raise ValueError("sigma must be positive and finite.")
        lo, hi = self.sigma_range
        sig = sig.clamp(lo, hi)
        step = max(1, _CHUNK_PIXELS // (h * w))

        def net(t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            return dihedral_mean(lambda u: model(u, s), t) if self.self_ensemble else model(t, s)

        with torch.set_grad_enabled(torch.is_grad_enabled() and x.requires_grad):
            out = torch.cat([net(slices[i:i + step], sig[i:i + step]) for i in range(0, slices.shape[0], step)])
        return out.reshape(x.shape).to(device=x.device, dtype=x.dtype)


class MRIDenoiser(LearnedDenoiser):
    """The same network fine-tuned on MR magnitude images at low noise (``nets/weights/denoiser_mri.pt``): random
    ellipse phantoms, ``mri.brain`` magnitudes (seeds ≥ 2) and the small signed imaginary part a phase-removed image
    keeps, Gaussian noise σ 0.002–0.08 (``scripts/train_denoiser.py --corpus mri``; the weights' metadata). The MRI
    operators name it as the plug-and-play denoiser of their images (``LinearOperator.preferred_denoiser``);
    ``weights=`` replaces it by the user's file as for ``"drunet"``."""

    name = "drunet_mri"
    label = "learned CNN fine-tuned on MR magnitudes (shipped)"
    shipped_file = "denoiser_mri.pt"
