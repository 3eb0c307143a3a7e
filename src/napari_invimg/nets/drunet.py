"""A small noise-level-conditioned UNet denoiser ``D(x, σ)`` in the spirit of DRUNet.

Architecture: a UNet with residual blocks (Zhang et al., "Plug-and-play image restoration with deep
denoiser prior", IEEE TPAMI 44 (2022) 6360) whose input carries the noise level as an extra constant
channel, wrapped in the preconditioning of Karras et al. ("Elucidating the design space of
diffusion-based generative models", NeurIPS 2022) so one network covers σ from 0.002 to 2:

    D(x, σ) = c_skip(σ)·x + (1 − c_skip(σ))·m + c_out(σ)·F(c_in(σ)·(x − m), log σ),
    c_skip = s²/(σ² + s²),  c_out = σ s/√(σ² + s²),  c_in = 1/√(σ² + s²),

with ``s`` the data scale and ``m`` the data offset. Fully convolutional: any image size (padded
internally to a multiple of the downsampling factor), single-channel 2D images in batches ``(N, 1, H, W)``.
"""

from __future__ import annotations

import importlib.resources
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SmallDRUNet", "save_weights", "load_weights", "shipped_weights"]


class ResBlock(nn.Module):
    """``x + conv(relu(conv(x)))`` with bias-free 3×3 convolutions."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class SmallDRUNet(nn.Module):
    """Noise-conditional UNet denoiser ``D(x, σ)`` for ``x`` of shape ``(N, 1, H, W)`` and ``σ`` of shape ``(N,)``."""

    def __init__(self, channels: Sequence[int] = (16, 32, 64, 64), blocks: int | Sequence[int] = 1,
                 data_scale: float = 0.35, data_offset: float = 0.5, unshuffle: int = 1):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        per_level = (int(blocks),) * len(channels) if isinstance(blocks, (int, float)) else tuple(int(b) for b in blocks)
        if len(channels) < 2 or min(channels) < 1 or len(per_level) != len(channels) or min(per_level) < 1:
            raise ValueError("SmallDRUNet needs at least two levels of positive width and one block per level "
                             "(blocks: one number, or one per level including the bottleneck).")
        if unshuffle not in (1, 2, 4):
            raise ValueError(f"unshuffle must be 1, 2 or 4, got {unshuffle}.")
        self.config: dict[str, Any] = {"channels": list(channels),
                                       "blocks": int(blocks) if isinstance(blocks, (int, float)) else list(per_level),
                                       "data_scale": float(data_scale), "data_offset": float(data_offset)}
        if unshuffle != 1:
            self.config["unshuffle"] = int(unshuffle)
        self.blocks = per_level
        self.unshuffle = int(unshuffle)
        self.data_scale = float(data_scale)
        self.data_offset = float(data_offset)
        self.factor = self.unshuffle * 2 ** (len(channels) - 1)
        u2 = self.unshuffle**2
        self.head = nn.Conv2d(u2 + 1, channels[0], 3, padding=1, bias=False)
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for c_in, c_out, b in zip(channels[:-1], channels[1:], per_level):
            self.encoder.append(nn.Sequential(*[ResBlock(c_in) for _ in range(b)]))
            self.down.append(nn.Conv2d(c_in, c_out, 2, stride=2, bias=False))
            self.up.append(nn.ConvTranspose2d(c_out, c_in, 2, stride=2, bias=False))
            self.decoder.append(nn.Sequential(*[ResBlock(c_in) for _ in range(b)]))
        self.body = nn.Sequential(*[ResBlock(channels[-1]) for _ in range(per_level[-1])])
        self.tail = nn.Conv2d(channels[0], u2, 3, padding=1, bias=False)

    @property
    def receptive_field(self) -> int:
        """Pixels on each side that can change an output pixel: ``u·(1 + Σ_l (4b_l + 1)·2^l + 2b_L·2^L + 1) + u − 1``
        for ``b_l`` blocks at level ``l``, ``L`` stride-2 levels and a ``u×u`` pixel unshuffle (3×3 convolutions
        reach ``2^l`` at level ``l``, the 2×2 down/up steps ``2^l``)."""
        levels = len(self.config["channels"]) - 1
        reach = 2 + sum((4 * self.blocks[level] + 1) * 2**level for level in range(levels)) \
            + 2 * self.blocks[-1] * 2**levels
        return self.unshuffle * reach + self.unshuffle - 1

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.factor, (-w) % self.factor
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return x, h, w

    def network(self, x: torch.Tensor, noise_channel: torch.Tensor) -> torch.Tensor:
        """The raw UNet ``F`` on a padded input (height and width multiples of ``factor``)."""
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        h = torch.cat([x, noise_channel.expand(x.shape[0], 1, *x.shape[2:])], dim=1)
        # channels-last activations from here on: oneDNN's faster CPU convolutions (RESULTS §5, issue #20)
        h = self.head(h.contiguous(memory_format=torch.channels_last))
        skips = []
        for enc, down in zip(self.encoder, self.down):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.body(h)
        for up, dec, skip in zip(reversed(self.up), reversed(self.decoder), reversed(skips)):
            h = dec(up(h) + skip)
        h = self.tail(h)
        return F.pixel_shuffle(h, self.unshuffle) if self.unshuffle > 1 else h

    def coefficients(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``c_skip, c_out, c_in`` of the preconditioning, shaped ``(N, 1, 1, 1)``."""
        s2 = self.data_scale**2
        v = sigma * sigma + s2
        return s2 / v, sigma * self.data_scale / v.sqrt(), 1 / v.sqrt()

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"SmallDRUNet takes (N, 1, H, W) images, got shape {tuple(x.shape)}.")
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1).expand(x.shape[0], 1, 1, 1)
        c_skip, c_out, c_in = self.coefficients(sigma)
        xp, h, w = self._pad(x)
        centered = xp - self.data_offset
        out = self.network(c_in * centered, torch.log(sigma) / 4)[..., :h, :w]
        return self.data_offset + c_skip * (x - self.data_offset) + c_out * out

    def loss(self, noisy: torch.Tensor, clean: torch.Tensor, sigma: torch.Tensor,
             mask: torch.Tensor | None = None) -> torch.Tensor:
        """Preconditioned denoising loss ``mean λ(σ)·|D(noisy, σ) − clean|²`` with ``λ = 1/c_out²``
        (each σ weighs alike); ``mask`` restricts it to chosen pixels (blind-spot training)."""
        sigma = sigma.reshape(-1, 1, 1, 1)
        _, c_out, _ = self.coefficients(sigma)
        err = ((self(noisy, sigma) - clean) / c_out) ** 2
        if mask is None:
            return err.mean()
        return (err * mask).sum() / mask.sum().clamp(min=1)


def save_weights(model: SmallDRUNet, path: str | Path, half: bool = True, **metadata: Any) -> Path:
    """Write ``model``'s configuration and weights (fp16 by default) and ``metadata`` (JSON-like) to ``path``."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise ValueError(f"Cannot save weights to {path}: the folder {path.parent} does not exist.")
    state = {k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
             for k, v in model.state_dict().items()}
    plain = json.loads(json.dumps(metadata, default=str))  # plain values only: loadable with weights_only
    from ..io._image import atomic_output  # same floor (1); written to a temporary name, renamed on success

    blob = {"format": FORMAT, "architecture": type(model).__name__, "config": model.config, "state_dict": state,
            "metadata": plain}
    with atomic_output(path, kind="torch") as tmp:
        torch.save(blob, tmp)
    return path


def read_weights_file(path, file_format: str, what: str) -> dict[str, Any]:
    """The dict saved in a weights file of ``file_format``; a ``ValueError`` naming the file when it is missing,
    unreadable or of another kind (``what``: "denoiser", "supervised", ...)."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"No {what} weights file at {path}.") from None
    except Exception as exc:  # unpickling errors of every kind
        text = str(exc).strip()
        # torch's weights-only refusal is a page of advice (including to turn the safety off): say what it means
        detail = ("not a torch file of tensors and plain values" if text.startswith("Weights only load failed")
                  else text.splitlines()[0][:200] if text else type(exc).__name__)
        raise ValueError(f"{path} is not a {what} weights file ({detail}).") from None
    if not isinstance(blob, dict) or blob.get("format") != file_format:
        raise ValueError(f"{path} is not a napari-invimg {what} weights file.")
    return blob


def load_weights(path, device: str | torch.device = "cpu") -> tuple[SmallDRUNet, dict[str, Any]]:
    """Build a :class:`SmallDRUNet` (float32) from a weights file; returns ``(model, metadata)``."""
    blob = read_weights_file(path, FORMAT, "denoiser")
    name = blob.get("architecture", "SmallDRUNet")  # files written before the field existed: SmallDRUNet
    if name not in ARCHITECTURES:
        raise ValueError(f"{path} holds a {name!r} network; this version knows {', '.join(ARCHITECTURES)}.")
    with torch.device("meta"):  # no random initialization (it would draw from torch's global generator)
        model = ARCHITECTURES[name](**blob["config"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()},
                          assign=True)
    model.eval()
    return model.to(device), dict(blob.get("metadata", {}))


#: the networks a weights file may name (its ``architecture`` field; the config holds the sizes)
ARCHITECTURES: dict[str, type[nn.Module]] = {"SmallDRUNet": SmallDRUNet}
#: the weights file format (unchanged by new architectures: they are named in the file)
FORMAT = "napari-invimg denoiser 1"


#: the weights files shipped in the package: the general denoiser and the one fine-tuned for MR magnitude images
SHIPPED_FILES = ("denoiser.pt", "denoiser_mri.pt")


def shipped_weights(file: str = "denoiser.pt"):
    """A weights file shipped inside the package (a ``Traversable``; use with ``importlib.resources.as_file``):
    ``"denoiser.pt"`` (the general denoiser) or ``"denoiser_mri.pt"`` (fine-tuned on MR magnitudes)."""
    if file not in SHIPPED_FILES:
        raise ValueError(f"No shipped weights {file!r}; the package ships {', '.join(SHIPPED_FILES)}.")
    return importlib.resources.files(__package__) / "weights" / file


def log_uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` values drawn log-uniformly in ``[low, high]``."""
    u = torch.rand(n, generator=generator)
    return torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))
