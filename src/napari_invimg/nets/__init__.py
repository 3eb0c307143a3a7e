"""Network architectures and their shipped weights (floor 1, pure torch)."""

from .drunet import SmallDRUNet, load_weights, save_weights, shipped_weights

__all__ = ["SmallDRUNet", "load_weights", "save_weights", "shipped_weights"]
