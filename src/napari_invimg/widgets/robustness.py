"""Two sections of the Diagnostics dock (issue #18), self-contained so the dock only has to include them.

*Hallucination map*: for the chosen result, the structure its data do not support
(``ni.diagnostics.hallucination``) as a layer ``"<base> hallucination"`` with the fraction flagged in its metadata.
*Robustness*: the result's method re-run on data simulated from clean layers with a perturbed forward model (PSF
width, noise level, MRI acceleration) while the method is given the nominal one (``ni.diagnostics.robustness``),
in the worker; the PSNR change is plotted against the perturbation and listed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, LineEdit, PushButton, Select
from napari.layers import Image
from napari.utils.notifications import show_info

from .. import diagnostics
from ._models import noise_from_metadata, operator_from_metadata
from ._runner import RunControls, Task, image_data, report_error, run_task, set_image_layer, spatial_kwargs

__all__ = ["HallucinationSection", "RobustnessSection", "PERTURBATIONS"]

#: label -> (key of ni.diagnostics.robustness, default values)
PERTURBATIONS = {
    "PSF width (×)": ("psf_scale", "0.8, 0.9, 1.1, 1.2"),
    "noise level (×)": ("noise_scale", "0.5, 2"),
    "MRI acceleration (R)": ("acceleration", "3, 6"),
    "MRI mask kind": ("mask", "equispaced, random, poisson"),
}


def _base(name: str) -> str:
    return name[: -len(" mean")] if name.endswith(" mean") else name


class HallucinationSection(Container):
    """A button that adds the hallucination map of the dock's result (``problem()``: the dock's result, measurement,
    measurement array, forward model and noise model)."""

    def __init__(self, viewer, problem: Callable[[], tuple]):
        self.viewer, self._problem = viewer, problem
        self.button = PushButton(text="Hallucination map")
        self.button.tooltip = ("where the result holds structure the data do not support: its near-null-space part "
                               "against a classical reconstruction, in units of its std / the noise")
        self.report = Label(value="")
        super().__init__(widgets=[self.button, self.report], labels=False)
        self.button.changed.connect(lambda: self.run())

    def run(self) -> float | None:
        try:
            mean_layer, rec, _, y, A, noise = self._problem()
            result = diagnostics.hallucination(rec, y, A, noise)
        except Exception as exc:
            report_error(exc)
            return None
        name = f"{_base(mean_layer.name)} hallucination"
        set_image_layer(self.viewer, result.map, name, colormap="magma", contrast_limits=(0.0, 2 * result.info["threshold"]),
                        metadata={"invimg": {"input": mean_layer.name, "output": "hallucination", **result.info}},
                        **spatial_kwargs(mean_layer, result.map.shape))
        self.report.value = (f"{100 * result.fraction_flagged:.1f}% of pixels flagged (near-null-space part "
                             f"> {result.info['threshold']:g}× {result.info['normalized_by']})")
        show_info(f"Hallucination map of {mean_layer.name}: {self.report.value}")
        return result.fraction_flagged


class RobustnessSection(Container):
    """Run ``ni.diagnostics.robustness`` for the result's method on clean layers; plot and list the rows."""

    def __init__(self, viewer, result_layer: Callable[[], Any]):
        self.viewer, self._result_layer = viewer, result_layer
        self.images = Select(label="clean layers", choices=self._image_layers,
                             tooltip="images the data are simulated from (the forward model's image shape)")
        self.kind = ComboBox(label="perturb", choices=list(PERTURBATIONS), value="PSF width (×)")
        self.values = LineEdit(label="values", value=PERTURBATIONS["PSF width (×)"][1])
        self.controls = RunControls(self.run, run_text="Robustness")
        self.report = Label(value="")
        self.rows: list[dict[str, Any]] = []
        self.task: Task | None = None
        super().__init__(widgets=[self.images, self.kind, self.values, self.controls, self.report])
        self.kind.changed.connect(lambda v: setattr(self.values, "value", PERTURBATIONS[v][1]))
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(lambda _e: self.images.reset_choices())
        self.figure = self.canvas = None
        try:
            from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
            from matplotlib.figure import Figure

            self.figure = Figure(figsize=(3.2, 1.8), dpi=90, layout="constrained")
            self.canvas = FigureCanvasQTAgg(self.figure)
            self.canvas.setMinimumHeight(140)
            self.native.layout().addWidget(self.canvas)
        except ImportError:  # matplotlib is in the plugin's `all` extra; the table label still shows the rows
            pass

    def _image_layers(self, _widget=None) -> list:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _values(self, key: str) -> list:
        parts = [p.strip() for p in str(self.values.value).split(",") if p.strip()]
        if not parts:
            raise ValueError("Give at least one perturbation value (comma-separated).")
        if key == "mask":
            return parts
        try:
            return [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"The perturbation values must be numbers, got {self.values.value!r}.") from None

    def run(self) -> Task | None:
        try:
            layer = self._result_layer()
            if layer is None:
                raise ValueError("Choose the mean layer of a reconstruction.")
            meta = layer.metadata.get("invimg", {})
            method = meta.get("method")
            if not method:
                raise ValueError(f"{layer.name!r} does not record the method that made it.")
            A = operator_from_metadata(layer)
            noise = noise_from_metadata(layer)
            if noise is None:
                raise ValueError(f"{layer.name!r} records no noise model.")
            if not self.images.value:
                raise ValueError("Choose at least one clean image layer to simulate data from.")
            images = [image_data(lyr, "clean image") for lyr in self.images.value]
            key = PERTURBATIONS[self.kind.value][0]
            perturb = {key: self._values(key)}
            params = {k: v for k, v in (meta.get("params") or {}).items() if v is not None}
        except Exception as exc:
            report_error(exc)
            return None
        total = (1 + len(perturb[key])) * len(images)

        def compute(progress):
            return diagnostics.robustness(method, A, noise, images, perturb=perturb, seed=0, progress=progress,
                                          **params)

        def done(rows, cancelled: bool) -> None:
            if rows is None or cancelled:
                self.report.value = "cancelled"
                return
            self.rows = rows
            self.report.value = diagnostics.format_robustness(rows)
            self.draw(method)

        self.task = run_task(compute, total=total, desc=f"robustness of {method}", on_done=done,
                             controls=self.controls)
        return self.task

    def draw(self, method: str) -> None:
        if self.figure is None:
            return
        self.figure.clear()
        ax = self.figure.add_subplot()
        rows = [r for r in self.rows if r["perturbation"] != "nominal"]
        labels = [f"{r['value']:g}" if isinstance(r["value"], float) else str(r["value"]) for r in rows]
        ax.bar(np.arange(len(rows)), [r["psnr_change"] for r in rows], color="tab:orange")
        ax.axhline(0.0, color="gray", lw=0.8)
        ax.set_xticks(np.arange(len(rows)), labels, fontsize=7)
        ax.set_ylabel("PSNR change (dB)", fontsize=8)
        ax.set_title(f"{method}: data from a perturbed model", fontsize=8)
        ax.tick_params(labelsize=7)
        self.canvas.draw_idle()
