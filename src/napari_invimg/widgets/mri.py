"""The MRI dock widget (the k-space reader is :mod:`napari_invimg.widgets.kspace_reader`, the MRI samples are
in :mod:`napari_invimg._sample_data`).

Simulate: an image layer or a bundled phantom → coil sensitivities, sampling pattern, acceleration and
noise → undersampled multi-coil k-space (a log-magnitude layer whose metadata hold the complex data),
the mask, the zero-filled root-sum-of-squares image, and the acceleration / scan time saved.
Reconstruct: a k-space layer (simulated, or read from a fastMRI ``.h5`` / complex ``.npy`` file) and a
method from the registry → magnitude mean and std layers (phase on request), with the coil maps'
origin and the method in the layers' metadata.
"""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
import torch
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, SpinBox
from napari.layers import Image
from napari.utils.notifications import show_info

from .. import __version__, method_info, mri, reconstruct
from .._sample_data import mri_phantom
from ..operators.noise import Gaussian
from ._layout import Section, fit_dock, report_label
from ._models import ParameterForm, ordered_methods
from ._plot import history_plot
from ._runner import (
    LayerInfo,
    RunControls,
    Task,
    assessment,
    later,
    report_error,
    run_reconstruction,
    run_task,
    set_image_layer,
)
from .kspace_reader import log_magnitude

__all__ = ["MRIWidget", "PHANTOMS"]

PHANTOMS = {"brain phantom": "brain", "Shepp–Logan phantom": "shepp_logan"}


def _kspace_layer_data(layer: Image) -> np.ndarray:
    meta = layer.metadata.get("invimg", {}) if layer is not None else {}
    if "kspace" not in meta:
        raise ValueError("Choose a k-space layer made by the MRI widget or read from a .h5 / .npy k-space file.")
    return np.asarray(meta["kspace"])




class MRIWidget(Container):
    """Simulate undersampled multi-coil k-space and reconstruct it with any method that fits the MRI operator."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        viewer = self.viewer = napari_viewer
        # -- simulation ---------------------------------------------------------------------------------
        self.source = ComboBox(label="image", choices=self._source_choices,
                               tooltip="an image layer (magnitude or complex) or a bundled phantom")
        self.size = SpinBox(label="phantom size", value=256, min=32, max=1024, step=16,
                            tooltip="pixels along each side of the bundled phantom")
        self.coils = SpinBox(label="coils", value=8, min=1, max=32, tooltip="receive coils (simulated birdcage maps)")
        self.pattern = ComboBox(label="sampling", choices=list(mri.MASK_KINDS), value="equispaced",
                                tooltip="k-space sampling pattern: equispaced or random lines (fastMRI), "
                                        "Poisson disc (variable density), radial spokes")
        self.acceleration = FloatSpinBox(label="acceleration", value=4.0, min=1.0, max=32.0, step=0.5,
                                         tooltip="how many times fewer samples than a full scan")
        self.center = FloatSpinBox(label="center fraction", value=0.0, min=0.0, max=1.0, step=0.01,
                                   tooltip="fully sampled center; 0: fastMRI's 0.32 / acceleration")
        self.snr = FloatSpinBox(label="SNR (dB)", value=30.0, min=0.0, max=120.0, step=1.0,
                                tooltip="signal-to-noise ratio of the simulated k-space; 0: no noise")
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1, tooltip="seed of the noise and random masks")
        self.report = report_label()
        self.sim_controls = RunControls(self.simulate, run_text="Simulate k-space")
        # -- reconstruction --------------------------------------------------------------------------
        self.kspace = ComboBox(label="k-space", choices=self._kspace_choices, nullable=True,
                               tooltip="a k-space layer: simulated here, a sample, or a .h5 / .npy file")
        self.slice = SpinBox(label="slice", value=0, min=0, max=0, tooltip="slice of a multi-slice scan")
        self.maps = ComboBox(label="coil maps", choices=["ESPIRiT", "simulated (true)"], value="ESPIRiT",
                             tooltip="coil sensitivities: estimated from the data (ESPIRiT) or the simulation's own")
        self.method = ComboBox(label="method", choices=self._method_choices,
                               tooltip="registered methods that fit the MRI operator")
        self.form = ParameterForm()
        self.phase = CheckBox(label="phase layer", value=False, tooltip="also add the phase of the complex image")
        self.rec_controls = RunControls(self.reconstruct, run_text="Reconstruct")
        self.rec_report = report_label()
        self.history = history_plot()
        self.task: Task | None = None
        self.simulation = Section("simulate k-space", [
            self.source, self.size, self.coils, self.pattern, self.acceleration, self.center, self.snr, self.seed,
            self.sim_controls, self.report], collapsed=False)
        self.advanced = Section("advanced", [self.slice, self.maps, self.phase], collapsed=True)
        super().__init__(widgets=[
            self.simulation, Label(value="reconstruct"), self.kspace, self.method, self.form, self.advanced,
            self.rec_controls, self.rec_report, *([self.history] if self.history is not None else []),
        ])
        fit_dock(self)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(lambda _e: self._layers_changed())
        self.kspace.changed.connect(self._kspace_changed)
        self.method.changed.connect(self._method_changed)
        self._layers_changed()
        self._kspace_changed()
        self._method_changed()

    def _layers_changed(self) -> None:
        """Refresh the combos; an empty k-space choice takes the newest k-space layer (e.g. the MRI sample)."""
        self.source.reset_choices()
        self.kspace.reset_choices()
        if self.kspace.value is None:
            found = [c for c in self.kspace.choices if c is not None]
            if found:
                self.kspace.value = found[-1]

    # -- choices -------------------------------------------------------------------------------------
    def _source_choices(self, _widget=None) -> list:
        layers = [(layer.name, layer) for layer in self.viewer.layers
                  if isinstance(layer, Image) and not layer.rgb and "kspace" not in layer.metadata.get("invimg", {})]
        return [(k, v) for k, v in PHANTOMS.items()] + layers

    def _kspace_choices(self, _widget=None) -> list:
        return [(layer.name, layer) for layer in self.viewer.layers
                if isinstance(layer, Image) and "kspace" in layer.metadata.get("invimg", {})]

    def _method_choices(self, _widget=None) -> list[str]:
        return ordered_methods(mri.CartesianMRI)  # tv first: best on the benchmark

    def _kspace_changed(self, *_: Any) -> None:
        layer = self.kspace.value
        if layer is None:
            return
        k = np.asarray(layer.metadata["invimg"]["kspace"])
        self.slice.max = max(k.shape[0] - 1, 0) if k.ndim == 4 else 0
        has_true = layer.metadata["invimg"].get("coil_maps") is not None
        self.maps.value = "simulated (true)" if has_true else "ESPIRiT"

    def _method_changed(self, *_: Any) -> None:
        if self.method.value:
            self.form.set_schema(method_info(self.method.value)["parameters"])

    # -- simulation ------------------------------------------------------------------------------------
    def _image(self) -> tuple[np.ndarray, str, LayerInfo | None]:
        src = self.source.value
        if isinstance(src, str):
            return mri_phantom(src, int(self.size.value)), src, None
        if src is None:
            raise ValueError("Choose an image layer or a phantom to simulate from.")
        data = np.asarray(src.data)
        if data.ndim != 2:
            raise ValueError(f"The MRI simulation takes a 2D image; {src.name!r} has shape {data.shape}.")
        if not np.isfinite(data).all():
            raise ValueError(f"The image {src.name!r} contains NaN or infinite values.")
        x = data.astype(np.complex64)
        peak = float(np.abs(x).max())
        if peak == 0:
            raise ValueError(f"The image {src.name!r} is all zero.")
        return x / peak, src.name, LayerInfo.of(src)

    def simulate(self) -> Task | None:
        """Simulate k-space in a worker; adds the k-space, mask and zero-filled RSS layers."""
        try:
            x, name, info = self._image()
            settings = dict(n_coils=int(self.coils.value), kind=self.pattern.value,
                            acceleration=float(self.acceleration.value),
                            center_fraction=float(self.center.value) or None,
                            snr_db=float(self.snr.value) or None, seed=int(self.seed.value))
            if settings["center_fraction"] is None and settings["kind"] in ("equispaced", "random"):
                settings["center_fraction"] = min(mri.default_center_fraction(settings["acceleration"]),
                                                  1.0 / settings["acceleration"])
        except Exception as exc:
            report_error(exc)
            return None

        def compute(progress):
            sc = mri.simulate_kspace(x, **settings)
            with torch.no_grad():
                zf = sc.operator.combine_rss(torch.from_numpy(sc.kspace)).numpy()
            progress(1, 1)
            return sc, zf

        def show(result, cancelled: bool) -> None:
            if result is None:
                return
            sc, zf = result
            geometry = {"scale": info.scale, "translate": info.translate} if info is not None else {}
            saved = 1 - 1 / sc.acceleration
            meta = {"kspace": sc.kspace, "coil_maps": sc.coil_maps, "mask": sc.mask, "sigma": sc.sigma,
                    "operator": sc.operator.spec(), "noise": Gaussian(max(sc.sigma, 1e-12)).spec(),
                    "source": name, "acceleration": sc.acceleration, "scan_time_saved": saved,
                    "settings": settings, "version": __version__, "image_geometry": geometry or None}
            # each layer in an event-loop turn of its own (napari needs 0.2-0.3 s of UI time per new layer)
            layers = [(log_magnitude(sc.kspace), f"{name} · k-space", {"metadata": {"invimg": meta}}),
                      (sc.mask.astype(np.float32), f"{name} · mask",
                       {"metadata": {"invimg": {"source": name, "acceleration": sc.acceleration}}}),
                      (zf, f"{name} · zero-filled RSS",
                       {"metadata": {"invimg": {"source": name, "method": "zero-filled RSS"}}, **geometry})]
            if info is None:
                layers.append((np.abs(x), f"{name} · truth", {"metadata": {"invimg": {"source": name}}}))
            for data, layer_name, kwargs in layers:
                later(lambda d=data, n=layer_name, k=kwargs: set_image_layer(self.viewer, d, n, colormap="gray", **k))
            text = (f"acceleration {sc.acceleration:.2f}× — {100 * saved:.0f} % of the scan time saved "
                    f"({sc.mask.sum()} of {sc.mask.size} k-space samples, {settings['n_coils']} coils)")
            self.report.value = text
            show_info(text)

            def choose_kspace() -> None:
                self.kspace.reset_choices()
                self.kspace.value = self.viewer.layers[f"{name} · k-space"]
                self._kspace_changed()

            later(choose_kspace)

        self.task = run_task(compute, total=1, desc=f"simulate k-space of {name}", on_done=show,
                             controls=self.sim_controls)
        return self.task

    # -- reconstruction -------------------------------------------------------------------------------
    def operator_for(self, layer: Image) -> tuple[np.ndarray, Any, str]:
        """The slice's k-space and its operator (mask from the non-zero samples, maps true or by ESPIRiT)."""
        return self._operator_maker(layer)()

    def _operator_maker(self, layer: Image):
        """Checks the k-space now (main thread) and returns a function that builds the operator (ESPIRiT may take
        seconds: the run calls it in the worker)."""
        meta = layer.metadata["invimg"]
        k = _kspace_layer_data(layer)
        if not np.iscomplexobj(k):
            raise ValueError("The k-space must be complex.")
        if k.ndim == 4:
            k = k[int(self.slice.value)]
            if k.shape[0] == 1:
                k = k[0]
        if not np.any(k):
            raise ValueError("The k-space of this slice is all zero.")
        mask = meta.get("mask")
        mask = np.any(k != 0, axis=0) if mask is None and k.ndim == 3 else (k != 0) if mask is None else mask
        if k.ndim == 2:
            return lambda: (k, mri.CartesianMRI(mask), "single coil")
        if self.maps.value == "simulated (true)":
            maps = meta.get("coil_maps")
            if maps is None:
                raise ValueError("This k-space has no simulated coil maps; choose ESPIRiT.")
            return lambda: (k, mri.CartesianMRI(mask, coil_maps=maps), "simulated (true)")
        return lambda: (k, mri.CartesianMRI(mask, coil_maps=mri.espirit(k)), "ESPIRiT")

    def reconstruct(self) -> Task | None:
        """Reconstruct the chosen k-space with the chosen method in a worker; adds mean / std (/ phase) layers."""
        try:
            layer = self.kspace.value
            if layer is None:
                raise ValueError("Simulate or open k-space first (a .h5 or .npy file, or the Simulate button).")
            method = self.method.value
            params = self.form.values()
            meta = layer.metadata["invimg"]
            sigma = meta.get("sigma")
            noise = Gaussian(sigma) if sigma else None
            want_phase = bool(self.phase.value)
            seed = int(self.seed.value)
            total = int(params.get("iterations") or 1)
            info = LayerInfo.of(layer)
            if meta.get("image_geometry"):
                info = LayerInfo(info.name, info.shape, tuple(meta["image_geometry"]["scale"]),
                                 tuple(meta["image_geometry"]["translate"]), metadata=info.metadata)
            make_operator = self._operator_maker(layer)  # checks now; ESPIRiT (seconds) runs in the worker
            slice_index = int(self.slice.value)
            k_shape = _kspace_layer_data(layer).shape[-2:]
        except Exception as exc:
            report_error(exc)
            return None

        def compute(progress):
            k, A, maps_origin = make_operator()
            rec = reconstruct(k, A, method, noise=noise, seed=seed, progress=progress, **params)
            rec.info["coil_maps_origin"] = maps_origin
            rec.info["coil_maps"] = A.coil_maps_array
            rec.info["slice"] = slice_index
            return rec

        def done(rec, cancelled: bool) -> None:
            if rec is not None:
                self.rec_report.value = "\n".join(assessment(rec))
                if self.history is not None:
                    self.history.finish(rec.info)
            if rec is not None and want_phase:
                later(lambda: set_image_layer(self.viewer, np.angle(rec.mean).astype(np.float32),
                                              f"{layer.name} · {method} phase", colormap="twilight",
                                              metadata={"invimg": {**rec.info, "input": layer.name,
                                                                   "output": "phase"}}))

        geometry = info if info.shape == tuple(k_shape) else layer
        if self.history is not None:
            self.history.clear()
        self.task = run_reconstruction(self.viewer, geometry, compute, method=method, total=total,
                                       name=f"{layer.name} · {method}", on_done=done, controls=self.rec_controls,
                                       on_status=self.history.add if self.history is not None else None)
        return self.task
