"""The installed package's version (a leaf module: everything that records provenance imports it)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-invimg")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
