"""The Forward model dock widget: choose an operator and its PSF, look at the PSF, apply the model to an image."""

from __future__ import annotations

import napari
import numpy as np
from magicgui.widgets import Container, PushButton

from .. import __version__
from ._layout import fit_dock
from ._models import ForwardModelControls, build_operator, layer_combo, make_psf
from ._runner import (
    LayerInfo,
    RunControls,
    Task,
    image_data,
    report_error,
    run_task,
    set_image_layer,
    spatial_kwargs,
)
from .simulate import measurement_metadata

__all__ = ["ForwardModelWidget"]


class ForwardModelWidget(Container):
    """Build a forward model for an image layer; add its PSF as a layer or its noise-free image ``A x``."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        viewer = self.viewer = napari_viewer
        self.image = layer_combo(viewer, "image", tooltip="the image whose grid (shape, pixel size) the model uses")
        self.forward = ForwardModelControls(viewer)
        self.psf_button = PushButton(text="Add PSF as a layer")
        self.controls = RunControls(self.apply, run_text="Apply A to the image (noise-free)")
        self.task: Task | None = None
        super().__init__(widgets=[self.image, self.forward, self.psf_button, self.controls])
        fit_dock(self)
        self.image.changed.connect(lambda layer: self.forward.set_reference(layer))
        self.psf_button.changed.connect(lambda: self.add_psf())
        self.forward.set_reference(self.image.value)

    def add_psf(self) -> Task | None:
        """Add the PSF (for the image's dimensionality) as ``"PSF · <kind>"``, in µm, marked as a PSF."""
        try:
            settings = self.forward.settings()
            if settings["kind"] not in ("Blur", "Downsampling") or settings["psf_kind"] == "none":
                raise ValueError("This forward model has no PSF; choose Blur or Downsampling with a PSF.")
            layer = self.image.value
            shape = image_data(layer, "image").shape if layer is not None else (255,) * self.forward.ndim
            pixel_um = self.forward.pixel_um(len(shape))
        except Exception as exc:
            report_error(exc)
            return None

        def show(kernel, cancelled: bool) -> None:
            meta = {"invimg": {"psf": {k: v for k, v in settings.items() if k not in ("bead", "mask")},
                               "version": __version__}}
            set_image_layer(self.viewer, kernel, f"PSF · {settings['psf_kind']}", scale=pixel_um,
                            units=("µm",) * kernel.ndim, colormap="inferno", metadata=meta)

        self.task = run_task(lambda progress: make_psf(settings, shape), total=1, desc="PSF", on_done=show,
                             controls=self.controls)
        return self.task

    def apply(self) -> Task | None:
        """Add ``"<image> · A(x)"``: the noise-free model of the image, with the operator in its metadata."""
        try:
            layer = self.image.value
            x = image_data(layer, "image")
            settings = self.forward.settings()
            info = LayerInfo.of(layer)
        except Exception as exc:
            report_error(exc)
            return None

        def compute(progress):
            A = build_operator(settings, x.shape)
            return A, np.asarray(A.forward(x), dtype=np.float32)

        def show(result, cancelled: bool) -> None:
            A, z = result
            shown = z if z.ndim >= 2 else z[None, :]
            meta = {"invimg": measurement_metadata(A.spec(), None, None, info)}
            geometry = spatial_kwargs(info, shown.shape) if z.ndim == x.ndim else {}
            set_image_layer(self.viewer, shown, f"{info.name} · A(x)", metadata=meta, colormap="gray", **geometry)

        self.task = run_task(compute, total=1, desc=f"A(x) on {info.name}", on_done=show, controls=self.controls)
        return self.task
