"""Training the noise-conditional denoiser: supervised on clean images, or self-supervised on noisy ones.

Supervised: random crops ``x`` of clean images, noise of a random level ``σ`` (log-uniform; Gaussian or
Poisson–Gaussian, conditioned on the effective σ), loss ``λ(σ)·|D(x + n, σ) − x|²``.
Self-supervised (Noise2Self, Batson & Royer, ICML 2019; Noise2Void, Krull et al., CVPR 2019): crops of
the measurement ``y``; a random set ``J`` of pixels is replaced by random neighbors' values and
the loss ``|D(y_J^c, σ) − y|²`` is taken on ``J`` only, whose noise the network cannot see.

:func:`train_denoiser` is the public entry point (``ni.train_denoiser``); ``scripts/train_denoiser.py``
uses the same pieces to make the shipped weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._device import resolve_device
from ..errors import Cancelled
from .drunet import SmallDRUNet, load_weights, log_uniform, save_weights
from .init import build

__all__ = ["PatchSampler", "add_noise", "blind_spot", "fit", "train_denoiser", "denoise_image", "normalize_image", "heldout_set",
           "SIGMA_RANGE", "HELDOUT_SEEDS"]

#: noise levels the shipped network is trained on (images in [0, 1])
SIGMA_RANGE = (0.002, 2.0)
#: seeds of ``datasets.fluorescence`` never used for training (held out for evaluation)
HELDOUT_SEEDS = tuple(range(8))


def heldout_set(sigmas: Sequence[float], seeds: Sequence[int] = HELDOUT_SEEDS[:4], shape: tuple[int, int] = (256, 256),
                noise_seed: int = 12345) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """``(σ, clean, noisy)`` triples: held-out synthetic fluorescence images with Gaussian noise of level σ."""
    from ..datasets import fluorescence

    rng = np.random.default_rng(noise_seed)
    out = []
    for seed in seeds:
        clean = fluorescence(shape, seed=int(seed))
        for s in sigmas:
            out.append((float(s), clean, (clean + s * rng.standard_normal(clean.shape)).astype(np.float32)))
    return out


def normalize_image(image: np.ndarray, low: float = 0.1, high: float = 99.9) -> tuple[np.ndarray, float, float]:
    """Map the ``low``–``high`` percentile range of ``image`` to [0, 1] (not clipped); returns ``(image, offset, scale)``."""
    a = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(a, [low, high])
    scale = float(hi - lo) if hi > lo else 1.0
    return ((a - lo) / scale).astype(np.float32), float(lo), scale


normalise = normalize_image  # deprecated name (issue #17: one spelling; ``normalize`` is the flag of the callers)


def _estimate_sigma(slices: Sequence[np.ndarray]) -> float:
    """Median over slices of the wavelet-MAD Gaussian noise estimate."""
    from ..operators.noise import estimate

    return float(np.median([estimate(im, "gaussian").sigma_scalar for im in slices]))


def denoise_image(image: np.ndarray, denoiser=None, sigma: float | None = None, normalize: bool = True,
                  device: str | torch.device | None = None, self_ensemble: bool = True) -> np.ndarray:
    """Denoise a 2D image or a 3D stack (slice by slice) with ``denoiser`` (default: the shipped ``"drunet"``).

    ``normalize`` maps the 0.1–99.9 percentile range to [0, 1] for the network and back afterwards;
    ``sigma`` (data units) is estimated from the image when ``None``. ``self_ensemble`` averages a learned
    denoiser over the 8 flips and 90° rotations (``LearnedDenoiser(self_ensemble=True)``; 8× the network passes,
    +0.3 to +0.9 dB on the held-out list, ``benchmarks/RESULTS.md`` §3); other denoisers are used as they are.
    """
    import copy

    from ..priors.denoisers import get_denoiser
    from ..priors.learned import LearnedDenoiser

    if not isinstance(self_ensemble, bool):
        raise TypeError(f"self_ensemble must be True or False, got {self_ensemble!r}.")
    den = get_denoiser("drunet") if denoiser is None else denoiser
    if isinstance(den, LearnedDenoiser) and den.self_ensemble != self_ensemble:
        den = copy.copy(den)  # the caller's denoiser keeps its setting; the copy shares its network
        den.self_ensemble = self_ensemble
    a = np.asarray(image)
    if a.ndim not in (2, 3) or np.iscomplexobj(a):
        raise ValueError("denoise_image takes a real 2D image or 3D stack.")
    x, offset, scale = normalize_image(a) if normalize else (a.astype(np.float32), 0.0, 1.0)
    level = _estimate_sigma(list(x) if x.ndim == 3 else [x]) if sigma is None else float(sigma) / scale
    if not np.isfinite(level) or level <= 0:
        raise ValueError("sigma must be a positive noise standard deviation.")
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(resolve_device(device))
    with torch.no_grad():
        out = den(t, level, ndim=x.ndim).cpu().numpy()
    return out * scale + offset


def _as_slices(images: np.ndarray | Sequence[np.ndarray], what: str,
               normalize: bool) -> tuple[list[np.ndarray], list[float]]:
    """2D float32 slices of an image, a stack, or a list of them (each normalized as a whole when
    ``normalize``), and each item's intensity scale."""
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    out: list[np.ndarray] = []
    scales: list[float] = []
    for im in items:
        a = np.asarray(im)
        if np.iscomplexobj(a) or a.dtype.kind not in "biuf":
            raise ValueError(f"The {what} images must be real-valued arrays.")
        if a.ndim not in (2, 3):
            raise ValueError(f"The {what} images must be 2D (Y, X) or 3D stacks (Z, Y, X); got {a.ndim} dimensions.")
        if not np.isfinite(a).all():
            raise ValueError(f"The {what} images contain NaN or infinite values.")
        a, _, scale = normalize_image(a) if normalize else (a.astype(np.float32), 0.0, 1.0)
        out.extend([a] if a.ndim == 2 else list(a))
        scales.append(scale)
    if not out:
        raise ValueError(f"No {what} images were given.")
    return out, scales


class PatchSampler:
    """Random ``patch × patch`` crops of a list of 2D images, with random flips, 90° rotations and
    (optionally) a random affine intensity change ``a·x + b`` (``a`` in [0.3, 1]) that keeps [0, 1] images in [0, 1]."""

    def __init__(self, images: Sequence[np.ndarray], patch: int = 64, weights: Sequence[float] | None = None,
                 intensity_jitter: bool = True):
        if patch < 8:
            raise ValueError("Patches must be at least 8 pixels wide.")
        self.images = [torch.from_numpy(np.ascontiguousarray(im, dtype=np.float32)) for im in images]
        # images smaller than the patch are reflected up to its size
        self.images = [im if min(im.shape) >= patch else
                       F.pad(im[None, None], (0, max(0, patch - im.shape[1]), 0, max(0, patch - im.shape[0])),
                             mode="replicate")[0, 0] for im in self.images]
        self.patch = int(patch)
        w = np.ones(len(self.images)) if weights is None else np.asarray(weights, dtype=np.float64)
        self.weights = torch.from_numpy(w / w.sum())
        self.intensity_jitter = intensity_jitter

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``(n, 1, patch, patch)`` crops."""
        p = self.patch
        idx = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        out = torch.empty(n, 1, p, p)
        for k, i in enumerate(idx.tolist()):
            im = self.images[i]
            r = int(torch.randint(0, im.shape[0] - p + 1, (1,), generator=generator))
            c = int(torch.randint(0, im.shape[1] - p + 1, (1,), generator=generator))
            crop = im[r:r + p, c:c + p]
            rot, flip = torch.randint(0, 4, (2,), generator=generator).tolist()
            crop = torch.rot90(crop, rot)
            if flip % 2:
                crop = crop.flip(-1)
            out[k, 0] = crop
        if self.intensity_jitter:
            a = 0.3 + 0.7 * torch.rand(n, 1, 1, 1, generator=generator)
            b = (1 - a) * 0.3 * torch.rand(n, 1, 1, 1, generator=generator)
            out = a * out + b
        return out


def add_noise(clean: torch.Tensor, sigma_range: tuple[float, float], generator: torch.Generator,
              poisson_fraction: float = 0.3, poisson_max_sigma: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy copies of ``clean`` (N, 1, H, W) and their effective noise levels (N,).

    σ is log-uniform in ``sigma_range``. A share ``poisson_fraction`` of the samples with σ ≤
    ``poisson_max_sigma`` get Poisson–Gaussian noise ``g·Poisson(x/g) + N(0, s²)`` with a random
    Poisson share ``f`` of the variance (``g = f σ²/mean x``, ``s² = (1 − f) σ²``); their effective σ
    is ``√(g·mean x + s²)``.
    """
    n = clean.shape[0]
    sigma = log_uniform(n, *sigma_range, generator).to(clean.device)
    noise = torch.randn(clean.shape, generator=generator).to(clean.device)
    noisy = clean + sigma.view(-1, 1, 1, 1) * noise
    pick = (torch.rand(n, generator=generator).to(clean.device) < poisson_fraction) & (sigma <= poisson_max_sigma)
    if bool(pick.any()):
        x = clean[pick].clamp(min=0)
        s = sigma[pick]
        mean = x.mean(dim=(1, 2, 3)).clamp(min=0.02)
        share = 0.5 + 0.5 * torch.rand(s.shape, generator=generator).to(clean.device)
        gain = share * s * s / mean
        read = ((1 - share) * s * s).sqrt()
        counts = torch.poisson((x / gain.view(-1, 1, 1, 1)).cpu(), generator=generator).to(clean.device)
        noisy[pick] = gain.view(-1, 1, 1, 1) * counts + read.view(-1, 1, 1, 1) * noise[pick]
        sigma = sigma.clone()
        sigma[pick] = (gain * x.mean(dim=(1, 2, 3)) + read * read).sqrt().clamp(min=sigma_range[0])
    return noisy, sigma


def blind_spot(noisy: torch.Tensor, fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace a random ``fraction`` of the pixels of ``noisy`` (N, 1, H, W) by the value of a random one of
    their 8 neighbors (reflecting borders), as Noise2Void; returns ``(masked input, mask)``.

    A random neighbor (rather than the neighbors' mean) keeps a masked pixel as noisy as any other, so
    the network learns to weigh the center like a neighbor, which is what it sees at inference.
    """
    n, _, h, w = noisy.shape
    mask = torch.rand(noisy.shape, generator=generator) < fraction
    which = torch.randint(0, 8, noisy.shape, generator=generator)
    padded = F.pad(noisy, (1, 1, 1, 1), mode="reflect")
    ring = torch.cat([padded[:, :, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                      for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx], dim=1)
    neighbor = torch.gather(ring, 1, which.to(noisy.device))
    mask = mask.to(noisy.device)
    return torch.where(mask, neighbor, noisy), mask.to(noisy.dtype)


def fit(model: SmallDRUNet, batch: Callable[[torch.Generator], tuple[torch.Tensor, ...]], steps: int,
        generator: torch.Generator, lr: float = 2e-3, progress: Callable[[int, int, Any], Any] | None = None,
        preview: Callable[[], np.ndarray] | None = None, preview_every: int | None = None,
        log: Callable[[int, float], None] | None = None) -> list[float]:
    """Adam with a cosine-decaying learning rate on ``model.loss(*batch(generator))`` for ``steps`` steps.

    ``progress(step, total, preview)`` is called every step (``preview`` from ``preview()`` every
    ``preview_every`` steps, else ``None``); returning ``False`` raises :class:`Cancelled`. Returns the losses.
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * i / steps)))
    every = preview_every or max(1, steps // 10)
    losses: list[float] = []
    model.train()
    try:
        for i in range(steps):
            loss = model.loss(*batch(generator))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if log is not None:
                log(i + 1, losses[-1])
            if progress is not None:
                pv = None
                if preview is not None and ((i + 1) % every == 0 or i + 1 == steps):
                    model.eval()
                    pv = preview()
                    model.train()
                if progress(i + 1, steps, pv) is False:
                    raise Cancelled("denoiser training cancelled")
    finally:
        model.eval()
    return losses


def _start_model(start: str | Path | None, device: torch.device, generator: torch.Generator) -> SmallDRUNet:
    if start is None or start == "scratch":
        return build(SmallDRUNet, generator).to(device)
    if start == "shipped":
        import importlib.resources

        from .drunet import shipped_weights

        with importlib.resources.as_file(shipped_weights()) as path:
            return load_weights(path, device)[0]
    return load_weights(start, device)[0]


def train_denoiser(clean: np.ndarray | Sequence[np.ndarray] | None = None, noisy: np.ndarray | None = None, *,
                   sigma: float | None = None, steps: int = 300, start: str | Path | None = "shipped",
                   patch: int = 32, batch_size: int = 16, lr: float | None = None,
                   sigma_range: tuple[float, float] = SIGMA_RANGE, mask_fraction: float = 0.05,
                   normalize: bool = True, seed: int = 0, device: str | torch.device | None = None,
                   progress: Callable[[int, int, Any], Any] | None = None, save: str | Path | None = None):
    """Fine-tune or train the noise-conditional denoiser on your own data; returns a
    :class:`~napari_invimg.priors.learned.LearnedDenoiser` (usable by every denoiser-based method).

    Give exactly one of:

    - ``clean``: images you trust (2D, 3D stacks split into slices, or a list): supervised training on
      crops with synthetic Gaussian / Poisson–Gaussian noise, σ log-uniform in ``sigma_range``.
    - ``noisy``: the measurement alone (2D or a 3D stack): self-supervised blind-spot training
      (Noise2Self/Noise2Void) at the noise level ``sigma`` (estimated from ``noisy`` when ``None``).

    ``start``: ``"shipped"`` (fine-tune the shipped weights), ``"scratch"``/``None``, or a weights file.
    ``normalize`` maps each image's 0.1–99.9 percentile range to [0, 1] first (the network's units;
    ``sigma`` is given in the data's units and converted). ``progress(step, total, preview) -> False``
    cancels (raises :class:`~napari_invimg.Cancelled` with ``partial`` = the denoiser so far); ``save``
    writes the weights (fp16) to that file, loadable with ``LearnedDenoiser(weights=path)``.
    """
    from ..priors.learned import LearnedDenoiser

    if (clean is None) == (noisy is None):
        raise ValueError("Give either clean images (supervised) or a noisy measurement (self-supervised), not both.")
    if steps < 1 or batch_size < 1:
        raise ValueError("steps and batch_size must be positive.")
    if not 0 < mask_fraction < 0.5:
        raise ValueError("mask_fraction must lie between 0 and 0.5.")
    if not 0 < sigma_range[0] < sigma_range[1]:
        raise ValueError("sigma_range must be two increasing positive noise levels.")
    if save is not None and not Path(save).parent.exists():
        raise ValueError(f"Cannot save weights to {save}: the folder {Path(save).parent} does not exist.")
    dev = resolve_device(device)
    generator = torch.Generator().manual_seed(int(seed))
    supervised = clean is not None
    images, scales = _as_slices(clean if supervised else noisy, "clean" if supervised else "noisy", normalize)
    model = _start_model(start, dev, generator)
    patch = int(min(patch, *[min(im.shape) for im in images])) // 8 * 8 if not supervised else int(patch)
    if patch < 8:
        raise ValueError("The images are too small to train on (need at least 8×8 pixels).")
    sampler = PatchSampler(images, patch=patch, intensity_jitter=supervised)

    if supervised:
        def batch(g):
            x = sampler.sample(batch_size, g).to(dev)
            y, s = add_noise(x, sigma_range, g)
            return y, x, s

        preview_sigma = 0.1
    else:
        if sigma is None:
            level = _estimate_sigma(images)
        else:
            if not np.isfinite(sigma) or sigma <= 0:
                raise ValueError("sigma must be a positive noise standard deviation.")
            level = float(sigma) / float(np.median(scales))
        sample_sigma = torch.full((batch_size,), level, device=dev)

        def batch(g):
            y = sampler.sample(batch_size, g).to(dev)
            masked, mask = blind_spot(y, mask_fraction, g)
            return masked, y, sample_sigma, mask

        preview_sigma = level

    # previews: the center (up to 256×256) of the first image, made noisy at σ = 0.1 when it is clean
    first = images[0]
    lo = max(0, first.shape[0] // 2 - 128), max(0, first.shape[1] // 2 - 128)
    crop = torch.from_numpy(np.ascontiguousarray(first[lo[0]:lo[0] + 256, lo[1]:lo[1] + 256]))[None, None].to(dev)
    if supervised:
        crop = crop + preview_sigma * torch.randn(crop.shape, generator=torch.Generator().manual_seed(int(seed))).to(dev)

    def preview() -> np.ndarray:
        with torch.no_grad():
            return model(crop, torch.tensor([preview_sigma], device=dev))[0, 0].cpu().numpy()

    metadata: dict[str, Any] = {
        "mode": "supervised" if supervised else "self-supervised",
        "start": str(start), "steps": int(steps), "patch": patch, "batch_size": int(batch_size),
        "seed": int(seed), "sigma_range": [float(v) for v in sigma_range], "normalize": bool(normalize),
    }
    if not supervised:
        metadata["sigma"] = preview_sigma  # in the network's (normalized) units
        metadata["mask_fraction"] = float(mask_fraction)
    started = time.perf_counter()
    rate = lr if lr is not None else (5e-3 if start in (None, "scratch") else 5e-4)
    try:
        losses = fit(model, batch, steps, generator, lr=rate, progress=progress, preview=preview)
    except Cancelled as exc:
        metadata["cancelled"] = True
        exc.partial = LearnedDenoiser(model=model, metadata=metadata)
        raise
    metadata["seconds"] = time.perf_counter() - started
    metadata["final_loss"] = float(np.mean(losses[-max(1, len(losses) // 10):]))
    denoiser = LearnedDenoiser(model=model, metadata=dict(metadata, losses=losses))
    if save is not None:
        save_weights(model, save, **metadata)
        denoiser.weights = str(save)
    return denoiser
