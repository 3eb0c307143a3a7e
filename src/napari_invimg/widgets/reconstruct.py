"""The Reconstruct dock widget: a measurement layer, its forward model, a registered method and its parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, PushButton, SpinBox
from napari.layers import Image, Layer
from napari.utils.notifications import show_warning

from .. import operators, reconstruct
from ..api import method_info
from ..operators.base import Operator
from ..operators.blur import Blur
from ..operators.noise import NoiseModel
from ..tiling import tileable_methods
from ._layout import Section, fit_dock, report_label
from ._models import (
    ForwardModelControls,
    NoiseControls,
    ParameterForm,
    build_operator,
    device_choices,
    form_parameters,
    is_measurement,
    layer_combo,
    noise_from_metadata,
    operator_from_metadata,
    ordered_methods,
    pixel_size_um,
    preferred_layer,
    psf_from_layer,
)
from ._plot import history_plot
from ._runner import RunControls, Task, assessment, image_data, report_error, run_reconstruction
from ._settings import default_device
from .files import tiled_options

__all__ = ["ReconstructWidget"]

_SOURCES = (
    ("from the layer's metadata", "metadata"),
    ("built here", "built"),
    ("PSF image layer", "psf_layer"),
)


class ReconstructWidget(Container):
    """Reconstruct a measurement layer with a registered method; results appear as mean / std layers."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        viewer = self.viewer = napari_viewer
        self.measurement = layer_combo(viewer, "measurement",
                                       tooltip="the measured image; starts at the selected layer or one whose "
                                               "metadata say it is a measurement")
        self.source = ComboBox(label="forward model", choices=list(_SOURCES), value="metadata",
                               tooltip="metadata: the operator that simulated the layer; built here: a PSF from "
                                       "optics or a Gaussian; PSF image layer: a measured or computed PSF")
        self.forward = ForwardModelControls(viewer)
        self.psf_layer = layer_combo(viewer, "PSF layer", optional=True,
                                     tooltip="a PSF made by the Forward model widget, or a measured bead image")
        self.noise = NoiseControls(automatic=True)
        self._spec_cache: tuple[Any, Operator | None] = (None, None)
        self.method = ComboBox(label="method", choices=self._method_choices,
                               tooltip="registered methods that can use this forward model; the first suits it best")
        self.about = report_label()
        self.params = ParameterForm()
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1,
                            tooltip="seed of the method's randomness: the same seed gives the same result")
        devices = device_choices()
        self.device = ComboBox(label="device", choices=devices, value=default_device(devices),
                               tooltip="starts at the device set in Preferences › napari-invimg › Compute "
                                       "(auto when that device is not available here)")
        self.add_samples = CheckBox(label="add samples layer", value=False,
                                    tooltip="also add the posterior samples as a stack (one slice per sample)")
        self.rerun_button = PushButton(text="Re-run from the selected layer's metadata")
        self.controls = RunControls(self.run)
        self.task: Task | None = None
        self.history = history_plot()  # the logged loss / misfit of the run, live (None without matplotlib)
        self.assumptions = report_label()  # what the run will assume (a pixel size) or what the result showed
        self.model_section = Section("forward model and noise", [self.forward, self.psf_layer, self.noise],
                                     collapsed=True)
        self.advanced = Section("advanced", [self.seed, self.device, self.add_samples, self.rerun_button],
                                collapsed=True)
        super().__init__(widgets=[
            self.measurement, self.source, self.model_section, self.method, self.about, self.params,
            self.advanced, self.controls, self.assumptions,
            *([self.history] if self.history is not None else []),
        ])
        fit_dock(self)
        self.measurement.changed.connect(self._measurement_changed)
        self.source.changed.connect(self._source_changed)
        self.forward.kind.changed.connect(lambda _v: self.method.reset_choices())
        self.method.changed.connect(self._method_changed)
        self.rerun_button.changed.connect(lambda: self._rerun_selected())
        self.forward.psf_kind.changed.connect(lambda _v: self._update_assumptions())
        self.forward.kind.changed.connect(lambda _v: self._update_assumptions())
        self.noise.kind.changed.connect(lambda _v: self._update_assumptions())
        viewer.layers.events.inserted.connect(self._layer_inserted)
        self._choose_measurement()
        self._measurement_changed()

    def _choose_measurement(self) -> None:
        """Start at the selected layer or a measurement (never the truth when a measurement is there)."""
        self.measurement.reset_choices()
        layer = preferred_layer(self.viewer, [c for c in self.measurement.choices if c is not None])
        if layer is not None and layer is not self.measurement.value:
            self.measurement.value = layer

    def _layer_inserted(self, event) -> None:
        """A new measurement (a sample opened, a simulation made) becomes the one to reconstruct."""
        layer = getattr(event, "value", None)
        if is_measurement(layer) and self.measurement.value is not None and not is_measurement(self.measurement.value):
            self.measurement.reset_choices()
            if layer in self.measurement.choices:
                self.measurement.value = layer
        elif self.measurement.value is None or not is_measurement(self.measurement.value):
            self._choose_measurement()

    # -- form logic ---------------------------------------------------------------------------------------
    def _metadata_operator(self) -> Operator | None:
        """The operator in the measurement layer's metadata (rebuilt once per spec), or ``None``."""
        layer = self.measurement.value
        spec = layer.metadata.get("invimg", {}).get("operator") if layer is not None else None
        if spec is None:
            return None
        if self._spec_cache[0] is not spec:
            self._spec_cache = (spec, operators.from_spec(spec))
        return self._spec_cache[1]

    def operator_kind(self) -> str:
        """Class name of the operator the run will use."""
        if self.source.value == "built":
            return self.forward.kind.value
        if self.source.value == "metadata":
            A = self._metadata_operator()
            if A is not None:
                return A.name
        return "Blur"

    def _lazy_measurement(self) -> bool:
        """Whether the measurement is a dask-backed layer (reconstructed tile by tile)."""
        layer = self.measurement.value
        return layer is not None and type(layer.data).__module__.startswith("dask")

    def _method_choices(self, _widget=None) -> list[tuple[str, str]]:
        """Registered methods that can use the chosen forward model (the registry decides); for a dask-backed
        layer, those that run tile by tile."""
        try:
            A = self._metadata_operator() if self.source.value == "metadata" else None
            names = ordered_methods(A if A is not None else self.operator_kind())
        except ValueError:  # a spec that no longer builds: the run will say why
            names = []
        if self._lazy_measurement():
            names = [n for n in names if n in tileable_methods()]
        return [(f"{method_info(n)['label']} ({n})", n) for n in names]

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
        if self.source.value != "metadata":
            self.model_section.expand()
        previous = self.method.value
        self.method.reset_choices()
        choices = list(self.method.choices)
        if choices and previous not in choices[:1]:
            self.method.value = choices[0]  # the method that suits the (new) forward model
        self._method_changed()
        self._update_assumptions()

    def assumed(self) -> list[str]:
        """What a run would assume that the data do not say (shown in the dock before the run)."""
        out = []
        layer = self.measurement.value
        if layer is None:
            return out
        src, pk = self.source.value, self.forward.psf_kind.value
        optical = src == "built" and self.forward.kind.value in ("Blur", "Downsampling") and pk in (
            "born_wolf", "richards_wolf", "gibson_lanni", "bead")
        if (optical or src == "psf_layer") and pixel_size_um(layer, -1) is None:
            out.append(f"⚠ {layer.name!r} has no pixel size (scale 1, no units): assuming "
                       f"{self.forward.pixel_size.value:g} µm per pixel for the PSF — set 'pixel (µm)' under "
                       "'forward model and noise', or the layer's scale.")
        if src == "built" and self.noise.kind.value == "auto" and noise_from_metadata(layer) is None:
            out.append("Noise: estimated from the data (Gaussian σ); set it under 'forward model and noise' if "
                       "you know the camera's gain and read noise.")
        return out

    def _update_assumptions(self) -> None:
        try:
            self.assumptions.value = "\n".join(self.assumed())
        except Exception:  # a form in the middle of a change: said at run time instead
            self.assumptions.value = ""

    def _method_changed(self, *_: Any) -> None:
        name = self.method.value
        if name is None:
            self.params.set_schema([])
            self.about.value = "no registered method fits this forward model"
            return
        info = method_info(name)
        self.params.set_schema(form_parameters(info["parameters"], self.operator_kind()))
        kind = info["uncertainty"]
        self.about.value = f"returns std ({kind})" if info["returns_std"] else "returns a mean image"
        if self._lazy_measurement():
            self.about.value += ", tile by tile into a Zarr store"
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
            data = image_data(layer, "measurement", allow_lazy=True)
            tiled = tiled_options(layer, data)  # a dask-backed layer: tile by tile into a Zarr store
            shape_of = np.broadcast_to(np.float32(0), tiled["operator_shape"]) if tiled else data
            make_operator = (lambda: operator) if operator is not None else self.forward_model(layer, shape_of)
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
            if tiled:
                return reconstruct(data, A, method, noise=noise, seed=seed, device=device, progress=progress,
                                   output=tiled["output"], pixel_size_um=tiled["pixel_size_um"],
                                   tile_memory_bytes=tiled["tile_memory_bytes"], pilot=tiled["pilot"], **params)
            y = data
            if y.shape != A.out_shape:
                if y.size != int(np.prod(A.out_shape)):
                    raise ValueError(f"The measurement {layer.name!r} has shape {y.shape} but the forward model "
                                     f"produces {A.out_shape}.")
                y = y.reshape(A.out_shape)  # e.g. compressed-sensing data shown as a (1, m) image
            return reconstruct(y, A, method, noise=noise, seed=seed, device=device, progress=progress, **params)

        add_samples = bool(self.add_samples.value and method_info(method)["returns_std"])
        if self.history is not None:
            self.history.clear()
        before = self.assumed() if operator is None else []
        self.assumptions.value = "\n".join(before)
        data_range = None if tiled else float(np.ptp(np.abs(data))) or None

        def done(rec, cancelled: bool) -> None:
            if rec is None:
                return
            if self.history is not None:
                self.history.finish(rec.info)
            notes = before + assessment(rec, data_range)
            self.assumptions.value = "\n".join(notes)
            for note in notes:
                if note.startswith("⚠"):
                    show_warning(f"{method}: {note.lstrip('⚠ ')}")

        self.task = run_reconstruction(self.viewer, layer, compute, method=method, total=total, add_samples=add_samples,
                                       controls=self.controls, on_done=done,
                                       on_status=self.history.add if self.history is not None else None)
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
