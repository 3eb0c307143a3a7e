"""napari reader for MRI raw data: fastMRI ``.h5`` files with a ``kspace`` dataset and complex ``.npy`` arrays.

A file opens as a log-magnitude k-space layer whose ``metadata["invimg"]["kspace"]`` holds the complex data
(what the MRI dock reconstructs) and, when the file has one, the reference root-sum-of-squares image.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["get_reader", "read_kspace", "log_magnitude"]


def log_magnitude(kspace: np.ndarray) -> np.ndarray:
    """``log(1 + |k| / s)`` with ``s`` a small fraction of the largest sample: k-space made visible."""
    mag = np.abs(kspace)
    s = max(float(mag.max()) * 1e-4, 1e-30)
    return np.log1p(mag / s).astype(np.float32)


def read_kspace(path: str) -> list[tuple]:
    """Layers of an MRI raw-data file: log-magnitude k-space (complex data in metadata) and the reference RSS."""
    from .. import mri

    scan = mri.load(path)
    name = os.path.splitext(os.path.basename(path))[0]
    meta = {"invimg": {"kspace": scan.kspace, "header": scan.header, "source": path, "coil_maps": None,
                       "mask": None, "attrs": scan.attrs}}
    layers = [(log_magnitude(scan.kspace), {"name": f"{name} · k-space", "metadata": meta, "colormap": "gray"},
               "image")]
    if scan.rss is not None:
        layers.append((scan.rss, {"name": f"{name} · reference RSS", "colormap": "gray"}, "image"))
    return layers


def get_reader(path: str | list[str]):
    """napari reader hook: fastMRI ``.h5`` files with a ``kspace`` dataset and complex ``.npy`` arrays."""
    if isinstance(path, list):
        return None
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            return None
        return read_kspace if np.iscomplexobj(arr) and arr.ndim in (2, 3, 4) else None
    if ext in (".h5", ".hdf5"):
        try:
            import h5py

            with h5py.File(path, "r") as f:
                ok = "kspace" in f
        except OSError:
            return None
        return read_kspace if ok else None
    return None
