"""The PSF workbench dock widget: beads layer → PSF + OTF layers and a check report; resample to a data layer.

All computing is :mod:`napari_invimg.operators.psf` (``from_beads``, ``resample``, ``check``, ``otf``); this
module only reads layers and shows results, through the runner.
"""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
from magicgui.widgets import Container, FloatSpinBox, LineEdit, PushButton
from napari.layers import Image, Layer

from ..operators import psf as psf_ops
from ._layout import fit_dock, report_label
from ._models import layer_combo, pixel_size_um
from ._runner import RunControls, Task, image_data, report_error, run_task, set_image_layer

__all__ = ["PSFWorkbenchWidget", "voxel_um"]


def voxel_um(layer: Layer, ndim: int) -> tuple[float, ...]:
    """The voxel size (µm) of a layer's last ``ndim`` axes; a ``ValueError`` when a size is unknown."""
    sizes = tuple(pixel_size_um(layer, ax) for ax in range(-ndim, 0))
    if any(s is None for s in sizes):
        raise ValueError(f"The layer {layer.name!r} has no physical pixel size (its scale is 1 and it has no "
                         "length units); open it from a file with pixel sizes or set its scale in µm.")
    return sizes


def _psf_meta(voxel: tuple[float, ...], source: str, report: psf_ops.PSFCheck | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"psf": True, "voxel_um": list(voxel), "source": source}
    if report is not None:
        meta["check"] = str(report)
    return {"invimg": meta}


class PSFWorkbenchWidget(Container):
    """Measure a PSF from beads, show its OTF, check it, and resample it to a data layer's voxel size."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        self.viewer = napari_viewer
        self.beads = layer_combo(napari_viewer, "beads", tooltip="an image of isolated sub-resolution beads")
        self.box = LineEdit(label="PSF box (px)", value="",
                            tooltip="PSF size per axis, e.g. '21, 31, 31' (empty: 31 laterally, 21 in z)")
        self.min_separation = FloatSpinBox(label="min. separation (px)", value=0.0, min=0.0, max=1e4,
                                           tooltip="0: the box's half-diagonal")
        self.threshold = LineEdit(label="bead threshold", value="",
                                  tooltip="brightness a bead's peak must exceed, in the image's units; blank = "
                                          "automatic (background + max(8 σ, 10 % of the range)). Lower it when no "
                                          "bead is found.")
        self.threshold.native.setPlaceholderText("automatic")
        self.controls = RunControls(self.extract, run_text="Extract PSF from beads")
        self.psf = layer_combo(napari_viewer, "PSF", optional=True, tooltip="a PSF layer to check or resample")
        self.data = layer_combo(napari_viewer, "data", optional=True, tooltip="the image the PSF will deconvolve")
        self.resample_button = PushButton(text="Resample PSF to the data's voxel size")
        self.check_button = PushButton(text="Check PSF against the data")
        self.report = report_label()
        self.task: Task | None = None
        super().__init__(widgets=[
            self.beads, self.box, self.min_separation, self.threshold, self.controls, self.psf, self.data,
            self.resample_button, self.check_button, self.report])
        fit_dock(self)
        self.resample_button.changed.connect(lambda: self.resample())
        self.check_button.changed.connect(lambda: self.check())

    def _box(self, ndim: int) -> tuple[int, ...]:
        text = self.box.value.strip()
        if not text:
            return (21, 31, 31)[-ndim:] if ndim == 3 else (31, 31)
        try:
            box = tuple(int(v) for v in text.replace("×", ",").replace("x", ",").split(","))
        except ValueError:
            raise ValueError(f"The PSF box must be integers separated by commas, got {text!r}.") from None
        if len(box) != ndim:
            raise ValueError(f"The PSF box needs {ndim} sizes for a {ndim}-D bead image, got {box}.")
        return box

    def _show(self, psf: np.ndarray, voxel: tuple[float, ...], name: str, source: str) -> Image:
        report = psf_ops.check(psf, voxel, voxel)
        layer = set_image_layer(self.viewer, psf, name, scale=voxel, metadata=_psf_meta(voxel, source, report),
                                colormap="inferno")
        freq = tuple(1.0 / (n * v) for n, v in zip(psf.shape, voxel))  # cycles/µm per OTF pixel
        set_image_layer(self.viewer, np.abs(psf_ops.otf(psf)), f"{name} OTF", scale=freq, colormap="viridis",
                        metadata={"invimg": {"otf_of": name, "frequency_step_per_um": list(freq)}})
        self.report.value = str(report)
        self.psf.reset_choices()
        self.psf.value = layer
        return layer

    def extract(self) -> Task | None:
        """Detect beads, register, average and crop them to a PSF (in a worker); add PSF and OTF layers."""
        try:
            layer = self.beads.value
            data = image_data(layer, "bead image")
            voxel = voxel_um(layer, data.ndim)
            box = self._box(data.ndim)
            sep = float(self.min_separation.value) or None
            text = str(self.threshold.value).strip()
            try:
                threshold = float(text) if text else None
            except ValueError:
                raise ValueError(f"The bead threshold must be a number (or blank for automatic), got {text!r}.") from None
        except Exception as exc:
            report_error(exc)
            return None

        def compute(progress):
            progress(0, 1, None)
            return psf_ops.from_beads(data, box, min_separation=sep, threshold=threshold)

        name = f"{layer.name} · PSF"
        self.task = run_task(compute, total=1, desc=f"PSF from {layer.name}", controls=self.controls,
                             on_done=lambda h, cancelled: h is not None and self._show(h, voxel, name, layer.name))
        return self.task

    def _psf_and_data(self) -> tuple[Image, np.ndarray, tuple[float, ...], tuple[float, ...]]:
        psf_layer, data_layer = self.psf.value, self.data.value
        if psf_layer is None or data_layer is None:
            raise ValueError("Choose a PSF layer and a data layer.")
        h = image_data(psf_layer, "PSF")
        psf_voxel = tuple(psf_layer.metadata.get("invimg", {}).get("voxel_um") or voxel_um(psf_layer, h.ndim))
        return psf_layer, h, psf_voxel, voxel_um(data_layer, h.ndim)

    def resample(self) -> Image | None:
        """A new PSF layer at the data layer's voxel size (band-limited Fourier resampling)."""
        try:
            psf_layer, h, src, dst = self._psf_and_data()
            out = psf_ops.resample(h, src, dst)
            name = f"{psf_layer.name} @ {' × '.join(f'{v:g}' for v in dst)} µm"
            return self._show(out, dst, name, f"resampled from {psf_layer.name}")
        except Exception as exc:
            report_error(exc)
            return None

    def check(self) -> psf_ops.PSFCheck | None:
        """Check the PSF against the data layer: a voxel-size mismatch is an error (resample first)."""
        try:
            _, h, src, dst = self._psf_and_data()
            report = psf_ops.check(h, src, dst)
        except Exception as exc:
            report_error(exc)
            self.report.value = str(exc)
            return None
        self.report.value = str(report)
        return report
