"""A fresh napari session as a user meets it: the viewer first, then the plugin's docks (run as a script).

Run by ``test_fresh_process.py`` in a new process (and by hand under the default CUDA torch wheel, see
``benchmarks/RESULTS.md`` §12): creates a viewer, then imports napari-invimg and drives Black hole → Image
(``rml``), Train prior → Train and a DIP run in Reconstruct (``--plugin-first``: import the plugin before the
viewer, as scripts and ``make demo`` do). With the CUDA wheel, the first optimizer used to
import triton after the OpenGL driver and kill the process (segmentation fault). Exits 0 when all ran.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication


def wait(task, timeout_s: float = 300.0) -> None:
    """Process Qt events until ``task`` (a runner Task, or ``None`` for synchronous work) is done."""
    start = time.perf_counter()
    if not hasattr(task, "done"):  # synchronous work returned its result
        return
    while not task.done:
        QApplication.processEvents()
        time.sleep(0.01)
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError(f"{task._desc} did not finish in {timeout_s:.0f} s")
    if task.error is not None:
        raise task.error


def main() -> int:
    if "--plugin-first" in sys.argv:  # as a script or `make demo` does: the plugin before the viewer
        import napari_invimg  # noqa: F401
    viewer = napari.Viewer(show=True)  # by default the viewer (and its OpenGL driver) exists before the plugin
    QApplication.processEvents()
    import torch

    import napari_invimg as ni
    from napari_invimg import _triton_guard
    from napari_invimg.widgets.blackhole import BlackHoleImagingWidget
    from napari_invimg.widgets.blackhole_observation import BlackHoleObservationWidget
    from napari_invimg.widgets.reconstruct import ReconstructWidget
    from napari_invimg.widgets.train_prior import TrainPriorWidget

    print(f"torch {torch.__version__}; triton guard: {_triton_guard.last_result}", flush=True)
    torch.set_num_threads(1)

    # Black hole → Image (rml): the first optimizer of the session
    observe = BlackHoleObservationWidget(viewer)
    viewer.window.add_dock_widget(observe)
    observe.npix.value = 32
    observe.duration.value = 8.0
    observe.add_model()
    wait(observe.simulate())
    bh = BlackHoleImagingWidget(viewer)
    viewer.window.add_dock_widget(bh)
    bh.form["iterations"].value = 20
    wait(bh.run())
    assert any(layer.name.endswith("rml mean") for layer in viewer.layers), "no rml mean layer"
    print("black hole rml: ok", flush=True)

    # Train prior → Train (self-supervised, a few steps)
    clean = ni.datasets.fluorescence((32, 32), seed=4)
    noisy = (clean + 0.1 * np.random.default_rng(0).standard_normal(clean.shape)).astype(np.float32)
    layer = viewer.add_image(noisy, name="noisy")
    tp = TrainPriorWidget(viewer)
    viewer.window.add_dock_widget(tp)
    with tempfile.TemporaryDirectory() as folder:
        tp.noisy.value = layer
        tp.steps.value = 3
        tp.output.value = Path(folder) / "prior.pt"
        wait(tp.run())
        assert (Path(folder) / "prior.pt").is_file(), "no weights written"
    print("train prior: ok", flush=True)

    # Reconstruct with DIP (a few iterations) on a blurred measurement
    A = ni.operators.Blur(ni.psf.gaussian((7, 7), 1.2), clean.shape)
    noise = ni.noise.Gaussian(0.02)
    y = ni.simulate(clean, A, noise, seed=0)
    meas = viewer.add_image(y, name="blurred", metadata={"invimg": {"operator": A.spec(), "noise": noise.spec()}})
    rw = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(rw)
    rw.measurement.value = meas
    rw.method.value = "dip"
    rw.params.set_values({"iterations": 5, "width": 8, "depth": 2})
    wait(rw.run())
    assert "blurred · dip mean" in viewer.layers, "no DIP mean layer"
    print("reconstruct dip: ok", flush=True)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
