"""Reading MRI raw data: fastMRI-style HDF5 and complex ``.npy`` arrays."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Scan", "load", "save_h5"]


@dataclass
class Scan:
    """Raw multi-coil k-space ``kspace`` (slices, coils, Y, X) complex64, with what the file also holds.

    ``rss``: the reference root-sum-of-squares images (slices, Y', X') when present (fastMRI crops
    them); ``header``: the ISMRMRD XML header text when present; ``mask``: the sampled k-space
    positions (Y, X), True where any slice and coil holds a non-zero sample.
    """

    kspace: np.ndarray
    rss: np.ndarray | None = None
    header: str | None = None
    path: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def n_slices(self) -> int:
        return self.kspace.shape[0]

    @property
    def n_coils(self) -> int:
        return self.kspace.shape[1]

    @property
    def mask(self) -> np.ndarray:
        return np.any(self.kspace != 0, axis=(0, 1))

    def slice(self, index: int) -> np.ndarray:
        """k-space of one slice (C, Y, X), or (Y, X) for single-coil data."""
        if not -self.n_slices <= index < self.n_slices:
            raise ValueError(f"Slice {index} does not exist; the scan has {self.n_slices} slices.")
        k = self.kspace[index]
        return k[0] if self.n_coils == 1 else k


def _as_scan_array(k: np.ndarray, what: str) -> np.ndarray:
    if not np.iscomplexobj(k):
        raise ValueError(f"The {what} holds real data; MRI k-space must be complex.")
    if k.ndim == 2:
        k = k[None, None]
    elif k.ndim == 3:
        k = k[None]
    elif k.ndim != 4:
        raise ValueError(f"The {what} has shape {k.shape}; expected (Y, X), (coils, Y, X) or (slices, coils, Y, X).")
    if not np.any(k):
        raise ValueError(f"The {what} is all zero.")
    if not np.isfinite(k).all():
        raise ValueError(f"The {what} contains NaN or infinite values.")
    return k.astype(np.complex64)


def load(path: str | os.PathLike) -> Scan:
    """Read a fastMRI ``.h5`` file (``kspace`` (S, C, Y, X) or single-coil (S, Y, X), complex;
    ``reconstruction_rss``/``reconstruction_esc`` and ``ismrmrd_header`` when present) or a complex
    ``.npy`` array of shape (Y, X), (C, Y, X) or (S, C, Y, X) into a :class:`Scan`.

    fastMRI layout: Zbontar et al., arXiv:1811.08839.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise ValueError(f"No such file: {p}.")
    ext = os.path.splitext(p)[1].lower()
    if os.path.isdir(p):
        raise ValueError(f"{p} is a folder, not an MRI raw-data file.")
    if ext == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{os.path.basename(p)} is not a readable .npy array (damaged or truncated: {exc}).") from None
        return Scan(kspace=_as_scan_array(arr, f"array in {os.path.basename(p)}"), path=p)
    if ext not in (".h5", ".hdf5"):
        raise ValueError(f"Cannot read {os.path.basename(p)}: MRI raw data must be a fastMRI .h5 file or a complex .npy array.")
    import h5py

    name = os.path.basename(p)
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        with open(p, "rb") as fh:
            signed = fh.read(8) == b"\x89HDF\r\n\x1a\n"
        what = "a damaged or truncated HDF5 file" if signed else "not an HDF5 file"
        raise ValueError(f"{name} is {what} ({exc}).") from None
    try:
        with f:
            if "kspace" not in f:
                raise ValueError(f"{name} has no 'kspace' dataset; is it a fastMRI file?")
            k = np.asarray(f["kspace"][()])
            if k.ndim == 3:  # single-coil fastMRI: (slices, Y, X)
                k = k[:, None]
            kspace = _as_scan_array(k, f"'kspace' dataset of {name}")
            rss = None
            for key in ("reconstruction_rss", "reconstruction_esc"):
                if key in f:
                    rss = np.asarray(f[key][()], dtype=np.float32)
                    break
            header = None
            if "ismrmrd_header" in f:
                h = f["ismrmrd_header"][()]
                header = h.decode("utf-8", "replace") if isinstance(h, bytes) else str(h)
            attrs = {k_: (v.item() if hasattr(v, "item") else v) for k_, v in f.attrs.items()}
    except (OSError, KeyError, RuntimeError) as exc:  # h5py reports damaged blocks as these
        raise ValueError(f"{name} is a damaged or truncated HDF5 file: {type(exc).__name__}: {exc}.") from None
    return Scan(kspace=kspace, rss=rss, header=header, path=p, attrs=attrs)


def save_h5(path: str | os.PathLike, kspace, rss=None, header: str | None = None) -> None:
    """Write k-space (S, C, Y, X) (and optionally ``reconstruction_rss`` and the header) in fastMRI's layout.

    Written to a temporary name and renamed on success: a failure (bad ``rss``, a full disk) leaves an
    existing file untouched and no half-written file. An existing ``path`` is replaced only when it is an
    HDF5 file (a folder or another kind of file raises :class:`~napari_invimg.io.OutputExistsError`).
    """
    import h5py

    from ..io._image import atomic_output

    k = _as_scan_array(np.asarray(kspace), "k-space")
    if rss is not None:
        try:
            rss = np.asarray(rss, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"rss must be a real array of reference images (slices, Y, X); got "
                             f"{type(rss).__name__} ({exc}).") from None
    if header is not None and not isinstance(header, str):
        raise TypeError(f"header must be the ISMRMRD XML text (str); got {type(header).__name__}.")
    with atomic_output(path, kind="hdf5") as tmp:
        with h5py.File(os.fspath(tmp), "w") as f:
            f.create_dataset("kspace", data=k)
            if rss is not None:
                f.create_dataset("reconstruction_rss", data=rss)
            if header is not None:
                f.create_dataset("ismrmrd_header", data=np.bytes_(header.encode("utf-8")))
            f.attrs["acquisition"] = "simulated"
