"""Small matplotlib plots in the docks, themed like napari: a run's convergence and a (u, v) coverage.

:class:`HistoryPlot` receives every progress step's ``status`` (the latest logged values, see
:class:`napari_invimg.methods.registry.Context`) through :meth:`HistoryPlot.add` and draws what tells
convergence: the data misfit against its target (≈ 1 at the noise level) when the method logs one, a
sampler's running split-R̂ (``rhat_max``) against 1.05, else its loss; :meth:`HistoryPlot.finish` redraws the final state from the run's full ``info["history"]`` and,
for samplers, the split-R̂ and ESS summaries against their thresholds. :class:`UVPlot` draws (u, v)
coverage in Gλ. napari has no plotting layer, so these are matplotlib canvases in the dock (matplotlib is
part of the plugin's ``all`` extra); without matplotlib they are left out.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container

__all__ = ["HistoryPlot", "history_plot", "UVPlot", "uv_plot", "napari_colors", "PREFERRED_QUANTITIES"]

#: redraw at most this often (s): drawing is slow next to a DIP step
REDRAW_INTERVAL_S = 0.5
#: the logged quantity shown first, in this order (the misfit tells convergence; `step` and `alpha` do not)
PREFERRED_QUANTITIES = ("misfit", "misfit_weighted", "rhat_max", "loss", "entropy", "sigma")
#: split-R̂ below this means the chains agree (Vehtari et al., Bayesian Analysis 16 (2021) 667)
RHAT_GOOD = 1.05


def napari_colors() -> dict[str, str]:
    """Background, axes face, text and accent colors of napari's current theme (dark when unknown)."""
    try:
        from napari.settings import get_settings
        from napari.utils.theme import get_theme

        theme = get_theme(get_settings().appearance.theme)
        return {"background": theme.background.as_hex(), "face": theme.foreground.as_hex(),
                "text": theme.text.as_hex(), "accent": theme.current.as_hex(), "muted": theme.highlight.as_hex()}
    except Exception:
        return {"background": "#23242b", "face": "#2e333e", "text": "#f0f1f2", "accent": "#4560c4",
                "muted": "#61696e"}


def _themed_canvas(figsize: tuple[float, float], min_height: int):
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    colors = napari_colors()
    # fixed margins: constrained layout re-measures every tick label at each draw (≈0.3 s of UI time per draw)
    figure = Figure(figsize=figsize, dpi=90, facecolor=colors["background"])
    figure.subplots_adjust(left=0.2, right=0.97, bottom=0.24, top=0.95)
    axes = figure.add_subplot()
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumHeight(min_height)
    canvas.setMaximumHeight(int(min_height * 1.6))
    return figure, axes, canvas, colors


def _plain_tick_labels(ax) -> None:
    """Tick labels as plain text (``%g``): the log axis's default mathtext labels cost a font search per draw."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _style(ax, colors: dict[str, str]) -> None:
    ax.set_facecolor(colors["face"])
    for spine in ax.spines.values():
        spine.set_color(colors["muted"])
    ax.tick_params(colors=colors["text"], labelsize=7)
    ax.xaxis.label.set_color(colors["text"])
    ax.yaxis.label.set_color(colors["text"])
    ax.title.set_color(colors["text"])


class HistoryPlot(Container):
    """Logged value against iteration for the current run, one quantity at a time; the final state at the end."""

    def __init__(self) -> None:
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.mixing: dict[str, float] | None = None
        # choices from a callable: napari's reset_choices on layer events must not empty a static list
        self.quantity = ComboBox(label="plot", choices=self._choices,
                                 tooltip="a value the method logs at every iteration; the misfit is ≈ 1 at the "
                                         "noise level (its target)")
        super().__init__(widgets=[self.quantity], labels=True)
        self.figure, self.axes, self.canvas, self.colors = _themed_canvas((3.2, 1.7), 130)
        self.native.layout().addWidget(self.canvas)
        self._drawn_at = 0.0
        self._line = None  # the drawn history line and its quantity: extended in place while a run goes on
        self._line_key: str | None = None
        self.quantity.changed.connect(lambda _v: self.draw())
        self.draw()

    def _choices(self, _widget=None) -> list[str]:
        keys = list(self.history)
        ordered = [k for k in PREFERRED_QUANTITIES if k in keys] + [k for k in keys if k not in PREFERRED_QUANTITIES]
        return ordered + (["R̂ / ESS"] if self.mixing else [])

    def _reset_quantity(self) -> None:
        self.quantity.reset_choices()
        choices = self._choices()
        if choices and (self.quantity.value not in choices or self.quantity.value in ("step", "alpha")):
            self.quantity.value = choices[0]

    def clear(self) -> None:
        """Forget the previous run."""
        self.history = {}
        self.mixing = None
        self._reset_quantity()
        self.draw()

    def add(self, step: int, status: dict[str, float]) -> None:
        """Record one step's logged values; redraw now and then."""
        new_keys = False
        for key, value in status.items():
            if key not in self.history:
                self.history[key] = []
                new_keys = True
            elif step <= self.history[key][-1][0]:  # a step re-delivered late: already plotted
                continue
            self.history[key].append((int(step), float(value)))
        if new_keys:
            self._reset_quantity()
        if time.perf_counter() - self._drawn_at >= REDRAW_INTERVAL_S:
            if not new_keys and self._line is not None and self._line_key == self.quantity.value:
                self._extend_line()
            else:
                self.draw()

    def _extend_line(self) -> None:
        """Give the drawn line its new points and rescale (no new axes, ticks or texts: cheap enough to run while
        the method runs)."""
        self._drawn_at = time.perf_counter()
        steps, values = zip(*self.history[self._line_key])
        self._line.set_data(steps, values)
        log = min(values) > 0
        if (self.axes.get_yscale() == "log") != log:
            self.axes.set_yscale("log" if log else "linear")
            _plain_tick_labels(self.axes)
        self.axes.relim()
        self.axes.autoscale_view()
        self.canvas.draw_idle()

    def finish(self, info: dict[str, Any] | None) -> None:
        """Draw the final state: the run's full history (every iteration) and, for samplers, R̂ / ESS."""
        info = info or {}
        history = {k: v for k, v in (info.get("history") or {}).items() if v}
        if history:  # series logged at every iteration are replaced by the full record; sparser ones (a running R̂)
            longest = max(len(v) for v in history.values())  # keep the iterations they were seen at
            for k, values in history.items():
                if len(values) == longest or k not in self.history:
                    self.history[k] = list(enumerate((float(v) for v in values), start=1))
        self.mixing = info.get("mixing") or None
        self._reset_quantity()
        if self.mixing and self.quantity.value in (None, "step"):
            self.quantity.value = "R̂ / ESS"
        self.draw()

    def draw(self) -> None:
        """Draw the chosen quantity's history (the misfit with its target line), or the sampler's R̂ / ESS."""
        self._drawn_at = time.perf_counter()
        ax, colors = self.axes, self.colors
        ax.clear()
        key = self.quantity.value
        self._line, self._line_key = None, None
        if key == "R̂ / ESS" and self.mixing:
            self._draw_mixing(ax)
        else:
            points = self.history.get(key, []) if key is not None else []
            if points:
                steps, values = zip(*points)
                (self._line,) = ax.plot(steps, values, lw=1.2, color=colors["accent"])
                self._line_key = key
                from matplotlib.ticker import MaxNLocator

                ax.xaxis.set_major_locator(MaxNLocator(4, integer=True))
                if key and key.startswith("misfit"):
                    ax.axhline(1.0, ls="--", lw=0.9, color=colors["text"], alpha=0.7)
                    ax.text(0.99, 0.97, "target ≈ 1 (noise level)", transform=ax.transAxes, ha="right", va="top",
                            fontsize=7, color=colors["text"])
                elif key == "rhat_max":  # a sampler's running split-R̂ (max over pixels): mixed below RHAT_GOOD
                    ax.axhline(RHAT_GOOD, ls="--", lw=0.9, color=colors["text"], alpha=0.7)
                    ax.text(0.99, 0.97, f"chains mixed: R̂ < {RHAT_GOOD}", transform=ax.transAxes, ha="right",
                            va="top", fontsize=7, color=colors["text"])
                ax.set_yscale("log" if min(values) > 0 else "linear")
                _plain_tick_labels(ax)
                ax.set_xlabel("iteration", fontsize=8)
                ax.set_ylabel(key, fontsize=8)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
                ax.text(0.5, 0.5, "convergence appears here during a run", transform=ax.transAxes, ha="center",
                        va="center", fontsize=8, color=colors["muted"])
        _style(ax, colors)
        self.canvas.draw_idle()

    def _draw_mixing(self, ax) -> None:
        m = self.mixing or {}
        names = ["R̂ median", "R̂ max"]
        values = [m.get("rhat_median", np.nan), m.get("rhat_max", np.nan)]
        bars = ax.barh(names, values, color=[self.colors["accent"] if v < RHAT_GOOD else "#d9534f" for v in values])
        ax.axvline(RHAT_GOOD, ls="--", lw=0.9, color=self.colors["text"])
        ax.set_xlim(min(0.95, *values) if np.all(np.isfinite(values)) else 0.95,
                    max(1.2, *(v * 1.05 for v in values if np.isfinite(v))))
        ax.set_xlabel(f"split-R̂ (good < {RHAT_GOOD}); ESS min {m.get('ess_min', float('nan')):.0f}, "
                      f"median {m.get('ess_median', float('nan')):.0f}", fontsize=7)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, color=self.colors["text"])


def history_plot() -> HistoryPlot | None:
    """A :class:`HistoryPlot`, or ``None`` where matplotlib is not installed."""
    try:
        return HistoryPlot()
    except ImportError:
        return None


class UVPlot(Container):
    """(u, v) coverage in Gλ with the conjugate points (east left, north up, as on the sky)."""

    def __init__(self) -> None:
        super().__init__(widgets=[], labels=False)
        self.figure, self.axes, self.canvas, self.colors = _themed_canvas((3.0, 2.6), 190)
        self.native.layout().addWidget(self.canvas)
        self.points: np.ndarray | None = None
        self.draw(None, None)

    def draw(self, u: np.ndarray | None, v: np.ndarray | None, title: str = "") -> None:
        ax, colors = self.axes, self.colors
        ax.clear()
        if u is None or v is None or len(u) == 0:
            ax.text(0.5, 0.5, "(u, v) coverage appears here", transform=ax.transAxes, ha="center", va="center",
                    fontsize=8, color=colors["muted"])
            ax.set_xticks([])
            ax.set_yticks([])
            self.points = None
        else:
            uu, vv = np.concatenate([u, -u]) / 1e9, np.concatenate([v, -v]) / 1e9
            self.points = np.stack([uu, vv], 1)
            ax.scatter(uu, vv, s=2, color="orange", linewidths=0)
            ax.set_aspect("equal", adjustable="datalim")
            ax.invert_xaxis()  # east (positive u) to the left, as images of the sky are shown
            ax.set_xlabel("u (Gλ)", fontsize=8)
            ax.set_ylabel("v (Gλ)", fontsize=8)
            if title:
                ax.set_title(title, fontsize=8)
        _style(ax, colors)
        self.canvas.draw_idle()


def uv_plot() -> UVPlot | None:
    """A :class:`UVPlot`, or ``None`` where matplotlib is not installed."""
    try:
        return UVPlot()
    except ImportError:
        return None
