"""The "Save recipe" action: a result layer's ``metadata["invimg"]`` → a JSON recipe for ``napari-invimg run``."""

from __future__ import annotations

from pathlib import Path

import napari
from napari.layers import Layer
from napari.utils.notifications import show_info

from .. import io
from ._runner import report_error

__all__ = ["save_layer_recipe", "save_recipe_dialog"]


def save_layer_recipe(layer: Layer, path: str | Path) -> Path:
    """Write the recipe of a napari-invimg result layer (``ValueError`` for other layers)."""
    meta = layer.metadata.get("invimg", {})
    if "method" not in meta:
        raise ValueError(f"The layer {layer.name!r} is no napari-invimg reconstruction; select a result layer "
                         "(a mean or std layer).")
    return io.save_recipe(meta, path)


def save_recipe_dialog(viewer: napari.viewer.Viewer) -> Path | None:
    """Ask for a file name and save the selected result layer's recipe there."""
    from qtpy.QtWidgets import QFileDialog

    layer = viewer.layers.selection.active
    try:
        if layer is None or "method" not in layer.metadata.get("invimg", {}):
            raise ValueError("Select a napari-invimg result layer (a mean or std layer) to save its recipe.")
        default = f"{layer.name.split(' · ')[0]}_{layer.metadata['invimg']['method']}.recipe.json"
        path, _ = QFileDialog.getSaveFileName(None, "Save recipe", default, "Recipes (*.json)")
        if not path:
            return None
        out = save_layer_recipe(layer, path)
    except Exception as exc:
        report_error(exc)
        return None
    show_info(f"Recipe saved to {out}; replay it with: napari-invimg run {out.name} <images> -o <output>")
    return out
