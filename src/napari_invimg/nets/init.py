"""Building networks without torch's global random state.

``torch.nn`` layers initialize their weights from torch's global generator when constructed: that resets
nothing, but it advances the caller's random stream and makes two runs in two threads draw from one shared
stream. :func:`build` constructs a network on the ``meta`` device (no memory, no draws), materializes it on
the CPU and initializes every parameter from a local ``torch.Generator`` with PyTorch's default laws
(He-uniform with ``a = √5``: ``U(±1/√fan_in)`` for weights and biases; norms at weight 1, bias 0).
:func:`use_generator` hands the stochastic layers (dropout, Bayesian convolutions) their own generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

__all__ = ["build", "materialize", "init_parameters", "use_generator"]

M = TypeVar("M", bound=nn.Module)

_LINEAR = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def init_parameters(net: nn.Module, generator: torch.Generator | None) -> nn.Module:
    """(Re-)initialize every parameter of ``net`` from ``generator`` (``None``: all deterministic parts only).

    A module type with parameters that this function does not know raises ``TypeError`` unless it has a
    ``reset_parameters(generator)`` method of its own.
    """
    with torch.no_grad():
        for m in net.modules():
            own = list(m.parameters(recurse=False))
            if hasattr(m, "reset_parameters_from"):
                m.reset_parameters_from(generator)
            elif isinstance(m, _LINEAR):
                fan_in = nn.init._calculate_fan_in_and_fan_out(m.weight)[0]
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                m.weight.uniform_(-bound, bound, generator=generator)
                if m.bias is not None:
                    m.bias.uniform_(-bound, bound, generator=generator)
            elif isinstance(m, _NORMS):
                if getattr(m, "weight", None) is not None:
                    m.weight.fill_(1.0)
                if getattr(m, "bias", None) is not None:
                    m.bias.zero_()
                if getattr(m, "running_mean", None) is not None:
                    m.reset_running_stats()
            elif own:
                raise TypeError(f"init_parameters does not know how to initialize {type(m).__name__}.")
    return net


def build(make: Callable[[], M], generator: torch.Generator | None, device: torch.device | str = "cpu") -> M:
    """``make()`` built on the meta device, materialized on ``device`` and initialized from ``generator``."""
    with torch.device("meta"):
        net = make()
    return materialize(net, generator, device)


def materialize(net: M, generator: torch.Generator | None, device: torch.device | str = "cpu") -> M:
    """A network built on the meta device (``with torch.device("meta"): ...``) made real and initialized."""
    return init_parameters(net.to_empty(device=device), generator)


def use_generator(net: nn.Module, generator: torch.Generator | None) -> nn.Module:
    """Give every stochastic layer of ``net`` (those with a ``generator`` attribute) this generator."""
    for m in net.modules():
        if hasattr(m, "generator"):
            m.generator = generator
    return net
