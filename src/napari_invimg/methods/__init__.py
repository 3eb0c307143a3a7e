"""Reconstruction methods (floor 2): one class each, registered by name in :mod:`.registry`."""

from .registry import Context, Estimate, Method, Param, available, get, info

__all__ = ["Method", "Param", "Context", "Estimate", "available", "get", "info"]
