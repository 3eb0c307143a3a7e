"""The Simulate measurement dock widget: ground truth + forward model + camera noise → a measurement layer."""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
from magicgui.widgets import Container, SpinBox

from .. import __version__, simulate
from ._layout import fit_dock
from ._models import ForwardModelControls, NoiseControls, build_operator, layer_combo
from ._runner import LayerInfo, RunControls, Task, image_data, report_error, run_task, set_image_layer, spatial_kwargs

__all__ = ["SimulateWidget", "measurement_metadata"]


def measurement_metadata(spec: dict[str, Any], noise_spec: dict[str, Any] | None, seed: int | None,
                         truth: LayerInfo) -> dict[str, Any]:
    """``metadata["invimg"]`` of a simulated measurement: operator, noise, seed, source and the image's geometry."""
    geometry = {"scale": truth.scale, "translate": truth.translate,
                "units": tuple(str(u) for u in truth.units) if truth.units else None,
                "axis_labels": truth.axis_labels}
    return {"operator": spec, "noise": noise_spec, "seed": seed, "source": truth.name, "version": __version__,
            "image_geometry": geometry}


class SimulateWidget(Container):
    """Simulate ``y = noise(A x)`` from a ground-truth layer; the measurement layer remembers ``A`` and the noise."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        viewer = self.viewer = napari_viewer
        self.truth = layer_combo(viewer, "ground truth")
        self.forward = ForwardModelControls(viewer)
        self.noise = NoiseControls()
        self.seed = SpinBox(label="noise seed", value=0, min=0, max=2**31 - 1)
        self.controls = RunControls(self.run, run_text="Simulate")
        self.task: Task | None = None
        super().__init__(widgets=[self.truth, self.forward, self.noise, self.seed, self.controls])
        fit_dock(self)
        self.truth.changed.connect(lambda layer: self.forward.set_reference(layer))
        self.forward.set_reference(self.truth.value)

    def run(self) -> Task | None:
        """Simulate in a worker; adds ``"<truth> · measurement"`` (and ``"<truth> · mask"`` for inpainting)."""
        try:
            layer = self.truth.value
            x = image_data(layer, "ground truth")
            if np.iscomplexobj(x):
                raise ValueError("The ground truth must be real for these forward models.")
            settings, noise, seed = self.forward.settings(), self.noise.build(), int(self.seed.value)
            truth = LayerInfo.of(layer)
        except Exception as exc:
            report_error(exc)
            return None

        def compute(progress):
            A = build_operator(settings, x.shape)
            y = np.asarray(simulate(x, A, noise, seed=seed), dtype=np.float32)
            progress(1, 1)
            return A, y

        def show(result, cancelled: bool) -> None:
            if result is None:
                return
            A, y = result
            meta = {"invimg": measurement_metadata(A.spec(), noise.spec(), seed, truth)}
            shown = y if y.ndim >= 2 else y[None, :]  # compressed-sensing data: one row
            geometry = spatial_kwargs(truth, shown.shape) if y.ndim == x.ndim else {}
            set_image_layer(self.viewer, shown, f"{truth.name} · measurement", metadata=meta, colormap="gray",
                            **geometry)
            if A.name == "Inpainting":
                name = f"{truth.name} · mask"
                if name in self.viewer.layers:
                    self.viewer.layers.remove(name)
                self.viewer.add_labels(A.mask_array.astype(np.uint8), name=name, opacity=0.3,
                                       **spatial_kwargs(truth, A.mask_array.shape))

        self.task = run_task(compute, total=1, desc=f"simulate {truth.name}", on_done=show, controls=self.controls)
        return self.task
