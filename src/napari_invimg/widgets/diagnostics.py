"""The Diagnostics dock widget: is a reconstruction consistent with its data, and is its std honest?

Given a result's mean layer (and its std / samples layers, found by name), the measurement it came from and
the operator / noise recorded in the result's metadata, it adds the normalized residual ``(y − A x̂)/σ`` as a
layer and reports the reduced chi-square; with a ground-truth layer it adds the error map ``|x̂ − x|`` and
reports the empirical coverage of the central interval and the std–error correlation.
"""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
from magicgui.widgets import Container, FloatSpinBox, PushButton
from napari.layers import Layer
from napari.utils.notifications import show_info

from .. import diagnostics
from ..uncertainty import Reconstruction
from ._layout import fit_dock, report_label
from ._models import layer_combo, noise_from_metadata, operator_from_metadata, result_part
from ._runner import image_data, report_error, set_image_layer, spatial_kwargs
from .robustness import HallucinationSection, RobustnessSection

__all__ = ["DiagnosticsWidget"]


def _companion(viewer, mean_layer: Layer, part: str) -> Layer | None:
    """The ``"<base> std"``-style layer that belongs to a ``"<base> mean"`` layer (any name suffix), if present."""
    if not mean_layer.name.endswith(" mean"):
        return None
    base = mean_layer.name[: -len(" mean")]
    for layer in viewer.layers:
        if layer.name == f"{base} {part}" or layer.name.startswith(f"{base} {part} ("):
            return layer
    return None


class DiagnosticsWidget(Container):
    """Residual map, chi-square, error map, coverage and std–error correlation of a reconstruction."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        viewer = self.viewer = napari_viewer
        self.result = layer_combo(viewer, "reconstruction (mean)", accept=lambda lyr: result_part(lyr) == "mean",
                                  tooltip="a mean layer made by Reconstruct (its metadata holds operator and noise)")
        self.std = layer_combo(viewer, "std", optional=True, accept=lambda lyr: result_part(lyr) == "std",
                               tooltip="empty: the mean's own std layer, if any")
        self.measurement = layer_combo(viewer, "measurement", optional=True, accept=lambda lyr: result_part(lyr) is None,
                                       tooltip="empty: the layer the reconstruction was made from")
        self.truth = layer_combo(viewer, "ground truth", optional=True, accept=lambda lyr: result_part(lyr) is None,
                                 tooltip="optional, for error and coverage")
        self.level = FloatSpinBox(label="interval level", value=0.9, min=0.5, max=0.999, step=0.01,
                                  tooltip="the central interval whose coverage of the truth is reported")
        self.compute_button = PushButton(text="Compute diagnostics")
        self.compute_button.changed.connect(lambda: self.run())
        self.report = report_label()
        self.numbers: dict[str, float] = {}
        super().__init__(widgets=[self.result, self.std, self.measurement, self.truth, self.level, self.compute_button,
                                  self.report])
        # issue #18: the hallucination map and the robustness check (self-contained sections, widgets/robustness.py)
        self.hallucination = HallucinationSection(viewer, self._problem)
        self.robustness = RobustnessSection(viewer, lambda: self.result.value)
        self.extend([self.hallucination, self.robustness])
        fit_dock(self)

    def _inputs(self) -> tuple[Layer, Reconstruction, Layer]:
        mean_layer = self.result.value
        if mean_layer is None:
            raise ValueError("Choose the mean layer of a reconstruction.")
        meta = mean_layer.metadata.get("invimg", {})
        mean = image_data(mean_layer, "reconstruction")
        std_layer = self.std.value or _companion(self.viewer, mean_layer, "std")
        samples_layer = _companion(self.viewer, mean_layer, "samples")
        std = image_data(std_layer, "std") if std_layer is not None else None
        if std is not None and std.shape != mean.shape:
            raise ValueError(f"The std layer {std_layer.name!r} {std.shape} and the mean {mean.shape} differ in shape.")
        samples = None
        if samples_layer is not None and std_layer is not None and samples_layer.data.shape[1:] == mean.shape:
            samples = np.asarray(samples_layer.data)
        measurement = self.measurement.value
        if measurement is None:
            source = meta.get("input")
            if source is None or source not in self.viewer.layers:
                raise ValueError("Choose the measurement layer (the reconstruction's input is not in the viewer).")
            measurement = self.viewer.layers[source]
        info = {k: v for k, v in meta.items() if k in ("calibration", "uncertainty", "method")}
        return mean_layer, Reconstruction(mean=mean, std=std, samples=samples, info=info), measurement

    def _problem(self) -> tuple[Layer, Reconstruction, Layer, np.ndarray, Any, Any]:
        """The chosen result with its measurement, forward model and noise model (from the layers' metadata)."""
        mean_layer, rec, measurement = self._inputs()
        y = image_data(measurement, "measurement")
        A = operator_from_metadata(mean_layer)
        noise = noise_from_metadata(mean_layer) or noise_from_metadata(measurement)
        if noise is None:
            raise ValueError(f"Neither {mean_layer.name!r} nor {measurement.name!r} records a noise model.")
        if y.shape != A.out_shape:
            raise ValueError(f"The measurement {measurement.name!r} has shape {y.shape}; the reconstruction's "
                             f"forward model produces {A.out_shape}.")
        return mean_layer, rec, measurement, y, A, noise

    def run(self) -> dict[str, float] | None:
        """Compute the diagnostics, add the residual (and error) layers and report the numbers; ``None`` on bad input."""
        try:
            mean_layer, rec, measurement, y, A, noise = self._problem()
            truth = None
            if self.truth.value is not None:
                truth = image_data(self.truth.value, "ground truth")
                if truth.shape != rec.mean.shape:
                    raise ValueError(f"The ground truth {truth.shape} and the reconstruction {rec.mean.shape} "
                                     "differ in shape.")
            numbers = diagnostics.summary(y, A, rec, noise, truth, level=float(self.level.value))
            residual = diagnostics.residual(y, A, rec.mean, noise)
        except Exception as exc:  # bad input: tell the user, add nothing
            report_error(exc)
            return None
        base = mean_layer.name[: -len(" mean")] if mean_layer.name.endswith(" mean") else mean_layer.name
        meta: dict[str, Any] = {"invimg": {"input": mean_layer.name, "output": "residual", **numbers}}
        residual = np.abs(residual) if np.iscomplexobj(residual) else residual
        set_image_layer(self.viewer, residual.astype(np.float32), f"{base} residual", colormap="bwr",
                        contrast_limits=(-3.0, 3.0), metadata=meta, **spatial_kwargs(measurement, residual.shape))
        if truth is not None:
            error = diagnostics.error_map(rec.mean, truth)
            set_image_layer(self.viewer, error, f"{base} error", colormap="magma",
                            metadata={"invimg": {"input": mean_layer.name, "output": "error", **numbers}},
                            **spatial_kwargs(mean_layer, error.shape))
        self.numbers = numbers
        self.report.value = self._describe(numbers)
        show_info(f"Diagnostics of {mean_layer.name}: {self._describe(numbers)}")
        return numbers

    def _describe(self, numbers: dict[str, float]) -> str:
        parts = [f"χ² = {numbers['chi2']:.3g} (≈1: fits to the noise)"]
        if "rmse" in numbers:
            parts.append(f"RMSE = {numbers['rmse']:.3g}")
        if "coverage" in numbers:
            parts.append(f"coverage of the {100 * self.level.value:.0f}% interval = {numbers['coverage']:.3f}")
            parts.append(f"std–error correlation = {numbers['std_error_correlation']:.3f}")
        return "; ".join(parts)
