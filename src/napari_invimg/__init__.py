"""napari-invimg: microscopy-first image reconstruction with uncertainty.

The public scripting API (see ``shared/API.md``)::

    import napari_invimg as ni
    psf = ni.psf.gaussian((15, 15), sigma=2.0)
    A = ni.operators.Blur(psf, x.shape)
    y = ni.simulate(x, A, ni.noise.PoissonGaussian(gain=0.01, sigma=0.01), seed=0)
    rec = ni.reconstruct(y, A, "richardson_lucy")
"""

import importlib

from . import operators
from ._triton_guard import guard_triton
from ._version import __version__
from .api import method_info, methods, reconstruct, simulate
from .errors import Cancelled
from .uncertainty import Reconstruction

guard_triton()  # before anything can create an optimizer: torch's triton vs. OpenGL (see _triton_guard)

#: loaded on first attribute access (``ni.mri``, ``ni.psf``, ...): ``import napari_invimg`` stays fast
_LAZY = {"blackhole": ("napari_invimg.blackhole", None), "mri": ("napari_invimg.mri", None),
         "datasets": ("napari_invimg.datasets", None), "diagnostics": ("napari_invimg.diagnostics", None),
         "io": ("napari_invimg.io", None), "metrics": ("napari_invimg.metrics", None),
         "noise": ("napari_invimg.operators.noise", None), "psf": ("napari_invimg.operators.psf", None),
         "replay": ("napari_invimg._replay", "replay"), "train_denoiser": ("napari_invimg.nets.training", "train_denoiser"),
         "train_supervised": ("napari_invimg.methods.supervised", "train_supervised")}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'napari_invimg' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = importlib.import_module(module)
    value = value if attribute is None else getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    "simulate",
    "reconstruct",
    "methods",
    "method_info",
    "Reconstruction",
    "Cancelled",
    "operators",
    "noise",
    "psf",
    "metrics",
    "diagnostics",
    "datasets",
    "io",
    "replay",
    "blackhole",
    "mri",
    "train_denoiser",
    "train_supervised",
]
