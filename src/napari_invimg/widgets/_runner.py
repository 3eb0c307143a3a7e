"""The one runner every dock widget uses: background work with progress, cancel, live preview and layer output.

API for widget authors
----------------------
``run_reconstruction(viewer, input_layer, fn, method=..., total=..., controls=...) -> Task``
    ``fn(progress)`` runs in a worker thread and returns a :class:`~napari_invimg.Reconstruction`;
    pass ``progress`` on to :func:`napari_invimg.reconstruct` (it has the signature
    ``progress(step, total, preview) -> bool``; it returns ``False`` once the user pressed Cancel, so
    ``reconstruct`` raises :class:`~napari_invimg.Cancelled`, whose ``partial`` result — the best
    iterate so far — is then shown like a finished one). Previews go live into the mean layer; at the
    end the runner adds or updates ``"<input> · <method> mean"``, ``"… std"`` (colormap ``magma``) and,
    with ``add_samples=True``, ``"… samples"``, copying the input layer's ``scale``, ``translate``,
    ``units`` and ``axis_labels`` and storing ``rec.info`` (operator spec, noise spec, method, params,
    seed, version, device) plus ``input``/``output`` under ``metadata["invimg"]``. Errors are shown with
    ``napari.utils.notifications.show_error`` and leave no half-made layer. ``on_done(rec, cancelled)``
    (optional) is called in the main thread after the layers are added.
``run_task(fn, total=..., desc=..., on_preview=..., on_done=..., controls=...) -> Task``
    The same machinery without layers, for work whose result is not a reconstruction (e.g. training a
    network): ``on_done(result, cancelled)`` receives what ``fn`` returned (or the ``partial`` of a
    :class:`~napari_invimg.Cancelled`); ``on_preview(step, total, preview)`` runs in the main thread.
``add_result_layers(viewer, input_layer, rec, name=None, add_samples=False) -> list[Layer]``
    Show a finished :class:`~napari_invimg.Reconstruction` (used by the runner; call it directly for
    instant methods).
``image_data(layer, what="image", allow_lazy=False) -> np.ndarray``
    A gray, non-empty, finite float32 (complex64 stays complex) array from an image layer, or a
    ``ValueError`` a user can act on; ``allow_lazy`` keeps dask data lazy.
``set_image_layer(viewer, data, name, **kwargs) -> Image``
    Add an image layer, or update the layer of that name in place.
``spatial_kwargs(source, shape) -> dict``
    ``scale``/``translate``/``units``/``axis_labels`` for an array of ``shape`` that images the same
    field of view as ``source`` (a layer or a :class:`LayerInfo`); handles up/down-sampled shapes.
``RunControls(on_run)``
    A Run / Cancel button row with a status line; pass it as ``controls`` so the buttons follow the task.
``report_error(exc)``
    Show an exception as a napari error notification (a ``ValueError``'s sentence as it is).
``later(fn)``
    Run ``fn()`` in the main thread in an event-loop turn of its own, after the jobs queued before it (jobs
    that a job queues run right after it). napari needs 0.2–0.3 s of UI time to add one layer (its vispy
    visual and layer controls): the runner adds each result layer, and runs ``on_done``, as separate jobs,
    so the UI answers between two layers instead of freezing while all of them are built.

Form pieces to reuse live in :mod:`napari_invimg.widgets._models`: ``layer_combo``, ``ForwardModelControls``
(+ ``build_operator``), ``NoiseControls``, ``ParameterForm`` (a method's parameters from its schema) and
``device_choices``. In tests, the ``errors`` fixture of ``tests/widgets/conftest.py`` records ``show_error``.

``Task.cancel()`` requests a stop (the worker's ``quit()`` plus the ``False`` answer to ``progress``);
``Task.done`` turns ``True`` once the result (or partial result) is shown (every job it queued has run); :func:`running_tasks` lists
tasks still running. A GUI test waits with ``qtbot.waitUntil(lambda: task.done)``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from magicgui.widgets import Container, Label, PushButton
from napari.layers import Image, Layer
from napari.qt.threading import thread_worker
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer

from ..errors import Cancelled
from ..uncertainty import Reconstruction

__all__ = [
    "Task",
    "LayerInfo",
    "RunControls",
    "run_task",
    "run_reconstruction",
    "add_result_layers",
    "set_image_layer",
    "spatial_kwargs",
    "image_data",
    "report_error",
    "running_tasks",
    "result_name",
    "ENSEMBLE_SUFFIX",
    "assessment",
    "later",
]

log = logging.getLogger(__name__)

#: seconds between two live previews (a preview redraws the layer; more often only slows the run)
PREVIEW_INTERVAL_S = 0.3
#: seconds between two progress updates delivered to the main thread (≈ 10 per second; steps in between
#: are coalesced into the latest one, so the UI never queues more work than it can draw)
UPDATE_INTERVAL_S = 0.1
#: the name part of a sampler's state shown after a cancel before any sample (instead of "mean")
PARTIAL_STATE = "state before sampling (not a mean)"
#: appended to the std/samples layer names of results whose uncertainty kind is "ensemble"
ENSEMBLE_SUFFIX = " (ensemble spread, not posterior)"
_RUNNING: set[Task] = set()


def running_tasks() -> list[Task]:
    """Tasks started by :func:`run_task` that have not finished yet."""
    return list(_RUNNING)


def report_error(exc: BaseException) -> None:
    """Show ``exc`` as a napari error notification (``ValueError``s carry a sentence for the user)."""
    if isinstance(exc, ValueError):
        show_error(str(exc))
    else:
        log.error("napari-invimg: %s", exc, exc_info=exc)
        show_error(f"{type(exc).__name__}: {exc}")


# -- UI jobs: one event-loop turn each ---------------------------------------------------------------------
#: milliseconds between two UI jobs (more than a frame, so the event loop paints and answers in between)
JOB_GAP_MS = 20
_JOBS: deque = deque()  # (fn, owner task or None)
_JOB_STATE: dict[str, Any] = {"scheduled": False, "nested": None, "owner": None}


def later(fn: Callable[[], Any], owner: Task | None = None) -> None:
    """Run ``fn()`` in the main thread in an event-loop turn of its own, after the jobs queued before it; a job
    queued while another runs goes right after that one (depth first). An exception is shown with
    :func:`report_error` (and becomes ``owner.error``, the owner being inherited from the running job)."""
    if _JOB_STATE["nested"] is not None:
        _JOB_STATE["nested"].append((fn, owner or _JOB_STATE["owner"]))
        return
    _JOBS.append((fn, owner))
    _schedule_jobs()


def _schedule_jobs() -> None:
    if _JOBS and not _JOB_STATE["scheduled"]:
        _JOB_STATE["scheduled"] = True
        QTimer.singleShot(JOB_GAP_MS, _run_next_job)


def _run_next_job() -> None:
    _JOB_STATE["scheduled"] = False
    if not _JOBS:
        return
    fn, owner = _JOBS.popleft()
    nested: list = []
    _JOB_STATE["nested"], _JOB_STATE["owner"] = nested, owner
    try:
        fn()
    except Exception as exc:
        if owner is not None and owner.error is None:
            owner.error = exc
        report_error(exc)
    finally:
        _JOB_STATE["nested"], _JOB_STATE["owner"] = None, None
        _JOBS.extendleft(reversed(nested))
        _schedule_jobs()


# -- what a result assumed, and how good it is ---------------------------------------------------------------
#: a noise estimate below this fraction of the data's range is degenerate (σ ≈ 0: the data look noise-free)
DEGENERATE_NOISE_FRACTION = 1e-5


def assessment(rec: Reconstruction, data_range: float | None = None) -> list[str]:
    """Warnings a user should see next to a result: a degenerate noise estimate, a sampler that did not mix
    (split-R̂, ESS with a verdict), a learned prior outside its data (``info["prior_fit"]["warning"]``), a run
    cancelled before any sample, a noise model the data contradict (``info["noise_warning"]``), parameters ignored for this forward model (``info["ignored_params"]``, e.g. from a
    recipe) and a learned share that could not run (``info["learned_share_skipped"]``). Each is one sentence; an empty
    list means nothing to say."""
    info = rec.info or {}
    out: list[str] = []
    noise = info.get("noise") or {}
    sigma_values = np.asarray(noise.get("sigma") if noise.get("sigma") is not None else 0.0, dtype=float)
    sigma = float(np.median(sigma_values)) if sigma_values.size else 0.0
    gain = float(np.asarray(noise.get("gain") if noise.get("gain") is not None else 0.0, dtype=float).max())
    if info.get("noise_source") == "estimated" and gain == 0.0:
        scale = data_range if data_range else float(np.ptp(np.abs(rec.mean))) or 1.0
        if sigma <= DEGENERATE_NOISE_FRACTION * scale:
            out.append(f"⚠ The noise estimate is degenerate (σ = {sigma:.2g}, the data look noise-free): stopping "
                       "rules and uncertainty are meaningless. Set the noise σ (or gain) in the form.")
    mixing = info.get("mixing")
    if mixing:
        rhat, ess = mixing.get("rhat_max", float("nan")), mixing.get("ess_min", float("nan"))
        if rhat < 1.05 and ess >= 100:
            verdict = "the chains mixed"
        elif rhat < 1.2 and ess >= 10:
            verdict = "⚠ borderline mixing: run more iterations before trusting the std"
        else:
            verdict = "⚠ the chains did NOT mix: the std is not a posterior spread yet; run (many) more iterations"
        out.append(f"Sampler quality: split-R̂ max {rhat:.2f} (median {mixing.get('rhat_median', float('nan')):.2f}), "
                   f"ESS min {ess:.1f} — {verdict}.")
    prior_fit = info.get("prior_fit") or {}
    if prior_fit.get("warning"):
        out.append(f"⚠ {prior_fit['warning']}")
    if info.get("noise_warning"):  # a noise model the data contradict (counts, an offset): what the run assumed
        out.append(f"⚠ {info['noise_warning']}")
    for why in (info.get("ignored_params") or {}).values():
        out.append(f"⚠ {why}.")
    if info.get("learned_share_skipped"):
        out.append(f"⚠ The learned share was not used: {info['learned_share_skipped']}")
    if info.get("burn_in_only"):
        out.append("⚠ Cancelled before any posterior sample (e.g. during burn-in): the layer shows the sampler's "
                   "current state, not a posterior mean.")
    return out


# -- layers --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerInfo:
    """A snapshot of an image layer's name, shape, geometry and metadata (the layer may go away mid-run)."""

    name: str
    shape: tuple[int, ...]
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    units: tuple[Any, ...] | None = None
    axis_labels: tuple[str, ...] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, layer: Layer | LayerInfo) -> LayerInfo:
        if isinstance(layer, LayerInfo):
            return layer
        return cls(
            name=layer.name,
            shape=tuple(int(s) for s in layer.data.shape),
            scale=tuple(float(s) for s in layer.scale),
            translate=tuple(float(t) for t in layer.translate),
            units=tuple(getattr(layer, "units", ()) or ()) or None,
            axis_labels=tuple(getattr(layer, "axis_labels", ()) or ()) or None,
            metadata=dict(layer.metadata),
        )


def result_name(input_name: str, method: str, part: str) -> str:
    """``"<input> · <method> <part>"``, the name of a result layer."""
    return f"{input_name} · {method} {part}"


def spatial_kwargs(source: Layer | LayerInfo, shape: tuple[int, ...]) -> dict[str, Any]:
    """Geometry for an array of ``shape`` covering the same field of view as ``source``.

    Same number of axes: pixel ``j`` of the new array sits at input index ``(j + ½)ρ − ½`` with
    ``ρ = n_in / n_out`` per axis, so ``scale = s·ρ`` and ``translate = t + s(ρ − 1)/2`` (exact for
    pixel-integrating down/up-sampling). Otherwise (e.g. compressed-sensing data) the geometry of the
    image that was simulated, kept as ``metadata["invimg"]["image_geometry"]``, is used when present.
    """
    info = LayerInfo.of(source)
    shape = tuple(int(s) for s in shape)
    if len(shape) == len(info.shape):
        rho = np.asarray(info.shape, dtype=float) / np.asarray(shape, dtype=float)
        s, t = np.asarray(info.scale), np.asarray(info.translate)
        out: dict[str, Any] = {"scale": tuple(s * rho), "translate": tuple(t + s * (rho - 1) / 2)}
        if info.units:
            out["units"] = info.units
        if info.axis_labels:
            out["axis_labels"] = info.axis_labels
        return out
    geometry = info.metadata.get("invimg", {}).get("image_geometry")
    if geometry and len(geometry.get("scale", ())) == len(shape):
        return {k: tuple(v) for k, v in geometry.items() if v}
    return {}


def set_image_layer(viewer, data: np.ndarray, name: str, **kwargs: Any) -> Image:
    """Add an image layer called ``name``, or update the existing one in place (data, geometry, metadata)."""
    if name in viewer.layers:
        layer = viewer.layers[name]
        if isinstance(layer, Image) and layer.data.ndim == np.ndim(data) and not layer.rgb:
            for key in ("scale", "translate", "units", "axis_labels", "metadata"):
                if key in kwargs:
                    setattr(layer, key, kwargs[key])
            layer.data = data
            if "colormap" in kwargs:
                layer.colormap = kwargs["colormap"]
            layer.reset_contrast_limits()
            return layer
        viewer.layers.remove(layer)
    return viewer.add_image(data, name=name, **kwargs)


def add_result_layers(viewer, input_layer: Layer | LayerInfo, rec: Reconstruction, name: str | None = None,
                      add_samples: bool = False, defer: bool = False) -> list[Image]:
    """Add (or update in place) the mean, std and optionally samples layers of a reconstruction.

    Layers are named ``"<name> mean"``, ``"<name> std"``, ``"<name> samples"`` with ``name`` defaulting to
    ``"<input> · <method>"`` (std and samples of an ``"ensemble"`` result get :data:`ENSEMBLE_SUFFIX` and a
    notification says that their spread is not a posterior); they copy the input's geometry (see :func:`spatial_kwargs`) and carry
    ``rec.info`` plus ``input``/``output`` under ``metadata["invimg"]``. ``defer=True`` adds each layer in an
    event-loop turn of its own (:func:`later`) and returns ``[]``.
    """
    info = LayerInfo.of(input_layer)
    method = str(rec.info.get("method", "result"))
    base = name or f"{info.name} · {method}"
    geometry = spatial_kwargs(info, rec.mean.shape)
    mean = np.abs(rec.mean) if np.iscomplexobj(rec.mean) else rec.mean

    def meta(part: str) -> dict[str, Any]:
        return {"invimg": {**rec.info, "input": info.name, "output": part}}

    # (data, name, layer keywords, what to do with the layer once it is there)
    todo: list[tuple[np.ndarray, str, dict[str, Any], Callable[[Image], Any] | None]] = []
    suffix = ""
    if rec.info.get("burn_in_only"):  # one state of the chains, not a posterior mean: named so, nothing else
        todo.append((mean, f"{base} {PARTIAL_STATE}", {"metadata": meta("partial state"), **geometry}, None))
    else:
        todo.append((mean, f"{base} mean", {"metadata": meta("mean"), **geometry}, None))
        # an ensemble's spread is a sensitivity to the method's choices, not a posterior: say so in name and message
        suffix = ENSEMBLE_SUFFIX if rec.info.get("uncertainty") == "ensemble" else ""
        if rec.std is not None:
            std = rec.std
            todo.append((std, f"{base} std{suffix}", {"colormap": "magma", "metadata": meta("std"), **geometry},
                         lambda layer: _std_contrast(layer, std)))
        if add_samples and rec.samples is not None:
            samples = np.abs(rec.samples) if np.iscomplexobj(rec.samples) else rec.samples
            stacked = ({"scale": (1.0, *geometry["scale"]), "translate": (0.0, *geometry["translate"])}
                       if geometry else {})
            if geometry.get("units"):
                stacked["units"] = ("pixel", *geometry["units"])
            if geometry.get("axis_labels"):
                stacked["axis_labels"] = ("sample", *geometry["axis_labels"])
            todo.append((samples, f"{base} samples{suffix}", {"metadata": meta("samples"), **stacked}, None))
    if suffix and rec.std is not None:
        show_info(f"{method}: the std is the spread of runs over {_varied(rec.info)} — it measures sensitivity to "
                  "that choice, not the posterior uncertainty.")
    layers: list[Image] = []

    def add(data, layer_name, kwargs, after) -> None:
        layer = set_image_layer(viewer, data, layer_name, **kwargs)
        layers.append(layer)
        if after is not None:  # e.g. the std's colorbar (a visual of its own): in the next turn when deferred
            later(lambda: after(layer)) if defer else after(layer)

    for item in todo:
        if defer:
            later(lambda item=item: add(*item))
        else:
            add(*item)
    return layers


def _varied(info: dict[str, Any]) -> str:
    """What an ensemble result varied between its runs, in words, from its info (``vary`` of the ensemble method,
    ``spread`` of a test-time-augmented network)."""
    vary = info.get("vary")
    if vary == "seed":
        return f"{info.get('members', 'several')} random seeds of {info.get('base_method', 'the method')}"
    if vary == "lam":
        lams = info.get("member_lams") or []
        span = f" ({min(lams):.3g}–{max(lams):.3g})" if lams else ""
        return f"{info.get('members', 'several')} regularization weights λ{span} of {info.get('base_method', 'the method')}"
    if info.get("spread"):
        return str(info["spread"])
    return "the method's own choices"


def _std_contrast(layer: Image, std: np.ndarray) -> None:
    """Std layers: contrast from 0 (no uncertainty = black) to the 99th percentile, with a colorbar."""
    finite = np.asarray(std)[np.isfinite(std)]
    high = float(np.percentile(finite, 99)) if finite.size else 0.0
    if high > 0:
        layer.contrast_limits = (0.0, high)
    try:
        layer.colorbar.visible = True
    except AttributeError:  # napari without layer colorbars: the name and the contrast note say it
        pass
    layer.metadata.setdefault("invimg", {})["contrast_note"] = (
        f"black = 0, brightest = {high:.3g} (99th percentile of the std), in the image's units")


def image_data(layer: Layer | None, what: str = "image", allow_lazy: bool = False) -> np.ndarray:
    """The data of an image layer as a gray float array; a ``ValueError`` a user can act on otherwise.

    Refuses: no layer, a layer that is not an image, RGB(A), empty data, NaN/inf. ``allow_lazy`` keeps a
    dask array lazy (for tiled processing) instead of reading it into memory.
    """
    if layer is None:
        raise ValueError(f"Choose an image layer for the {what}.")
    if not isinstance(layer, Image):
        raise ValueError(f"The {what} must be an image layer; {layer.name!r} is a {type(layer).__name__} layer.")
    if layer.rgb:
        raise ValueError(f"The {what} {layer.name!r} is an RGB image; convert it to gray first.")
    data = layer.data
    if hasattr(data, "levels") and not isinstance(data, np.ndarray):  # multiscale: the full-resolution level
        data = data[0]
    if data.size == 0:
        raise ValueError(f"The {what} {layer.name!r} is empty.")
    if allow_lazy and type(data).__module__.startswith("dask"):
        return data
    arr = np.asarray(data)
    if arr.dtype.kind not in "biufc":
        raise ValueError(f"The {what} {layer.name!r} is not numeric (dtype {arr.dtype}).")
    if not np.isfinite(arr).all():
        raise ValueError(f"The {what} {layer.name!r} contains NaN or infinite values; replace them first.")
    if arr.dtype.kind == "c":
        return arr.astype(np.complex64)
    return arr.astype(np.float32, copy=False)


# -- run controls -------------------------------------------------------------------------------------
class RunControls(Container):
    """A Run button, a Cancel button (enabled while a task runs) and a one-line status."""

    def __init__(self, on_run: Callable[[], Any], run_text: str = "Run"):
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = Label(value="")
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False)
        super().__init__(widgets=[buttons, self.status], labels=False)
        self.task: Task | None = None
        self.run_button.changed.connect(lambda: on_run())
        self.cancel_button.changed.connect(self.cancel)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.status.value = "cancelling…"

    def started(self, task: Task) -> None:
        self.task = task
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.status.value = "running…"

    def finished(self, message: str) -> None:
        self.run_button.enabled = True
        self.cancel_button.enabled = False
        self.status.value = message


# -- tasks ----------------------------------------------------------------------------------------------
class Task:
    """Background work ``fn(progress)`` with a napari progress bar, cancel and previews (see :func:`run_task`)."""

    def __init__(self, fn: Callable[[Callable[..., bool]], Any], total: int, desc: str,
                 on_preview: Callable[[int, int, np.ndarray | None], Any] | None = None,
                 on_done: Callable[[Any, bool], Any] | None = None,
                 on_error: Callable[[BaseException], Any] | None = None,
                 controls: RunControls | None = None,
                 on_status: Callable[[int, dict[str, float]], Any] | None = None):
        self._fn = fn
        self._on_status = on_status
        self._on_preview = on_preview
        self._on_done = on_done
        self._on_error = on_error
        self._controls = controls
        self._cancel = threading.Event()
        self._steps: queue.Queue = queue.Queue()
        self._outcome: dict[str, Any] = {}
        self._last_preview = 0.0
        self.done = False
        self._shown_step = -1
        self._showing = False  # _show_step is on the call stack (re-entrance guard)
        self._pending = None  # a step delivered while _show_step was running: the latest one
        self._flush_scheduled = False
        self._finishing = False
        self.cancelled = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.started_at = time.perf_counter()
        self.seconds = 0.0
        self._desc = desc
        self.progress_bar = napari_progress(total=max(int(total), 1), desc=desc)
        self._thread = threading.Thread(target=self._compute, name=f"invimg {desc}", daemon=True)
        self.worker = thread_worker(self._relay, start_thread=False)()
        self.worker.yielded.connect(self._show_step)
        self.worker.finished.connect(self._finish)

    # worker-side ---------------------------------------------------------------------------------------
    def _progress(self, step: int, total: int, preview: np.ndarray | None = None,
                  status: dict[str, float] | None = None) -> bool:
        """The callback handed to ``fn``: queues progress (a preview now and then, the method's latest logged
        values as ``status``); ``False`` = stop."""
        now = time.perf_counter()
        if preview is not None and now - self._last_preview >= PREVIEW_INTERVAL_S:
            self._last_preview = now
            # a preview may share memory with the method's working tensor: the layer gets its own copy
            preview = np.array(preview, copy=True)
        else:
            preview = None
        self._steps.put((int(step), int(total), preview, status))
        return not self._cancel.is_set()

    def _compute(self) -> None:
        try:
            self._outcome["result"] = self._fn(self._progress)
        except Cancelled as exc:
            self._outcome["result"] = exc.partial
            self._outcome["cancelled"] = True
        except BaseException as exc:  # shown to the user in the main thread
            self._outcome["error"] = exc

    def _relay(self):
        """The generator the napari worker runs: forwards queued steps to the main thread as yields, at most
        one every :data:`UPDATE_INTERVAL_S` (steps queued meanwhile are coalesced into the latest, keeping the
        newest preview); the last step is always delivered."""
        self._thread.start()
        latest = None
        last_yield = 0.0
        while True:
            try:
                item = self._steps.get(timeout=0.05)
            except queue.Empty:
                item = None
            while item is not None or not self._steps.empty():
                if item is None:
                    item = self._steps.get()
                latest = _merge_steps(latest, item)
                item = None
            finished = not self._thread.is_alive() and self._steps.empty()
            now = time.perf_counter()
            if latest is not None and (finished or now - last_yield >= UPDATE_INTERVAL_S):
                last_yield = now
                out, latest = latest, None
                yield out
            elif finished:
                return
            else:
                yield None  # lets the worker notice quit() between steps

    # main-thread side ------------------------------------------------------------------------------------
    def start(self) -> Task:
        _RUNNING.add(self)
        if self._controls is not None:
            self._controls.started(self)
        self.worker.start()
        return self

    def cancel(self) -> None:
        """Stop at the next step; the best result so far is still shown."""
        self._cancel.set()
        self.worker.quit()

    def _show_step(self, item) -> None:
        """Show one progress step. Never re-entered: drawing the progress bar or the plot may process Qt
        events, which can deliver the next step into this slot; that step is then kept (only the latest)
        and drawn from the event loop once this call has returned (never in a loop here, so a slow draw
        cannot keep this slot busy forever)."""
        if item is None or self.done:
            return
        if self._showing:
            self._pending = item if self._pending is None else _merge_steps(self._pending, item)
            return
        self._showing = True
        try:
            self._draw_step(item)
        finally:
            self._showing = False
        if self._pending is not None and not self._flush_scheduled:
            self._flush_scheduled = True
            QTimer.singleShot(0, self._flush_pending)

    def _flush_pending(self) -> None:
        self._flush_scheduled = False
        item, self._pending = self._pending, None
        if item is not None:
            self._show_step(item)

    def _draw_step(self, item) -> None:
        """The progress bar first (napari's bar runs ``processEvents`` at each change, which would otherwise also
        run the plot's and the canvas's pending redraws inside this call), then the dock's status, the plot (its
        redraw is queued: it runs in a turn of its own) and the preview."""
        step, total, preview, status = item
        if step < self._shown_step:
            return
        self._shown_step = step
        bar = self.progress_bar
        if status:
            text = ", ".join(f"{k} {v:.4g}" for k, v in list(status.items())[:3])
            bar.set_description(f"{self._desc} · {text}")
        if total > 0 and total != bar.total:
            bar.total = total
        if step != bar.n:
            bar.update(step - bar.n)
        if self._controls is not None and not self._cancel.is_set():
            self._controls.status.value = f"iteration {step} / {total}" if total > 1 else "running…"
        if status and self._on_status is not None:  # the method's latest logged values (loss, misfit, R̂...)
            self._on_status(step, status)
        if preview is not None and self._on_preview is not None and not self.done:
            try:
                self._on_preview(step, total, preview)
            except Exception as exc:  # a preview must never kill the run
                log.warning("napari-invimg preview failed: %s", exc)

    def _finish(self) -> None:
        """The worker ended: draw the final step now; the result (``on_done``: layers, reports) and the end of the
        task follow as UI jobs (:func:`later`), each in an event-loop turn of its own."""
        if self._thread.is_alive() or self._showing:
            # quit() stopped the relay early (the compute thread ends at its next step), or a step is being
            # drawn further up this call stack: finish once that is over
            QTimer.singleShot(30, self._finish)
            return
        if self.done or self._finishing:
            return
        self._finishing = True
        final = self._pending
        self._pending = None
        while not self._steps.empty():
            final = _merge_steps(final, self._steps.get())
        if final is not None:  # the final state is always drawn
            self._show_step(final)
        self.seconds = time.perf_counter() - self.started_at
        self.cancelled = bool(self._outcome.get("cancelled") or self._cancel.is_set())
        later(self._conclude, owner=self)

    def _conclude(self) -> None:
        """Close the bar and hand the result (or the error) over; the jobs ``on_done`` queues run next, then
        :meth:`_end`."""
        self.progress_bar.close()
        try:
            if "error" in self._outcome:
                self.error = self._outcome["error"]
                if self._on_error is not None:
                    self._on_error(self.error)
                report_error(self.error)
            else:
                self.result = self._outcome.get("result")
                if self._on_done is not None:
                    self._on_done(self.result, self.cancelled)
        except Exception as exc:
            self.error = exc
            report_error(exc)
        finally:
            later(self._end)

    def _end(self) -> None:
        if self.error is not None:
            message = "failed"
        else:
            message = f"{'cancelled' if self.cancelled else 'done'} in {self.seconds:.1f} s"
        _RUNNING.discard(self)
        if self._controls is not None:
            self._controls.finished(message)
        self.done = True


def _merge_steps(older, newer):
    """Coalesce two progress items into the newer one, keeping the older preview if the newer has none."""
    if older is None:
        return newer
    step, total, preview, status = newer
    return step, total, preview if preview is not None else older[2], status if status else older[3]


def run_task(fn: Callable[[Callable[..., bool]], Any], *, total: int, desc: str = "napari-invimg",
             on_preview: Callable[[int, int, np.ndarray | None], Any] | None = None,
             on_done: Callable[[Any, bool], Any] | None = None,
             on_error: Callable[[BaseException], Any] | None = None,
             controls: RunControls | None = None,
             on_status: Callable[[int, dict[str, float]], Any] | None = None) -> Task:
    """Run ``fn(progress)`` in a worker thread with a napari progress bar of ``total`` steps; returns the started task.

    ``progress(step, total, preview=None) -> bool`` is safe to call from the worker; ``on_preview``,
    ``on_done(result, cancelled)`` and ``on_error(exc)`` run in the main thread. Errors are also shown
    with ``show_error``. ``on_status(step, values)`` (main thread) receives the method's latest logged values
    (a :class:`~napari_invimg.widgets._plot.HistoryPlot`'s ``add``).
    """
    return Task(fn, total, desc, on_preview, on_done, on_error, controls, on_status).start()


def run_reconstruction(viewer, input_layer: Layer | LayerInfo, fn: Callable[[Callable[..., bool]], Reconstruction], *,
                       method: str, total: int, name: str | None = None, add_samples: bool = False,
                       on_done: Callable[[Reconstruction, bool], Any] | None = None,
                       controls: RunControls | None = None,
                       on_status: Callable[[int, dict[str, float]], Any] | None = None) -> Task:
    """Run a reconstruction ``fn(progress) -> Reconstruction`` and show it as layers (see the module docstring).

    Previews fill ``"<name> mean"`` while the run goes on; if the run fails, a mean layer created for
    the previews is removed again (an existing one gets its old data back). ``input_layer`` may be a
    :class:`LayerInfo` when the data are not an image layer (e.g. visibilities): its name, shape and
    geometry are then those of the image to show.
    """
    info = LayerInfo.of(input_layer)
    base = name or f"{info.name} · {method}"
    mean_name = f"{base} mean"
    previous = viewer.layers[mean_name].data if mean_name in viewer.layers else None

    waiting: dict[str, np.ndarray] = {}  # the latest preview while its layer is being made (a UI job)

    def make_preview_layer() -> None:
        image = waiting.pop("image")
        set_image_layer(viewer, image, mean_name, metadata={"invimg": {"input": info.name, "preview": True}},
                        **spatial_kwargs(info, image.shape))

    def preview(step: int, total_: int, image: np.ndarray) -> None:
        if "image" in waiting:
            waiting["image"] = image
        elif mean_name in viewer.layers and viewer.layers[mean_name].data.shape == image.shape:
            layer = viewer.layers[mean_name]
            layer.data = image
            if step <= 1 or layer.contrast_limits[1] <= layer.contrast_limits[0]:
                layer.reset_contrast_limits()
        else:  # a new layer costs napari 0.2-0.3 s of UI time: made in a turn of its own
            waiting["image"] = image
            later(make_preview_layer)

    def undo_preview(_exc: BaseException) -> None:
        if mean_name not in viewer.layers:
            return
        if previous is None:
            viewer.layers.remove(mean_name)
        else:
            viewer.layers[mean_name].data = previous

    def done(rec: Reconstruction | None, cancelled: bool) -> None:
        if rec is None:  # cancelled before the method kept any iterate
            undo_preview(RuntimeError("cancelled"))
            show_info(f"{method}: cancelled before a first result.")
        else:
            if cancelled and rec.std is None and rec.info.get("uncertainty") == "posterior":
                rec.info["burn_in_only"] = True  # e.g. a Langevin state during burn-in: no sample averaged yet
                if mean_name in viewer.layers:
                    undo_preview(RuntimeError("burn-in"))
            add_result_layers(viewer, info, rec, base, add_samples=add_samples, defer=True)
            if cancelled:
                show_info(f"{method}: cancelled; showing the best result so far.")
        if on_done is not None:
            later(lambda: on_done(rec, cancelled))  # after the layers are there

    return run_task(fn, total=total, desc=f"{method} on {info.name}", on_preview=preview, on_done=done,
                    on_error=undo_preview, controls=controls, on_status=on_status)
