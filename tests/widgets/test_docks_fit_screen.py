"""Every dock fits a 1366×768 laptop screen: the window is not forced taller, and the Run button is reachable."""

from __future__ import annotations

import pytest
from qtpy.QtCore import QPoint
from qtpy.QtWidgets import QApplication, QScrollArea

from napari_invimg.widgets.blackhole import BlackHoleImagingWidget
from napari_invimg.widgets.blackhole_observation import BlackHoleObservationWidget
from napari_invimg.widgets.diagnostics import DiagnosticsWidget
from napari_invimg.widgets.forward_model import ForwardModelWidget
from napari_invimg.widgets.mri import MRIWidget
from napari_invimg.widgets.psf_workbench import PSFWorkbenchWidget
from napari_invimg.widgets.reconstruct import ReconstructWidget
from napari_invimg.widgets.simulate import SimulateWidget
from napari_invimg.widgets.train_prior import TrainPriorWidget
from napari_invimg.widgets.train_supervised import TrainSupervisedWidget

pytestmark = pytest.mark.gui

SCREEN = (1366, 768)
# dock class -> the button a user must reach
DOCKS = {
    ReconstructWidget: lambda w: w.controls.run_button,
    MRIWidget: lambda w: w.rec_controls.run_button,
    BlackHoleObservationWidget: lambda w: w.controls.run_button,
    BlackHoleImagingWidget: lambda w: w.controls.run_button,
    DiagnosticsWidget: lambda w: w.compute_button,
    ForwardModelWidget: lambda w: w.controls.run_button,
    SimulateWidget: lambda w: w.controls.run_button,
    PSFWorkbenchWidget: lambda w: w.controls.run_button,
    TrainPriorWidget: lambda w: w.controls.run_button,
    TrainSupervisedWidget: lambda w: w.controls.run_button,
}


@pytest.mark.parametrize("dock_class", list(DOCKS), ids=lambda c: c.__name__)
def test_dock_fits_a_laptop_screen_with_its_run_button_reachable(make_napari_viewer, qtbot, dock_class):
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.showNormal()
    window.resize(*SCREEN)
    widget = dock_class(viewer)
    viewer.window.add_dock_widget(widget, name=dock_class.__name__, area="right")
    QApplication.processEvents()
    window.resize(*SCREEN)
    qtbot.wait(50)
    assert window.height() <= SCREEN[1], f"the dock forced the window to {window.height()} px"
    assert window.width() <= SCREEN[0]
    scroll = widget.scroll_area
    assert isinstance(scroll, QScrollArea) and scroll.parent() is widget.native, "every dock's form scrolls"
    assert widget.native.minimumSizeHint().height() <= SCREEN[1] - 150
    assert widget.native.width() <= 520, f"the dock takes {widget.native.width()} px of width"
    assert viewer.window._qt_viewer.canvas.native.width() >= 600, "the canvas keeps most of the screen"
    button = DOCKS[dock_class](widget).native
    scroll.ensureWidgetVisible(button)
    QApplication.processEvents()
    viewport = scroll.viewport()
    top_left = button.mapTo(viewport, QPoint(0, 0))
    assert button.isVisibleTo(window)
    assert viewport.height() >= button.height() > 0
    assert 0 <= top_left.y() and top_left.y() + button.height() <= viewport.height(), "Run is off-screen"
    in_window = button.mapTo(window, QPoint(0, 0))
    assert 0 <= in_window.y() and in_window.y() + button.height() <= window.height()
