"""A small live plot of the values a running method logs (DIP's loss, Richardson–Lucy's misfit, ...).

The runner hands every progress step's ``status`` (the latest logged values, see
:class:`napari_invimg.methods.registry.Context`) to :meth:`HistoryPlot.add`; the plot keeps the whole
history of the current run and draws the quantity chosen in its combo box against the iteration, on a
log scale when the values are positive. napari has no plotting layer, so this is a matplotlib canvas in
the dock (matplotlib is part of the plugin's ``all`` extra); without matplotlib the plot is left out and
the progress bar's text still shows the values.
"""

from __future__ import annotations

import time

from magicgui.widgets import ComboBox, Container

__all__ = ["HistoryPlot", "history_plot"]

#: redraw at most this often (s): drawing is slow next to a DIP step
REDRAW_INTERVAL_S = 0.5


class HistoryPlot(Container):
    """Logged value against iteration for the current run, one quantity at a time."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.history: dict[str, list[tuple[int, float]]] = {}
        # choices from a callable: napari's reset_choices on layer events must not empty a static list
        self.quantity = ComboBox(label="plot", choices=lambda _w: list(self.history),
                                 tooltip="a value the method logs at every iteration")
        super().__init__(widgets=[self.quantity], labels=True)
        self.figure = Figure(figsize=(3.2, 1.8), dpi=90, layout="constrained")
        self.axes = self.figure.add_subplot()
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(140)
        self.native.layout().addWidget(self.canvas)
        self._drawn_at = 0.0
        self.quantity.changed.connect(lambda _v: self.draw())

    def clear(self) -> None:
        """Forget the previous run."""
        self.history = {}
        self.quantity.reset_choices()
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
            self.quantity.reset_choices()
        if time.perf_counter() - self._drawn_at >= REDRAW_INTERVAL_S:
            self.draw()

    def draw(self) -> None:
        """Draw the chosen quantity's history."""
        self._drawn_at = time.perf_counter()
        ax = self.axes
        ax.clear()
        key = self.quantity.value
        points = self.history.get(key, []) if key is not None else []
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, lw=1.0)
            ax.set_yscale("log" if min(values) > 0 else "linear")
            ax.set_xlabel("iteration", fontsize=8)
            ax.set_ylabel(key, fontsize=8)
            ax.tick_params(labelsize=7)
        self.canvas.draw_idle()


def history_plot() -> HistoryPlot | None:
    """A :class:`HistoryPlot`, or ``None`` where matplotlib is not installed."""
    try:
        return HistoryPlot()
    except ImportError:
        return None
