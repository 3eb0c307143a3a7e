"""The Black hole dock widget: array + source + schedule → (u, v) coverage, dirty beam and image;
simulate an observation from a sky layer; load/save UVFITS; image with a registered method.

Image layers are in micro-arcseconds (``scale`` = pixel size in µas; row 0 north, column 0 east).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.utils.notifications import show_info

from .. import __version__, blackhole, methods, reconstruct
from ..methods import registry
from ..operators.noise import Gaussian
from ._models import layer_combo
from ._runner import RunControls, Task, image_data, report_error, run_reconstruction, set_image_layer

__all__ = ["BlackHoleWidget", "residual_summary"]

_DATA_CHOICES = {"visibilities": "vis", "amplitudes + closure phases": "amp_cphase", "closures only": "closures"}


def residual_summary(residuals: dict[str, np.ndarray]) -> str:
    """One line per data product: number of data and RMS of the normalized residuals (≈ 1 at the noise)."""
    return "; ".join(f"{name}: n={r.size}, rms {np.sqrt(np.mean(r**2)):.2f}" for name, r in residuals.items())


def _imaging_methods() -> list[str]:
    """Registered methods that can image from an Interferometer or Closures operator."""
    names = []
    for name in methods():
        cls = registry.get(name)
        if cls.domain not in ("blackhole", "imaging"):
            continue
        ops = cls.operators
        if ops is None or "Interferometer" in ops or "Closures" in ops:
            names.append(name)
    order = {"rml": 0, "clean": 1}
    return sorted(names, key=lambda n: (order.get(n, 2), n))


class BlackHoleWidget(Container):
    """Array, source, schedule → coverage; simulate / load / save observations; image them."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        self.viewer = napari_viewer
        self.obs: blackhole.Observation | None = None
        self.obs_name = "observation"
        self.task: Task | None = None
        # -- set-up --------------------------------------------------------------------------------------
        self.array = ComboBox(label="array", choices=blackhole.array_names(), value="EHT2017")
        self.source = ComboBox(label="source", choices=[*blackhole.SOURCES, "custom"], value="M87*")
        ra, dec = blackhole.SOURCES["M87*"]
        self.ra = FloatSpinBox(label="RA (h)", value=ra, min=0.0, max=23.9999, step=0.001)
        self.dec = FloatSpinBox(label="Dec (°)", value=dec, min=-90.0, max=90.0, step=0.001)
        self.freq = FloatSpinBox(label="frequency (GHz)", value=230.0, min=1.0, max=1000.0)
        self.date = LineEdit(label="night (UTC date)", value="2017-04-11")
        self.start = FloatSpinBox(label="start (UTC h)", value=0.0, min=0.0, max=24.0)
        self.duration = FloatSpinBox(label="duration (h)", value=24.0, min=0.1, max=48.0)
        self.scan = FloatSpinBox(label="scan (min)", value=10.0, min=0.1, max=600.0)
        self.interval = FloatSpinBox(label="scan interval (min)", value=30.0, min=0.1, max=1440.0)
        self.elevation = FloatSpinBox(label="elevation limit (°)", value=10.0, min=0.0, max=89.0)
        self.npix = SpinBox(label="image pixels", value=64, min=16, max=256)
        self.fov = FloatSpinBox(label="field of view (µas)", value=160.0, min=10.0, max=10000.0)
        self.coverage_button = PushButton(text="Show coverage and dirty beam")
        self.info = Label(value="")
        # -- simulate --------------------------------------------------------------------------------------
        self.model = ComboBox(label="sky model", choices=blackhole.models.names(), value="ring")
        self.model_button = PushButton(text="Add sky model layer")
        self.sky = layer_combo(napari_viewer, "sky layer")
        self.bandwidth = FloatSpinBox(label="bandwidth (GHz)", value=2.0, min=0.01, max=64.0)
        self.integration = FloatSpinBox(label="integration (s, 0 = scan)", value=0.0, min=0.0, max=36000.0)
        self.gain_error = FloatSpinBox(label="gain amplitude error", value=0.0, min=0.0, max=1.0, step=0.01)
        self.phase_error = CheckBox(label="random station phases", value=False)
        self.thermal = CheckBox(label="thermal noise", value=True)
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1)
        self.simulate_button = PushButton(text="Simulate observation")
        # -- files ----------------------------------------------------------------------------------------
        self.load_path = FileEdit(label="load .uvfits", mode="r", filter="*.uvfits *.fits *.uvf")
        self.load_button = PushButton(text="Load")
        self.save_path = FileEdit(label="save .uvfits", mode="w", filter="*.uvfits")
        self.save_button = PushButton(text="Save")
        # -- imaging --------------------------------------------------------------------------------------
        self.method = ComboBox(label="method", choices=_imaging_methods(), value="rml")
        self.data = ComboBox(label="data", choices=list(_DATA_CHOICES), value="visibilities")
        self.iterations = SpinBox(label="iterations (0 = default)", value=0, min=0, max=100000)
        self.controls = RunControls(self.run, run_text="Image")
        self.residuals = Label(value="")
        super().__init__(widgets=[
            self.array, self.source, self.ra, self.dec, self.freq, self.date, self.start, self.duration, self.scan,
            self.interval, self.elevation, self.npix, self.fov, self.coverage_button, self.info,
            self.model, self.model_button, self.sky, self.bandwidth, self.integration, self.gain_error,
            self.phase_error, self.thermal, self.seed, self.simulate_button,
            self.load_path, self.load_button, self.save_path, self.save_button,
            self.method, self.data, self.iterations, self.controls, self.residuals,
        ])
        self.source.changed.connect(self._preset)
        self.coverage_button.changed.connect(lambda: self._guard(self.show_coverage))
        self.model_button.changed.connect(lambda: self._guard(self.add_model))
        self.simulate_button.changed.connect(lambda: self._guard(self.simulate))
        self.load_button.changed.connect(lambda: self._guard(lambda: self.load(self.load_path.value)))
        self.save_button.changed.connect(lambda: self._guard(lambda: self.save(self.save_path.value)))

    # -- helpers -----------------------------------------------------------------------------------------
    @staticmethod
    def _guard(fn) -> Any:
        try:
            return fn()
        except Exception as exc:
            report_error(exc)
            return None

    def _preset(self, name: str) -> None:
        if name in blackhole.SOURCES:
            self.ra.value, self.dec.value = blackhole.SOURCES[name]

    def _schedule(self) -> dict[str, Any]:
        return {"array": self.array.value, "ra_hours": float(self.ra.value), "dec_deg": float(self.dec.value),
                "freq_ghz": float(self.freq.value), "date": str(self.date.value).strip(),
                "start_hours": float(self.start.value), "duration_hours": float(self.duration.value),
                "scan_minutes": float(self.scan.value), "interval_minutes": float(self.interval.value),
                "elevation_min_deg": float(self.elevation.value)}

    @property
    def pixel_uas(self) -> float:
        return float(self.fov.value) / int(self.npix.value)

    def _image_kwargs(self, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        p = self.pixel_uas
        half = float(self.fov.value) / 2
        kwargs: dict[str, Any] = {"scale": (p, p), "translate": (-half + p / 2, -half + p / 2)}
        if meta is not None:
            kwargs["metadata"] = {"invimg": {"unit": "µas", "version": __version__, **meta}}
        return kwargs

    def _show_uv(self, u: np.ndarray, v: np.ndarray, name: str) -> None:
        """(u, v) points in Gλ with their conjugates (row = −v so north is up, column = −u: east left)."""
        pts = np.concatenate([np.stack([-v, -u], 1), np.stack([v, u], 1)]) / 1e9
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        self.viewer.add_points(pts, name=name, size=0.15, face_color="orange",
                               metadata={"invimg": {"unit": "Gλ", "axes": ("-v", "-u")}})

    def _show_beam_and_dirty(self, A: blackhole.Interferometer, obs: blackhole.Observation | None,
                             name: str) -> None:
        w = A.weights(obs.sigma if obs is not None else np.ones(A.out_shape[0]), "natural")
        beam = A.dirty_beam(w, size=A.npix)
        set_image_layer(self.viewer, beam, f"{name} · dirty beam", colormap="gray",
                        **self._image_kwargs({"product": "dirty beam"}))
        if obs is not None:
            dirty = A.dirty_image(obs.vis, w).astype(np.float32)
            set_image_layer(self.viewer, dirty, f"{name} · dirty image", colormap="afmhot",
                            **self._image_kwargs({"product": "dirty image", "observation": name}))

    # -- actions -------------------------------------------------------------------------------------------
    def show_coverage(self) -> blackhole.Coverage:
        """(u, v) coverage of the schedule as a points layer, the dirty beam as an image; reports the resolution."""
        cov = blackhole.coverage(**self._schedule())
        stations = sorted(set(cov.station1) | set(cov.station2))
        self._show_uv(cov.u, cov.v, "(u, v) coverage")
        A = blackhole.Interferometer(None, int(self.npix.value), float(self.fov.value), u=cov.u, v=cov.v)
        self._show_beam_and_dirty(A, None, "coverage")
        self.info.value = (f"{len(stations)} stations, {len(np.unique(cov.scan))} scans, {len(cov)} baselines; "
                           f"nominal resolution {cov.resolution_uas:.1f} µas")
        return cov

    def add_model(self) -> napari.layers.Image:
        """Add the chosen bundled sky model as an image layer in µas."""
        name = str(self.model.value)
        sky = blackhole.models.get(name, int(self.npix.value), float(self.fov.value))
        layer = set_image_layer(self.viewer, sky, f"sky {name}", colormap="afmhot",
                                **self._image_kwargs({"product": "sky model", "model": name}))
        self.sky.value = layer
        return layer

    def _set_observation(self, obs: blackhole.Observation, name: str) -> None:
        self.obs, self.obs_name = obs, name
        self._show_uv(obs.u, obs.v, f"{name} · (u, v)")
        A = blackhole.Interferometer(obs, int(self.npix.value), float(self.fov.value))
        self._show_beam_and_dirty(A, obs, name)
        self.info.value = (f"{name}: {len(obs)} visibilities, {obs.n_scans} scans, {len(obs.station_names)} "
                           f"stations; nominal resolution {obs.resolution_uas:.1f} µas")

    def simulate(self) -> blackhole.Observation:
        """Observe the sky layer (its pixels span the field of view set above) with thermal noise and gain errors."""
        layer = self.sky.value
        sky = image_data(layer, "sky")
        if sky.ndim != 2 or sky.shape[0] != sky.shape[1]:
            raise ValueError(f"The sky layer must be a square 2D image; {layer.name!r} has shape {sky.shape}.")
        if int(self.npix.value) != sky.shape[0]:
            self.npix.value = sky.shape[0]
        sched = self._schedule()
        integration = float(self.integration.value) or None
        obs = blackhole.simulate(sky, fov_uas=float(self.fov.value), bandwidth_ghz=float(self.bandwidth.value),
                                 integration_s=integration, thermal_noise=bool(self.thermal.value),
                                 gain_error=float(self.gain_error.value), phase_error=bool(self.phase_error.value),
                                 seed=int(self.seed.value), **sched)
        self._set_observation(obs, f"{layer.name} · observation")
        return obs

    def load(self, path: str | Path) -> blackhole.Observation:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"Choose a .uvfits file to load; {str(path)!r} is not a file.")
        obs = blackhole.load_uvfits(path)
        self.freq.value = obs.freq_hz / 1e9
        self.source.value = "custom"
        self.ra.value, self.dec.value = obs.ra_hours, obs.dec_deg
        self._set_observation(obs, path.stem)
        show_info(f"Loaded {len(obs)} visibilities of {obs.source} from {path.name}.")
        return obs

    def save(self, path: str | Path) -> Path:
        if self.obs is None:
            raise ValueError("Simulate or load an observation before saving it.")
        path = Path(path)
        if path.is_dir() or not path.name:
            raise ValueError("Choose a file name to save the observation to (.uvfits).")
        out = self.obs.save_uvfits(path)
        show_info(f"Saved {len(self.obs)} visibilities to {out.name}.")
        return out

    def _problem(self):
        """Operator, data, noise and method parameters for the chosen data products."""
        if self.obs is None:
            raise ValueError("Simulate or load an observation first.")
        npix, fov = int(self.npix.value), float(self.fov.value)
        kind = _DATA_CHOICES[self.data.value]
        method = str(self.method.value)
        params: dict[str, Any] = {}
        if kind == "closures":
            A = blackhole.Closures(self.obs, npix, fov)
            y, noise = A.data, Gaussian(A.sigma)
        else:
            A = blackhole.Interferometer(self.obs, npix, fov)
            y, noise = self.obs.vis.astype(np.complex64), Gaussian(self.obs.sigma.astype(np.float32))
        names = {p.name for p in registry.get(method).params}
        if "data" in names:
            params["data"] = kind
        if int(self.iterations.value) > 0:
            params["iterations"] = int(self.iterations.value)
        return A, y, noise, params

    def run(self) -> Task | None:
        """Image the observation with the chosen method; mean (and std) layers in µas, residuals reported."""
        try:
            A, y, noise, params = self._problem()
            method = str(self.method.value)
            reason = registry.get(method).supports(A)
            if reason:
                raise ValueError(reason)
            seed = int(self.seed.value)
            name = f"{self.obs_name} · dirty image"
            if name not in self.viewer.layers:
                self._set_observation(self.obs, self.obs_name)
            reference = self.viewer.layers[name]
        except Exception as exc:
            report_error(exc)
            return None

        def compute(progress):
            return reconstruct(y, A, method, noise=noise, seed=seed, progress=progress, **params)

        def done(rec, cancelled: bool) -> None:
            if rec is None:
                return
            from ..blackhole.rml import normalized_residuals

            res = normalized_residuals(rec.mean, A, y, noise.sigma)
            text = residual_summary(res)
            self.residuals.value = text
            base = f"{reference.name.removesuffix(' · dirty image')} · {method}"
            mean_layer = self.viewer.layers[f"{base} mean"]
            mean_layer.metadata["invimg"]["normalized_residuals"] = {k: v.tolist() for k, v in res.items()}
            mean_layer.metadata["invimg"]["unit"] = "µas"
            show_info(f"{method} normalized residuals — {text}")

        total = int(params.get("iterations", 100))
        base = f"{reference.name.removesuffix(' · dirty image')} · {method}"
        self.task = run_reconstruction(self.viewer, reference, compute, method=method, total=total, name=base,
                                       on_done=done, controls=self.controls,
                                       add_samples=registry.get(method).uncertainty == "posterior")
        return self.task
