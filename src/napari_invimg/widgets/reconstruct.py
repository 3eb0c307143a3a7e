"""The Reconstruct dock widget: a measurement layer, its forward model, a registered method and its parameters."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, LineEdit, PushButton, SpinBox, Widget
from napari.layers import Image, Layer

from .. import reconstruct
from ..api import method_info
from ..operators.base import Operator
from ..operators.blur import Blur
from ..operators.noise import NoiseModel
from ._models import (
    ForwardModelControls,
    NoiseControls,
    build_operator,
    device_choices,
    layer_combo,
    methods_for,
    noise_from_metadata,
    operator_from_metadata,
    psf_from_layer,
)
from ._runner import RunControls, Task, image_data, report_error, run_reconstruction

__all__ = ["ReconstructWidget", "ParameterForm"]

_SOURCES = (
    ("from the layer's metadata", "metadata"),
    ("built here", "built"),
    ("PSF image layer", "psf_layer"),
)


def _float_step(default: float | None, low: float | None) -> float:
    ref = abs(default) if default else (abs(low) if low else 1.0)
    return 10.0 ** (math.floor(math.log10(ref)) - 1) if ref > 0 else 0.01


class ParameterForm(Container):
    """Input widgets generated from a method's parameter schema (:func:`napari_invimg.method_info`).

    ``bool`` → check box, choices → combo box, numbers → spin boxes within their bounds; a parameter
    whose default is ``None`` ("chosen automatically") is a text field left empty for automatic.
    """

    def __init__(self, parameters: list[dict[str, Any]] | None = None):
        super().__init__(widgets=[])
        self._schema: dict[str, dict[str, Any]] = {}
        self.set_schema(parameters or [])

    @staticmethod
    def _make_input(p: dict[str, Any]) -> Widget:
        name, kind, default, (low, high) = p["name"], p["type"], p["default"], p["bounds"]
        common = {"name": name, "label": name.replace("_", " "), "tooltip": p.get("doc", "")}
        if p.get("choices"):
            return ComboBox(choices=list(p["choices"]), value=default, **common)
        if kind == "bool":
            return CheckBox(value=bool(default), **common)
        if default is None or kind not in ("int", "float") or p.get("log_scale"):
            tip = (common["tooltip"] + " — empty: automatic").strip(" —") if default is None else common["tooltip"]
            common["tooltip"] = tip
            return LineEdit(value="" if default is None else repr(default) if kind != "str" else default, **common)
        if kind == "int":
            return SpinBox(value=int(default), min=int(low) if low is not None else -(2**31) + 1,
                           max=int(min(high, 2**31 - 1)) if high is not None else 2**31 - 1, **common)
        return FloatSpinBox(value=float(default), min=float(low) if low is not None else -1e12,
                            max=float(high) if high is not None else 1e12, step=_float_step(default, low), **common)

    def set_schema(self, parameters: list[dict[str, Any]]) -> None:
        self.clear()
        self._schema = {p["name"]: p for p in parameters}
        for p in parameters:
            self.append(self._make_input(p))

    def values(self) -> dict[str, Any]:
        """The parameters as typed values (an empty text field gives ``None`` = automatic)."""
        out: dict[str, Any] = {}
        for w in self:
            p = self._schema[w.name]
            v = w.value
            if isinstance(w, LineEdit):
                text = str(v).strip()
                if text in ("", "auto", "None"):
                    v = None
                elif p["type"] in ("int", "float"):
                    try:
                        v = float(text) if p["type"] == "float" else int(float(text))
                    except ValueError:
                        raise ValueError(f"Parameter {w.name!r} must be a number (or empty for automatic); "
                                         f"got {text!r}.") from None
                else:
                    v = text
            out[w.name] = v
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        for w in self:
            if w.name not in values:
                continue
            v = values[w.name]
            if isinstance(w, LineEdit):
                v = "" if v is None else v if isinstance(v, str) else repr(v)
            w.value = v


class ReconstructWidget(Container):
    """Reconstruct a measurement layer with a registered method; results appear as mean / std layers."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        viewer = self.viewer = napari_viewer
        self.measurement = layer_combo(viewer, "measurement")
        self.source = ComboBox(label="forward model", choices=list(_SOURCES), value="metadata")
        self.forward = ForwardModelControls(viewer)
        self.psf_layer = layer_combo(viewer, "PSF layer", optional=True,
                                     tooltip="a PSF made by the Forward model widget, or a measured bead image")
        self.noise = NoiseControls(automatic=True)
        self.method = ComboBox(label="method", choices=self._method_choices)
        self.about = Label(value="")
        self.params = ParameterForm()
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1)
        self.device = ComboBox(label="device", choices=device_choices())
        self.add_samples = CheckBox(label="add samples layer", value=False)
        self.rerun_button = PushButton(text="Re-run from the selected layer's metadata")
        self.controls = RunControls(self.run)
        self.task: Task | None = None
        super().__init__(widgets=[
            self.measurement, self.source, self.forward, self.psf_layer, self.noise, self.method, self.about,
            self.params, self.seed, self.device, self.add_samples, self.controls, self.rerun_button,
        ])
        self.measurement.changed.connect(self._measurement_changed)
        self.source.changed.connect(self._source_changed)
        self.forward.kind.changed.connect(lambda _v: self.method.reset_choices())
        self.method.changed.connect(self._method_changed)
        self.rerun_button.changed.connect(lambda: self._rerun_selected())
        self._measurement_changed()

    # -- form logic ---------------------------------------------------------------------------------------
    def operator_kind(self) -> str:
        """Class name of the operator the run will use (filters the method list)."""
        source = self.source.value
        if source == "psf_layer":
            return "Blur"
        if source == "built":
            return self.forward.kind.value
        spec = (self.measurement.value.metadata.get("invimg", {}).get("operator") if self.measurement.value else None)
        return spec["type"] if spec else "Blur"

    def _method_choices(self, _widget=None) -> list[tuple[str, str]]:
        return [(f"{method_info(n)['label']} ({n})", n) for n in methods_for(self.operator_kind())]

    def _measurement_changed(self, *_: Any) -> None:
        layer = self.measurement.value
        if layer is not None:
            has_spec = "operator" in layer.metadata.get("invimg", {})
            if self.source.value == "metadata" and not has_spec:
                self.source.value = "built"
            elif has_spec and self.source.value != "metadata":
                self.source.value = "metadata"
            self.forward.set_reference(layer, data_layer=True)
        self._source_changed()

    def _source_changed(self, *_: Any) -> None:
        self.forward.visible = self.source.value == "built"
        self.psf_layer.visible = self.source.value == "psf_layer"
        self.method.reset_choices()
        self._method_changed()

    def _method_changed(self, *_: Any) -> None:
        name = self.method.value
        if name is None:
            self.params.set_schema([])
            self.about.value = "no registered method fits this forward model"
            return
        info = method_info(name)
        self.params.set_schema(info["parameters"])
        kind = info["uncertainty"]
        self.about.value = f"returns std ({kind})" if info["returns_std"] else "returns a mean image"
        self.about.tooltip = f"{info['description']}\n\n{info['reference']}"
        self.add_samples.visible = bool(info["returns_std"])

    # -- running ---------------------------------------------------------------------------------------------
    def forward_model(self, layer: Layer, data: np.ndarray) -> Callable[[], Operator]:
        """A function making the operator chosen in the form for the measurement ``data`` of ``layer``; the form
        and layers are read now (main thread), the operator is built where the function is called (worker)."""
        source = self.source.value
        if source == "metadata":
            A = operator_from_metadata(layer)
            return lambda: A
        if source == "psf_layer":
            if self.psf_layer.value is None:
                raise ValueError("Choose the PSF image layer.")
            kernel = psf_from_layer(self.psf_layer.value, self.forward.pixel_um(data.ndim))
            boundary = self.forward.boundary.value
            return lambda: Blur(kernel, data.shape, boundary=boundary)
        settings, shape = self.forward.settings(), self.forward.image_shape(data.shape)
        return lambda: build_operator(settings, shape)

    def noise_model(self, layer: Layer) -> NoiseModel | None:
        built = self.noise.build()
        return built if built is not None else noise_from_metadata(layer)

    def run(self, operator: Operator | None = None, noise: NoiseModel | None = None, method: str | None = None,
            params: dict[str, Any] | None = None) -> Task | None:
        """Start a reconstruction with the form's settings; the arguments given override the form's."""
        try:
            layer = self.measurement.value
            data = image_data(layer, "measurement")
            make_operator = (lambda: operator) if operator is not None else self.forward_model(layer, data)
            noise = noise if noise is not None else self.noise_model(layer)
            method = method or self.method.value
            if method is None:
                raise ValueError("No registered method can use this forward model.")
            params = self.params.values() if params is None else params
            total = int(params.get("iterations") or params.get("n_samples") or 1)
            seed, device = int(self.seed.value), self.device.value
        except Exception as exc:  # bad input: tell the user, add nothing
            report_error(exc)
            return None

        def compute(progress):
            A = make_operator()
            y = data
            if y.shape != A.out_shape:
                if y.size != int(np.prod(A.out_shape)):
                    raise ValueError(f"The measurement {layer.name!r} has shape {y.shape} but the forward model "
                                     f"produces {A.out_shape}.")
                y = y.reshape(A.out_shape)  # e.g. compressed-sensing data shown as a (1, m) image
            return reconstruct(y, A, method, noise=noise, seed=seed, device=device, progress=progress, **params)

        add_samples = bool(self.add_samples.value and method_info(method)["returns_std"])
        self.task = run_reconstruction(self.viewer, layer, compute, method=method, total=total, add_samples=add_samples,
                                       controls=self.controls)
        return self.task

    def rerun_from(self, result: Layer) -> Task | None:
        """Replay a result layer: its input layer, operator, noise, method, parameters and seed from its metadata."""
        try:
            meta = result.metadata.get("invimg", {})
            if "method" not in meta or "input" not in meta:
                raise ValueError(f"The layer {result.name!r} is no napari-invimg result (no method in metadata).")
            if meta["input"] not in self.viewer.layers:
                raise ValueError(f"The input layer {meta['input']!r} of {result.name!r} is no longer in the viewer.")
            source = self.viewer.layers[meta["input"]]
            if not isinstance(source, Image):
                raise ValueError(f"The input layer {meta['input']!r} is not an image layer.")
            operator = operator_from_metadata(result)
            noise = noise_from_metadata(result)
            self.measurement.value = source
            if meta["method"] in [c for c in self.method.choices]:
                self.method.value = meta["method"]
                self.params.set_values(meta.get("params", {}))
            self.seed.value = int(meta.get("seed") or 0)
        except Exception as exc:
            report_error(exc)
            return None
        return self.run(operator=operator, noise=noise, method=meta["method"], params=dict(meta.get("params", {})))

    def _rerun_selected(self) -> None:
        layer = self.viewer.layers.selection.active
        if layer is None:
            report_error(ValueError("Select a result layer (a mean or std made by napari-invimg) first."))
            return
        self.rerun_from(layer)
