"""napari-invimg: microscopy-first image reconstruction with uncertainty.

The public scripting API (see ``shared/API.md``)::

    import napari_invimg as ni
    psf = ni.psf.gaussian((15, 15), sigma=2.0)
    A = ni.operators.Blur(psf, x.shape)
    y = ni.simulate(x, A, ni.noise.PoissonGaussian(gain=0.01, sigma=0.01), seed=0)
    rec = ni.reconstruct(y, A, "richardson_lucy")
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-invimg")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

from . import blackhole, datasets, diagnostics, io, metrics, mri, operators  # noqa: E402
from .api import method_info, methods, reconstruct, simulate  # noqa: E402
from .errors import Cancelled  # noqa: E402
from .nets.training import train_denoiser  # noqa: E402
from .operators import noise, psf  # noqa: E402
from .replay import replay  # noqa: E402
from .uncertainty import Reconstruction  # noqa: E402

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
]
