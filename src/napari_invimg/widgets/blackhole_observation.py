"""The Black hole observation dock: array + source + schedule → (u, v) coverage and dirty beam; simulate an
observation of a sky layer; load / save UVFITS.

Its one product is an observation **layer**: the naturally weighted dirty image, in micro-arcseconds, carrying
the :class:`~napari_invimg.blackhole.Observation` in ``metadata["invimg_observation"]`` — the same layer a
dropped ``.uvfits`` file opens as (:mod:`napari_invimg.widgets.uvfits_reader`). The Black hole imaging dock
(:mod:`napari_invimg.widgets.blackhole`) images any such layer. The (u, v) coverage is plotted in this dock
(Gλ), not in the image canvas. Coverage, simulation and loading run in a worker: the UI never waits on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, LineEdit, PushButton, SpinBox
from napari.layers import Image
from napari.utils.notifications import show_info

from .. import __version__, blackhole
from ._layout import Section, fit_dock, report_label
from ._plot import uv_plot
from ._runner import RunControls, Task, image_data, later, report_error, run_task, set_image_layer
from .uvfits_reader import (
    dirty_beam_and_image,
    dirty_image_layers,
    image_geometry,
    observation_name,
    observation_of,
)

__all__ = ["BlackHoleObservationWidget", "observation_layers"]


def observation_layers(viewer) -> list[Image]:
    """The image layers of ``viewer`` that carry an observation (oldest first)."""
    return [layer for layer in viewer.layers if isinstance(layer, Image) and observation_of(layer) is not None]


class BlackHoleObservationWidget(Container):
    """Array, source, schedule → coverage; simulate / load / save observations as dirty-image layers."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        self.viewer = napari_viewer
        # -- set-up --------------------------------------------------------------------------------------
        self.array = ComboBox(label="array", choices=blackhole.array_names(), value="EHT2017",
                              tooltip="the telescope array (station positions and sensitivities)")
        self.source = ComboBox(label="source", choices=[*blackhole.SOURCES, "custom"], value="M87*",
                               tooltip="the target; sets RA and Dec (custom: type them)")
        ra, dec = blackhole.SOURCES["M87*"]
        self.ra = FloatSpinBox(label="RA (h)", value=ra, min=0.0, max=23.9999, step=0.001,
                               tooltip="right ascension of the source in hours")
        self.dec = FloatSpinBox(label="Dec (°)", value=dec, min=-90.0, max=90.0, step=0.001,
                                tooltip="declination of the source in degrees")
        self.freq = FloatSpinBox(label="frequency (GHz)", value=230.0, min=1.0, max=1000.0,
                                 tooltip="observing frequency; sets the wavelength and so the (u, v) in wavelengths")
        self.date = LineEdit(label="night (UTC date)", value="2017-04-11", tooltip="date of the night, YYYY-MM-DD")
        self.start = FloatSpinBox(label="start (UTC h)", value=0.0, min=0.0, max=24.0,
                                  tooltip="start of the schedule in UTC hours")
        self.duration = FloatSpinBox(label="duration (h)", value=24.0, min=0.1, max=48.0,
                                     tooltip="length of the schedule; stations observe while the source is above "
                                             "their elevation limit")
        self.scan = FloatSpinBox(label="scan (min)", value=10.0, min=0.1, max=600.0, tooltip="length of one scan")
        self.interval = FloatSpinBox(label="scan interval (min)", value=30.0, min=0.1, max=1440.0,
                                     tooltip="time from the start of one scan to the next")
        self.elevation = FloatSpinBox(label="elevation limit (°)", value=10.0, min=0.0, max=89.0,
                                      tooltip="a station observes only while the source is higher than this")
        self.npix = SpinBox(label="image pixels", value=64, min=16, max=256,
                            tooltip="pixels along each side of the dirty beam and dirty image (and of the sky model)")
        self.fov = FloatSpinBox(label="field of view (µas)", value=160.0, min=10.0, max=10000.0,
                                tooltip="width of the image in micro-arcseconds (M87*'s ring is ≈ 42 µas across)")
        self.info = report_label()
        self.uv = uv_plot()
        # -- simulate --------------------------------------------------------------------------------------
        self.model = ComboBox(label="sky model", choices=blackhole.models.names(), value="ring",
                              tooltip="a bundled test image of the sky")
        self.model_button = PushButton(text="Add sky model layer")
        self.sky = ComboBox(label="sky layer", choices=self._sky_choices, nullable=True,
                            tooltip="the image to observe: a sky model added above, or a square 2D image whose "
                                    "width is the field of view")
        self.bandwidth = FloatSpinBox(label="bandwidth (GHz)", value=2.0, min=0.01, max=64.0,
                                      tooltip="recorded bandwidth; sets the thermal noise")
        self.integration = FloatSpinBox(label="integration (s, 0 = scan)", value=0.0, min=0.0, max=36000.0,
                                        tooltip="averaging time of one visibility; 0 averages a whole scan")
        self.gain_error = FloatSpinBox(label="gain amplitude error", value=0.0, min=0.0, max=1.0, step=0.01,
                                       tooltip="random station gain amplitude errors (fraction, per scan); "
                                               "closure quantities are immune to them")
        self.phase_error = CheckBox(label="random station phases", value=False,
                                    tooltip="atmospheric phase per station and scan: visibility phases become useless")
        self.thermal = CheckBox(label="thermal noise", value=True, tooltip="add the radiometer noise of each baseline")
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1, tooltip="seed of the simulated noise")
        self.simulate_button = PushButton(text="Simulate observation")
        # -- files ----------------------------------------------------------------------------------------
        self.load_path = FileEdit(label="load .uvfits", mode="r", filter="*.uvfits *.fits *.uvf",
                                  tooltip="a UVFITS file (e.g. EHT public data); dropping it on the viewer works too")
        self.load_button = PushButton(text="Load")
        self.saved = ComboBox(label="observation", choices=self._observation_choices, nullable=True,
                              tooltip="the observation layer to save (a dirty image made here or read from a file)")
        self.save_path = FileEdit(label="save .uvfits", mode="w", filter="*.uvfits")
        self.save_button = PushButton(text="Save")
        self.controls = RunControls(self.show_coverage, run_text="Show coverage and dirty beam")
        self.controls.run_button.native.setToolTip("plot the schedule's (u, v) coverage below and add the dirty beam")
        self.schedule = Section("observation (array, source, schedule)", [
            self.array, self.source, self.ra, self.dec, self.freq, self.date, self.start, self.duration, self.scan,
            self.interval, self.elevation], collapsed=True)
        self.simulation = Section("simulate an observation", [
            self.model, self.model_button, self.sky, self.bandwidth, self.integration, self.gain_error,
            self.phase_error, self.thermal, self.seed, self.simulate_button], collapsed=False)
        self.files = Section("UVFITS files", [self.load_path, self.load_button, self.saved, self.save_path,
                                              self.save_button], collapsed=True)
        super().__init__(widgets=[
            self.schedule, self.npix, self.fov, self.controls, self.info,
            *([self.uv] if self.uv is not None else []),
            self.simulation, self.files,
        ])
        fit_dock(self)
        self.task: Task | None = None
        self.coverage: blackhole.Coverage | None = None
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(lambda _e: self._layers_changed())
        self.source.changed.connect(self._preset)
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

    def _layers_changed(self) -> None:
        self.sky.reset_choices()
        self.saved.reset_choices()
        if self.saved.value is None:
            found = observation_layers(self.viewer)
            if found:
                self.saved.value = found[-1]

    def _preset(self, name: str) -> None:
        if name in blackhole.SOURCES:
            self.ra.value, self.dec.value = blackhole.SOURCES[name]

    def _schedule(self) -> dict[str, Any]:
        return {"array": self.array.value, "ra_hours": float(self.ra.value), "dec_deg": float(self.dec.value),
                "freq_ghz": float(self.freq.value), "date": str(self.date.value).strip(),
                "start_hours": float(self.start.value), "duration_hours": float(self.duration.value),
                "scan_minutes": float(self.scan.value), "interval_minutes": float(self.interval.value),
                "elevation_min_deg": float(self.elevation.value)}

    def _sky_choices(self, _widget=None) -> list:
        """Sky models first (the default), then "—", then other square 2D images; never a black-hole product
        (dirty beam, dirty image, results) and never, by default, a microscopy layer."""
        models, others = [], []
        for layer in self.viewer.layers:
            if not isinstance(layer, Image) or layer.rgb or layer.ndim != 2 or layer.data.shape[0] != layer.data.shape[1]:
                continue
            meta = layer.metadata.get("invimg", {})
            if meta.get("product") == "sky model":
                models.append((layer.name, layer))
            elif meta.get("unit") != "µas" and "method" not in meta:
                others.append((layer.name, layer))
        return [*models, ("—", None), *others]

    def _observation_choices(self, _widget=None) -> list:
        return [(layer.name, layer) for layer in observation_layers(self.viewer)]

    def _image_kwargs(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {**image_geometry(int(self.npix.value), float(self.fov.value)),
                "metadata": {"invimg": {"unit": "µas", "version": __version__, **meta}}}

    def _show_uv(self, u: np.ndarray, v: np.ndarray, title: str) -> None:
        """(u, v) points in Gλ with their conjugates, in the dock's plot (not in the image's µas canvas)."""
        if self.uv is not None:
            self.uv.draw(u, v, title)

    def _add_beam(self, beam: np.ndarray, name: str) -> None:
        """The dirty beam layer, in an event-loop turn of its own (napari needs 0.2-0.3 s of UI time per new layer)."""
        later(lambda: set_image_layer(self.viewer, beam, f"{name} · dirty beam", colormap="gray",
                                      **self._image_kwargs({"product": "dirty beam", "observation": name})))

    # -- actions -------------------------------------------------------------------------------------------
    def show_coverage(self) -> Task:
        """(u, v) coverage of the schedule, plotted in the dock; the dirty beam as an image; reports the
        resolution. Runs in a worker."""
        schedule, npix, fov = self._schedule(), int(self.npix.value), float(self.fov.value)

        def compute(progress):
            cov = blackhole.coverage(**schedule)
            beam, _ = dirty_beam_and_image(None, npix, fov, u=cov.u, v=cov.v)
            progress(1, 1)
            return cov, beam

        def show(result, cancelled: bool) -> None:
            if result is None:
                return
            cov, beam = result
            stations = sorted(set(cov.station1) | set(cov.station2))
            self._show_uv(cov.u, cov.v, f"{schedule['array']}, {len(cov)} baselines")
            self._add_beam(beam, "coverage")
            self.coverage = cov
            self.info.value = (f"{len(stations)} stations, {len(np.unique(cov.scan))} scans, {len(cov)} baselines; "
                               f"nominal resolution {cov.resolution_uas:.1f} µas")

        self.task = run_task(compute, total=1, desc="(u, v) coverage", on_done=show, controls=self.controls)
        return self.task

    def add_model(self) -> Image:
        """Add the chosen bundled sky model as an image layer in µas."""
        name = str(self.model.value)
        sky = blackhole.models.get(name, int(self.npix.value), float(self.fov.value))
        layer = set_image_layer(self.viewer, sky, f"sky {name}", colormap="afmhot",
                                **self._image_kwargs({"product": "sky model", "model": name}))
        self.sky.reset_choices()
        self.sky.value = layer
        return layer

    def _observe(self, make_obs, name_of, on_loaded=None, source_file: str | None = None) -> Task:
        """Make an observation in a worker (``make_obs()``), then show its coverage and add its dirty beam and its
        dirty image (the observation layer)."""
        npix, fov = int(self.npix.value), float(self.fov.value)

        def compute(progress):
            obs = make_obs()
            beam, dirty = dirty_beam_and_image(obs, npix, fov)
            progress(1, 1)
            return obs, beam, dirty

        def show(result, cancelled: bool) -> None:
            if result is None:
                return
            obs, beam, dirty = result
            if on_loaded is not None:
                on_loaded(obs)
            name = name_of(obs)
            self._show_uv(obs.u, obs.v, f"{name}: {len(obs)} visibilities")
            self._add_beam(beam, name)
            (data, kwargs, _kind), = dirty_image_layers(obs, name, npix, fov, source_file, dirty=dirty, points=False)
            later(lambda: set_image_layer(self.viewer, data, **kwargs))
            later(self._layers_changed)
            self.info.value = (f"{name}: {len(obs)} visibilities, {obs.n_scans} scans, {len(obs.station_names)} "
                               f"stations; nominal resolution {obs.resolution_uas:.1f} µas")

        self.task = run_task(compute, total=1, desc="observation", on_done=show, controls=self.controls)
        return self.task

    def simulate(self) -> Task | None:
        """Observe the sky layer (its pixels span the field of view set above) with thermal noise and gain
        errors, in a worker."""
        layer = self.sky.value
        if layer is None:
            raise ValueError("Choose the sky layer to observe (or add a sky model layer first).")
        sky = image_data(layer, "sky")
        if sky.ndim != 2 or sky.shape[0] != sky.shape[1]:
            raise ValueError(f"The sky layer must be a square 2D image; {layer.name!r} has shape {sky.shape}.")
        if int(self.npix.value) != sky.shape[0]:
            self.npix.value = sky.shape[0]
        integration = float(self.integration.value) or None
        kwargs = dict(fov_uas=float(self.fov.value), bandwidth_ghz=float(self.bandwidth.value),
                      integration_s=integration, thermal_noise=bool(self.thermal.value),
                      gain_error=float(self.gain_error.value), phase_error=bool(self.phase_error.value),
                      seed=int(self.seed.value), **self._schedule())
        name = f"{layer.name} · observation"
        return self._observe(lambda: blackhole.simulate(sky, **kwargs), lambda _obs: name)

    def load(self, path: str | Path) -> Task:
        """Load a UVFITS observation in a worker; sets frequency, RA and Dec from the file."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"Choose a .uvfits file to load; {str(path)!r} is not a file.")

        def loaded(obs) -> None:
            self.freq.value = obs.freq_hz / 1e9
            self.source.value = "custom"
            self.ra.value, self.dec.value = obs.ra_hours, obs.dec_deg
            show_info(f"Loaded {len(obs)} visibilities of {obs.source} from {path.name}.")

        return self._observe(lambda: blackhole.load_uvfits(path), lambda _obs: path.stem, loaded, str(path))

    def save(self, path: str | Path, layer: Image | None = None) -> Path:
        """Save the observation of ``layer`` (default: the one chosen under "UVFITS files") to a UVFITS file."""
        layer = layer if layer is not None else self.saved.value
        obs = observation_of(layer) if layer is not None else None
        if obs is None:
            raise ValueError("Simulate or load an observation before saving it (or choose its dirty-image layer).")
        path = Path(path)
        if path.is_dir() or not path.name:
            raise ValueError("Choose a file name to save the observation to (.uvfits).")
        out = obs.save_uvfits(path)
        show_info(f"Saved {len(obs)} visibilities of {observation_name(layer)} to {out.name}.")
        return out
