"""Layout pieces that keep a dock usable on a 1366×768 laptop screen: collapsible sections and wrapping labels.

Every dock calls :func:`fit_dock` at the end of its ``__init__``: its form moves into a scroll area (so the
Run button stays reachable however tall the form; magicgui's own ``scrollable=True`` is lost when napari
docks a container, because napari docks ``container.native``, the widget inside the scroll area); rarely changed controls go into a :class:`Section` that starts collapsed; report labels
made with :func:`report_label` wrap instead of widening the dock.
"""

from __future__ import annotations

from collections.abc import Sequence

from magicgui.widgets import Container, Label, Widget
from superqt import QCollapsible

__all__ = ["Section", "report_label", "placeholder", "fit_dock", "warm_up_napari"]

#: the widest a dock's report text may make it (px); longer text wraps
REPORT_WIDTH_PX = 320


class Section(Container):
    """A titled group of controls that folds away (superqt's ``QCollapsible``); ``body`` holds the controls."""

    def __init__(self, title: str, widgets: Sequence[Widget], collapsed: bool = True, labels: bool = True):
        super().__init__(widgets=[], labels=False)
        self.body = Container(widgets=list(widgets), labels=labels)
        self.collapsible = QCollapsible(title)
        self.collapsible.addWidget(self.body.native)
        self.native.layout().addWidget(self.collapsible)
        self.native.layout().setContentsMargins(0, 0, 0, 0)
        if collapsed:
            self.collapsible.collapse(animate=False)
        else:
            self.collapsible.expand(animate=False)

    def expand(self) -> None:
        self.collapsible.expand(animate=False)

    def reset_choices(self, *_args) -> None:
        """napari refreshes layer choices through the dock's children: pass it on to the section's controls."""
        self.body.reset_choices()


def report_label(text: str = "") -> Label:
    """A label for reports and warnings that wraps (never widens the dock) and whose text can be selected."""
    label = Label(value=text)
    label.native.setWordWrap(True)
    label.native.setMaximumWidth(REPORT_WIDTH_PX)
    from qtpy.QtCore import Qt

    label.native.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def placeholder(widget: Widget, text: str = "automatic") -> Widget:
    """Show ``text`` in an empty line edit (blank means automatic)."""
    native = widget.native
    if hasattr(native, "setPlaceholderText"):
        native.setPlaceholderText(text)
    return widget


#: characters a combo box shows before eliding (long layer names must not widen the dock)
COMBO_CHARACTERS = 14
#: the widest a dock's form may ask to be (px); the canvas keeps the rest of a 1366 px screen
DOCK_MAX_WIDTH_PX = 460


def fit_dock(container: Container) -> Container:
    """Make a dock fit a laptop screen: its form moves into a vertical scroll area inside ``container.native``
    (kept as ``container.scroll_area``), combo boxes size to a few characters (long layer names elide instead of
    widening the dock) and the form's width is capped, so the canvas keeps most of the screen."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QComboBox, QFrame, QScrollArea, QVBoxLayout, QWidget

    outer = container.native
    for combo in outer.findChildren(QComboBox):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(COMBO_CHARACTERS)
    form = QWidget()
    form.setLayout(outer.layout())  # Qt moves the layout and its widgets; magicgui keeps using the same layout
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    scroll.setWidget(form)
    layout = QVBoxLayout(outer)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(scroll)
    outer.setMaximumWidth(DOCK_MAX_WIDTH_PX)
    container.scroll_area = scroll
    warm_up_napari()
    return container


_WARM: list[bool] = []


def warm_up_napari() -> None:
    """Pay napari's one-time lazy set-up when a dock opens, not in the middle of a run: the first image layer of a
    session builds pint's unit registry and imports ``scipy.ndimage`` (for its thumbnail) — 1–3 s of UI time on a
    laptop. Done once per process."""
    if _WARM:
        return
    _WARM.append(True)
    import pint
    from scipy import ndimage  # noqa: F401  (napari's Image thumbnail imports it on first use)

    pint.get_application_registry().pixel  # noqa: B018  (napari's layer transforms build the registry on first use)
