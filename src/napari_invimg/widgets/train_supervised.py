"""The Train supervised dock widget: train ``care`` or ``unrolled`` (``ni.train_supervised``) on the user's layers.

Pairs are acquired (a low-quality and a high-quality layer of the same field) or simulated from clean layers
through the forward model and noise set in the form (random crops, noise drawn on the fly). Training runs in a
worker with a progress bar, a live loss / validation-PSNR plot and Cancel, which keeps the partial model; the
weights file is what the Reconstruct dock's ``weights`` parameter takes. The "training options" section shows the
chosen method's own keywords of ``train_supervised`` (the method class's ``training_params``, defaults from the
function's signature), e.g. unrolled's start, start_refresh, augment, held-out validation layers and keep_best.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
from magicgui.widgets import ComboBox, Container, FileEdit, Label, Select, SpinBox
from napari.layers import Image
from napari.utils.notifications import show_info

from ..methods.supervised import DEFAULT_STEPS, SUPERVISED_METHODS, train_supervised, training_schema
from ._layout import Section, fit_dock
from ._models import ForwardModelControls, NoiseControls, ParameterForm, layer_combo
from ._plot import history_plot
from ._runner import RunControls, Task, image_data, report_error, run_task, set_image_layer
from ._settings import cache_folder

__all__ = ["TrainSupervisedWidget", "SIMULATED", "ACQUIRED"]

SIMULATED = "simulated (clean layers + forward model)"
ACQUIRED = "acquired pairs (low + high layer)"


class TrainSupervisedWidget(Container):
    """Train a supervised reconstruction network and save its weights."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        viewer = self.viewer = napari_viewer
        self.method = ComboBox(label="method", choices=list(SUPERVISED_METHODS), value="care",
                               tooltip="care: a U-Net from data to image; unrolled: CNN steps through the operator")
        self.source = ComboBox(label="pairs", choices=[SIMULATED, ACQUIRED], value=SIMULATED)
        self.clean = Select(label="clean layers", choices=self._image_layers,
                            tooltip="ground-truth images; measurements are simulated from them on the fly")
        self.low = layer_combo(viewer, "low-quality layer", optional=True, tooltip="the measurement of a field")
        self.high = layer_combo(viewer, "high-quality layer", optional=True, tooltip="the same field, registered")
        self.forward = ForwardModelControls(viewer)
        self.noise = NoiseControls()
        self.steps = SpinBox(label="steps", value=DEFAULT_STEPS["care"], min=1, max=1_000_000,
                             tooltip="training steps (the default takes about 15 minutes on 2 CPU cores)")
        self.patch = SpinBox(label="patch (px)", value=64, min=16, max=1024, step=8, tooltip="crop size of a sample")
        self.net_width = SpinBox(label="network width", value=0, min=0, max=512,
                             tooltip="channels of the finest level (0: the method's default, 32 for care, 24 for unrolled)")
        self.option_form = ParameterForm()  # the method's own training keywords (scalar ones)
        self.validation = Select(label="validation layers", choices=self._image_layers,
                                 tooltip="held-out clean images (not among the clean layers) for the validation PSNR; "
                                         "none: draws from the training images")
        self.training = Section("training options", [self.option_form, self.validation], collapsed=True)
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1)
        self.output = FileEdit(label="save weights to", mode="w", filter="*.pt",
                               value=str(cache_folder() / "care.pt"),
                               tooltip="the weights file for the method's weights parameter")
        self.controls = RunControls(self.run, run_text="Train")
        self.report = Label(value="")
        self.plot = history_plot()
        self.task: Task | None = None
        self.weights: Path | None = None
        widgets = [self.method, self.source, self.clean, self.low, self.high, self.forward, self.noise, self.steps,
                   self.patch, self.net_width, self.training, self.seed, self.output, self.controls, self.report]
        super().__init__(widgets=widgets + ([self.plot] if self.plot is not None else []))
        self.source.changed.connect(self._update_visibility)
        self.method.changed.connect(self._method_changed)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(lambda _e: (self.clean.reset_choices(), self.validation.reset_choices()))
        self._set_training_schema(self.method.value)
        self._update_visibility()
        fit_dock(self)

    def _image_layers(self, _widget=None) -> list:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _set_training_schema(self, method: str) -> None:
        schema = training_schema(method)
        self.option_form.set_schema([p for p in schema if p["type"] != "list"])
        self.takes_validation = any(p["name"] == "validation_truth" for p in schema)
        self.validation.visible = self.takes_validation

    def training_options(self) -> dict[str, Any]:
        """The method's own keywords of ``train_supervised`` as set in the "training options" section."""
        options = self.option_form.values()
        if self.takes_validation and self.validation.value:
            options["validation_truth"] = [image_data(layer, "validation image") for layer in self.validation.value]
        return options

    def _method_changed(self, value: str) -> None:
        self.steps.value = DEFAULT_STEPS[value]
        self._set_training_schema(value)
        out = Path(self.output.value)
        if out.stem in SUPERVISED_METHODS:
            self.output.value = out.with_name(f"{value}.pt")
        self._update_visibility()

    def _update_visibility(self, *_: Any) -> None:
        acquired = self.source.value == ACQUIRED
        if acquired and self.method.value == "unrolled":
            self.source.value = SIMULATED  # the unrolled network learns through the operator
            return
        for widget in (self.low, self.high):
            widget.visible = acquired
        for widget in (self.clean, self.forward, self.noise):
            widget.visible = not acquired

    def _arguments(self) -> dict[str, Any]:
        if self.source.value == ACQUIRED:
            if self.low.value is None or self.high.value is None:
                raise ValueError("Choose the low-quality and the high-quality layer of the acquired pair.")
            low, high = image_data(self.low.value, "low-quality image"), image_data(self.high.value, "high-quality image")
            if low.shape != high.shape:
                raise ValueError(f"The pair's layers differ in shape: {low.shape} and {high.shape}.")
            return {"pairs": [(low, high)]}
        if not self.clean.value:
            raise ValueError("Choose at least one clean image layer to simulate training pairs from.")
        truth = [image_data(layer, "clean image") for layer in self.clean.value]
        self.forward.set_reference(self.clean.value[0])
        A = self.forward.build(truth[0].shape)
        noise = self.noise.build()
        return {"truth": truth, "operator": A, "noise": noise}

    def run(self) -> Task | None:
        """Train in a worker; on success (or cancel: the partial model) the weights file is written."""
        try:
            method = self.method.value
            kwargs = self._arguments()
            out = Path(self.output.value)
            if out.parent == cache_folder():
                out.parent.mkdir(parents=True, exist_ok=True)
            if not out.parent.is_dir():
                raise ValueError(f"The folder {out.parent} does not exist; choose where to save the weights.")
            steps, seed, patch = int(self.steps.value), int(self.seed.value), int(self.patch.value)
            width = int(self.net_width.value) or None
            kwargs.update(self.training_options())
        except Exception as exc:
            report_error(exc)
            return None
        preview_name = f"{method} training · preview"
        if self.plot is not None:
            self.plot.clear()

        def compute(progress):
            return train_supervised(method, steps=steps, seed=seed, out=out, progress=progress, patch=patch,
                                    width=width, **kwargs)

        def preview(step: int, total: int, image) -> None:
            set_image_layer(self.viewer, image, preview_name, colormap="gray")

        def done(path, cancelled: bool) -> None:
            if preview_name in self.viewer.layers:
                self.viewer.layers.remove(preview_name)
            if self.plot is not None:
                self.plot.draw()
            if path is None:
                return
            self.weights = Path(path)
            state = "cancelled: the partial model" if cancelled else "trained"
            self.report.value = f"{method} {state} → {path}"
            show_info(f"{method} {state} saved to {path}; use it with the method's weights parameter.")

        self.task = run_task(compute, total=steps, desc=f"train {method}", on_preview=preview, on_done=done,
                             controls=self.controls, on_status=self.plot.add if self.plot is not None else None)
        return self.task
