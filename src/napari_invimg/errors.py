"""Exceptions of the public API."""

from __future__ import annotations

from typing import Any

__all__ = ["Cancelled"]


class Cancelled(Exception):
    """Raised by :func:`napari_invimg.reconstruct` when the progress callback returns ``False``.

    ``partial`` holds the best :class:`~napari_invimg.uncertainty.Reconstruction` available at the
    moment of cancelling (the best iterate, or the samples drawn so far), or ``None``.
    """

    def __init__(self, message: str = "reconstruction cancelled", partial: Any = None):
        super().__init__(message)
        self.partial = partial
