"""Network architectures (pure torch) and their small shipped weights."""

from .drunet import SmallDRUNet, load_weights, save_weights, shipped_weights

__all__ = ["SmallDRUNet", "load_weights", "save_weights", "shipped_weights"]
