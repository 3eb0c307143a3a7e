"""The Train prior dock widget: fine-tune or train the learned denoiser on your own layers.

Supervised on clean image layers you trust, or self-supervised (Noise2Self/Noise2Void blind-spot
training) on a noisy layer alone. The result is a weights file that every denoiser-based method takes
(``LearnedDenoiser(weights=path)``) and a denoised preview layer.
"""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, Select, SpinBox
from napari.layers import Image

from ..nets.training import denoise_image, train_denoiser
from ._layout import fit_dock
from ._models import layer_combo
from ._runner import LayerInfo, RunControls, Task, image_data, report_error, run_task, set_image_layer, spatial_kwargs
from ._settings import cache_folder

__all__ = ["TrainPriorWidget"]

SELF_SUPERVISED = "self-supervised (noisy layer)"
SUPERVISED = "supervised (clean layers)"
STARTS = {"shipped weights": "shipped", "scratch": "scratch", "weights file": "file"}


class TrainPriorWidget(Container):
    """Train the noise-conditional denoiser on the user's data and save its weights."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        viewer = self.viewer = napari_viewer
        self.mode = ComboBox(label="training", choices=[SELF_SUPERVISED, SUPERVISED], value=SELF_SUPERVISED)
        self.noisy = layer_combo(viewer, "noisy layer", optional=True,
                                 tooltip="self-supervised: trained on this layer; always: denoised with the result")
        self.clean = Select(label="clean layers", choices=self._image_layers,
                            tooltip="supervised: layers you trust (noise is added synthetically)")
        self.sigma = FloatSpinBox(label="noise σ (0 = automatic)", value=0.0, min=0.0, max=1e9, step=0.001,
                                  tooltip="noise standard deviation of the noisy layer, in its units")
        self.steps = SpinBox(label="steps", value=200, min=1, max=100000,
                             tooltip="optimizer steps (one mini-batch of patches each)")
        self.start = ComboBox(label="start from", choices=list(STARTS), value="shipped weights",
                              tooltip="fine-tune the shipped weights (fast), train from scratch, or continue a file")
        self.start_file = FileEdit(label="start weights", mode="r", filter="*.pt", visible=False)
        self.output = FileEdit(label="save weights to", mode="w", filter="*.pt",
                               value=str(cache_folder() / "denoiser.pt"),
                               tooltip="weights file for LearnedDenoiser(weights=...) and the methods' weights parameter")
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1, tooltip="seed of the patches and noise")
        self.controls = RunControls(self.run, run_text="Train")
        self.task: Task | None = None
        super().__init__(widgets=[self.mode, self.noisy, self.clean, self.sigma, self.steps, self.start,
                                  self.start_file, self.output, self.seed, self.controls])
        fit_dock(self)
        self.start.changed.connect(lambda value: setattr(self.start_file, "visible", value == "weights file"))
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(lambda _e: self.clean.reset_choices())

    def _image_layers(self, _widget=None) -> list:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def run(self) -> Task | None:
        """Train in a worker; adds ``"<noisy> · trained prior"`` (the noisy layer denoised by the result)."""
        try:
            supervised = self.mode.value == SUPERVISED
            noisy_layer = self.noisy.value
            noisy = image_data(noisy_layer, "noisy image") if noisy_layer is not None else None
            if noisy is not None and (np.iscomplexobj(noisy) or noisy.ndim not in (2, 3)):
                raise ValueError("The noisy layer must be a real 2D image or 3D stack.")
            if supervised:
                if not self.clean.value:
                    raise ValueError("Choose at least one clean image layer for supervised training.")
                clean = [image_data(layer, "clean image") for layer in self.clean.value]
            elif noisy is None:
                raise ValueError("Choose the noisy layer to train on (self-supervised).")
            start = STARTS[self.start.value]
            if start == "file":
                start = str(self.start_file.value)
                if not Path(start).is_file():
                    raise ValueError(f"No weights file at {start}; choose the file to start from.")
            out = Path(self.output.value)
            if out.parent == cache_folder():
                out.parent.mkdir(parents=True, exist_ok=True)
            if not out.parent.is_dir():
                raise ValueError(f"The folder {out.parent} does not exist; choose where to save the weights.")
            sigma = float(self.sigma.value) or None
            steps, seed = int(self.steps.value), int(self.seed.value)
            info = LayerInfo.of(noisy_layer) if noisy_layer is not None else None
        except Exception as exc:
            report_error(exc)
            return None
        preview_name = "trained prior · preview"

        def compute(progress):
            kwargs = dict(steps=steps, start=start, seed=seed, progress=progress, save=out)
            if supervised:
                den = train_denoiser(clean=clean, **kwargs)
            else:
                den = train_denoiser(noisy=noisy, sigma=sigma, **kwargs)
            denoised = None if noisy is None else denoise_image(noisy, den, sigma=sigma)
            return den, denoised

        def preview(step: int, total: int, image: np.ndarray) -> None:
            set_image_layer(self.viewer, image, preview_name, colormap="gray")

        def show(result, cancelled: bool) -> None:
            if preview_name in self.viewer.layers:
                self.viewer.layers.remove(preview_name)
            if result is None or cancelled:
                return
            den, denoised = result
            meta = {"invimg": {"denoiser_weights": str(out), "training": {
                k: v for k, v in den.metadata.items() if k != "losses"}}}
            if denoised is not None:
                set_image_layer(self.viewer, denoised.astype(np.float32), f"{info.name} · trained prior",
                                metadata=meta, colormap="gray", **spatial_kwargs(info, denoised.shape))

        self.task = run_task(compute, total=steps, desc="train denoiser", on_preview=preview, on_done=show,
                             controls=self.controls)
        return self.task
