"""The Black hole imaging dock: an observation layer + a registered method → image (mean, and std for samplers)
in micro-arcseconds, with the normalized residuals of each data product.

An observation layer is any image layer carrying an :class:`~napari_invimg.blackhole.Observation` in
``metadata["invimg_observation"]``: the dirty image made by the Black hole observation dock
(:mod:`napari_invimg.widgets.blackhole_observation`), by a dropped ``.uvfits`` file or by the ``black_hole``
sample. The image grid starts from the layer's own (``npix``, ``fov_uas`` in its metadata). Result layers
have ``scale`` = pixel size and ``units`` = microarcsecond (napari's status bar and scale bar read µas).
"""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox, SpinBox
from napari.layers import Image
from napari.utils.notifications import show_info

from .. import blackhole, method_info, reconstruct
from ..methods import registry
from ..operators.noise import Gaussian
from ._layout import Section, fit_dock, report_label
from ._models import ParameterForm, form_parameters, ordered_methods, preferred_layer
from ._runner import LayerInfo, RunControls, Task, assessment, report_error, run_reconstruction
from .uvfits_reader import FOV_UAS, NPIX, UNIT, image_geometry, observation_name, observation_of

__all__ = ["BlackHoleImagingWidget", "BlackHoleWidget", "residual_summary", "UNIT"]

_DATA_CHOICES = {"visibilities": "vis", "amplitudes + closure phases": "amp_cphase", "closures only": "closures"}


def residual_summary(residuals: dict[str, np.ndarray]) -> str:
    """One line per data product: number of data and RMS of the normalized residuals (≈ 1 at the noise)."""
    return "; ".join(f"{name}: n={r.size}, rms {np.sqrt(np.mean(r**2)):.2f}" for name, r in residuals.items())


def _operator_class(data_choice: str) -> type:
    """The operator a data product is imaged with: closure quantities, or the visibilities' Fourier sampling."""
    return blackhole.Closures if _DATA_CHOICES.get(data_choice) == "closures" else blackhole.Interferometer


class BlackHoleImagingWidget(Container):
    """Image an observation layer with a registered method; results in µas with their normalized residuals."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        self.viewer = napari_viewer
        self.observation = ComboBox(label="observation", choices=self._observation_choices, nullable=True,
                                    tooltip="an image layer carrying visibilities: the dirty image of the Black hole "
                                            "observation dock, of a dropped .uvfits file or of the black_hole sample")
        self.npix = SpinBox(label="image pixels", value=NPIX, min=16, max=256,
                            tooltip="pixels along each side of the reconstructed image (from the observation layer)")
        self.fov = FloatSpinBox(label="field of view (µas)", value=FOV_UAS, min=10.0, max=10000.0,
                                tooltip="width of the image in micro-arcseconds (from the observation layer)")
        self.data = ComboBox(label="data", choices=list(_DATA_CHOICES), value="visibilities",
                             tooltip="visibilities: all the data; closures: immune to station gain and phase "
                                     "errors, but lose the absolute position and flux")
        self.method = ComboBox(label="method", choices=self._method_choices,
                               tooltip="registered methods that can image these data (the registry decides)")
        self.form = ParameterForm()
        self.parameters = Section("method parameters", [self.form], collapsed=True)
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1, tooltip="seed of the method's randomness")
        self.controls = RunControls(self.run, run_text="Image")
        self.residuals = report_label()
        super().__init__(widgets=[self.observation, self.npix, self.fov, self.data, self.method, self.parameters,
                                  self.seed, self.controls, self.residuals])
        fit_dock(self)
        self.task: Task | None = None
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(lambda _e: self._layers_changed())
        self.observation.changed.connect(self._observation_changed)
        self.data.changed.connect(self._data_changed)
        self.method.changed.connect(self._method_changed)
        self._layers_changed()
        self._method_changed()

    # -- choices -----------------------------------------------------------------------------------------
    def _observation_choices(self, _widget=None) -> list:
        return [(layer.name, layer) for layer in self.viewer.layers
                if isinstance(layer, Image) and observation_of(layer) is not None]

    def _method_choices(self, _widget=None) -> list[str]:
        return ordered_methods(_operator_class(self.data.value))

    def _layers_changed(self) -> None:
        """Refresh the observation choice; an empty one takes the selected or newest observation layer."""
        self.observation.reset_choices()
        if self.observation.value is None:
            found = [c for c in self.observation.choices if c is not None]
            chosen = preferred_layer(self.viewer, found, want=lambda layer: observation_of(layer) is not None)
            if chosen is not None:
                self.observation.value = chosen

    def _data_changed(self, *_: Any) -> None:
        """The methods for the new data, and the form for its operator (closure-only parameters come and go); while
        the method stays, the values typed for parameters both forms show are kept."""
        method = self.method.value
        try:
            typed = self.form.values()
        except ValueError:  # a half-typed number: the new form starts from the defaults
            typed = {}
        self.method.reset_choices()
        self._method_changed()
        if self.method.value == method:
            self.form.set_values(typed)

    def _method_changed(self, *_: Any) -> None:
        """Show the chosen method's parameters at the registry's defaults ('data' is the data combo's)."""
        parameters = method_info(self.method.value)["parameters"] if self.method.value else []
        kind = _operator_class(self.data.value).__name__
        self.form.set_schema([p for p in form_parameters(parameters, kind) if p["name"] != "data"])

    def _observation_changed(self, *_: Any) -> None:
        layer = self.observation.value
        if layer is None:
            return
        facts = layer.metadata.get("invimg", {})
        if facts.get("npix"):
            self.npix.value = int(facts["npix"])
        if facts.get("fov_uas"):
            self.fov.value = float(facts["fov_uas"])

    @property
    def obs(self) -> blackhole.Observation | None:
        """The observation of the chosen layer."""
        layer = self.observation.value
        return observation_of(layer) if layer is not None else None

    # -- imaging -------------------------------------------------------------------------------------------
    def _problem(self):
        """Operator, data, noise and method parameters for the chosen data products."""
        obs = self.obs
        if obs is None:
            raise ValueError("Choose an observation layer: simulate or load one in the Black hole observation dock, "
                             "drop a .uvfits file on the viewer, or open the black_hole sample.")
        npix, fov = int(self.npix.value), float(self.fov.value)
        kind = _DATA_CHOICES[self.data.value]
        method = str(self.method.value)
        params: dict[str, Any] = {}
        if kind == "closures":
            A = blackhole.Closures(obs, npix, fov)
            y, noise = A.data, Gaussian(A.sigma)
        else:
            A = blackhole.Interferometer(obs, npix, fov)
            y, noise = obs.vis.astype(np.complex64), Gaussian(obs.sigma.astype(np.float32))
        params.update(self.form.values())
        if "data" in {p.name for p in registry.get(method).params}:
            params["data"] = kind
        return A, y, noise, params

    def run(self) -> Task | None:
        """Image the observation with the chosen method; mean (and std) layers in µas, residuals reported."""
        try:
            if not self.method.value:
                raise ValueError("No registered method can image these data; choose other data products.")
            A, y, noise, params = self._problem()
            method = str(self.method.value)
            reason = registry.get(method).supports(A)
            if reason:
                raise ValueError(reason)
            seed = int(self.seed.value)
            name = observation_name(self.observation.value)
            npix = int(self.npix.value)
            geometry = image_geometry(npix, float(self.fov.value))
            reference = LayerInfo(name, (npix, npix), geometry["scale"], geometry["translate"], geometry["units"],
                                  geometry["axis_labels"])
        except Exception as exc:
            report_error(exc)
            return None

        def compute(progress):
            return reconstruct(y, A, method, noise=noise, seed=seed, progress=progress, **params)

        base = f"{name} · {method}"

        def done(rec, cancelled: bool) -> None:
            if rec is None:
                return
            from ..blackhole.rml import normalized_residuals

            res = normalized_residuals(rec.mean, A, y, noise.sigma)
            text = residual_summary(res)
            self.residuals.value = "\n".join([f"normalized residuals (≈ 1 at the noise): {text}", *assessment(rec)])
            mean_name = f"{base} mean"
            if mean_name in self.viewer.layers:
                meta = self.viewer.layers[mean_name].metadata["invimg"]
                meta["normalized_residuals"] = {k: v.tolist() for k, v in res.items()}
                meta["unit"] = "µas"
            show_info(f"{method} normalized residuals — {text}")

        total = int(params.get("iterations") or 100)
        self.task = run_reconstruction(self.viewer, reference, compute, method=method, total=total, name=base,
                                       on_done=done, controls=self.controls,
                                       add_samples=registry.get(method).uncertainty == "posterior")
        return self.task


#: deprecated alias: the Black hole dock was split into observation and imaging docks (2026-12)
BlackHoleWidget = BlackHoleImagingWidget
