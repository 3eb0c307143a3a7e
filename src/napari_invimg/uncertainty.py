"""The result of a reconstruction: mean, standard deviation, samples and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Reconstruction", "UNCERTAINTY_KINDS"]

#: what a std means: samples of a posterior, or the spread of an ensemble over choices (not a posterior)
UNCERTAINTY_KINDS = ("posterior", "ensemble", None)


@dataclass
class Reconstruction:
    """``mean`` (the image's shape), optional ``std`` and ``samples`` (n, *shape), and ``info``.

    ``info`` holds: method, params, operator spec, noise spec, seed, device, seconds, iterations,
    history, uncertainty (``"posterior"``, ``"ensemble"`` or ``None``) and the package version — enough
    to replay the result.
    """

    mean: np.ndarray
    std: np.ndarray | None = None
    samples: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def uncertainty(self) -> str | None:
        return self.info.get("uncertainty")

    def interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` interval per pixel: mean ± z·std (Gaussian), the std already calibrated if set."""
        if self.std is None:
            raise ValueError("This reconstruction has no standard deviation; choose a method that returns one.")
        from scipy.stats import norm

        z = float(norm.ppf(0.5 + level / 2))
        return self.mean - z * self.std, self.mean + z * self.std

    def __repr__(self) -> str:
        std = "None" if self.std is None else f"{self.std.shape}"
        smp = "None" if self.samples is None else f"{self.samples.shape}"
        return (f"Reconstruction(method={self.info.get('method')!r}, mean={self.mean.shape}, std={std}, "
                f"samples={smp}, uncertainty={self.uncertainty!r})")
