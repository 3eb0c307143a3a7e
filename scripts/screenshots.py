"""Screenshots of every dock at 1366×768 (a laptop screen) for the README, and the time each workflow takes.

    xvfb-run -a -s "-screen 0 1366x768x24" python scripts/screenshots.py [--out docs/screenshots]

Opens napari at 1366×768, runs the README's four workflows through the docks (deconvolve a 3D stack with
Richardson–Lucy, denoise with uncertainty (ULA), MRI, black hole), shows each of the eight docks, and saves
one PNG per dock (``--only black_hole ...`` retakes some; scaled to 60 % and reduced to a 32-color palette, 10–70 kB each; ~310 kB in all). Prints the seconds
each workflow's run took (the README quotes them).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import napari
import numpy as np
from PIL import Image as PILImage
from qtpy.QtWidgets import QApplication

SIZE = (1366, 768)
#: the script's workflows (``--only``): each saves its own PNGs
SECTIONS = ("reconstruct_rl_3d", "reconstruct_ula_std", "mri", "black_hole", "other_docks")


def _wait(task, timeout_s: float = 900.0) -> float:
    """Process events until a runner task is done; its seconds."""
    start = time.perf_counter()
    while task is not None and not task.done:
        QApplication.processEvents()
        time.sleep(0.02)
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError(task._desc)
    if task is not None and task.error is not None:
        raise task.error
    return time.perf_counter() - start


def _settle(seconds: float = 0.5) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def _save(viewer, out: Path, name: str, scale: float = 0.6, colors: int = 32, dock_only: bool = False) -> Path:
    window = viewer.window._qt_window
    window.resize(*SIZE)
    _settle()
    shot = viewer.screenshot(canvas_only=False, flash=False)  # RGBA of the whole window
    img = PILImage.fromarray(np.asarray(shot)[..., :3])
    img = img.resize((int(img.width * scale), int(img.height * scale)), PILImage.LANCZOS)
    if dock_only:  # the docks without a result: the right 30 % (the dock) is what matters
        img = img.crop((int(img.width * 0.70), 0, img.width, img.height))
    img = img.quantize(colors=colors, method=PILImage.Quantize.MEDIANCUT, dither=PILImage.Dither.NONE)
    path = out / f"{name}.png"
    tmp = path.with_suffix(".tmp.png")
    img.save(tmp, optimize=True)
    tmp.replace(path)
    print(f"{path}  {path.stat().st_size / 1024:.0f} kB", flush=True)
    return path


def _show_only(viewer, endings: list[str], grid: bool = False) -> None:
    """Show the layers whose names end with one of ``endings`` (side by side with ``grid``), hide the rest."""
    for layer in viewer.layers:
        layer.visible = any(layer.name.endswith(e) for e in endings)
    if grid:
        viewer.grid.enabled = True
        viewer.grid.stride = 1
    if viewer.dims.ndim == 3:
        viewer.dims.set_point(0, sum(viewer.dims.range[0][:2]) / 2)
    viewer.reset_view()


def _viewer() -> napari.Viewer:
    viewer = napari.Viewer(title="napari-invimg")
    window = viewer.window._qt_window
    window.showNormal()
    window.resize(*SIZE)
    return viewer


def _dock(viewer, widget, name: str):
    widget.dock_widget = viewer.window.add_dock_widget(widget, name=name, area="right")
    _settle(0.2)
    return widget


def _heights(viewer, widgets, heights: list[int]) -> None:
    """Share the right dock area's height between docks stacked there (pixels, in proportion)."""
    from qtpy.QtCore import Qt

    viewer.window._qt_window.resizeDocks([w.dock_widget for w in widgets], heights, Qt.Orientation.Vertical)
    _settle(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, help="retake only these screenshots' workflows")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import torch

    import napari_invimg as ni
    from napari_invimg.widgets.blackhole import BlackHoleImagingWidget
    from napari_invimg.widgets.blackhole_observation import BlackHoleObservationWidget
    from napari_invimg.widgets.diagnostics import DiagnosticsWidget
    from napari_invimg.widgets.forward_model import ForwardModelWidget
    from napari_invimg.widgets.mri import MRIWidget
    from napari_invimg.widgets.psf_workbench import PSFWorkbenchWidget
    from napari_invimg.widgets.reconstruct import ReconstructWidget
    from napari_invimg.widgets.simulate import SimulateWidget
    from napari_invimg.widgets.train_prior import TrainPriorWidget

    torch.set_num_threads(max(1, torch.get_num_threads()))
    seconds: dict[str, float] = {}

    # 1. deconvolve a 3D stack (Richardson–Lucy, stops itself) ------------------------------------------
    if not args.only or "reconstruct_rl_3d" in args.only:
        viewer = _viewer()
        viewer.open_sample("napari-invimg", "fluorescence_3d")
        rec = _dock(viewer, ReconstructWidget(viewer), "Reconstruct")
        assert rec.method.value == "richardson_lucy"
        seconds["deconvolve a 3D stack (RL)"] = _wait(rec.run())
        _show_only(viewer, ["measurement", "richardson_lucy mean"], grid=True)
        _save(viewer, out, "reconstruct_rl_3d")
        diag = _dock(viewer, DiagnosticsWidget(viewer), "Diagnostics")
        truth = [lyr for lyr in viewer.layers if lyr.name.endswith("truth")]
        if truth:
            diag.truth.value = truth[0]
        diag.run()
        _save(viewer, out, "diagnostics")
        viewer.close()

    # 2. denoise with uncertainty (ULA: mean and std) ------------------------------------------------------
    if not args.only or "reconstruct_ula_std" in args.only:
        viewer = _viewer()
        x = ni.datasets.fluorescence((128, 128), seed=2)
        noise = ni.noise.Gaussian(0.08)
        A = ni.operators.Identity(x.shape)
        y = ni.simulate(x, A, noise, seed=0)
        viewer.add_image(x, name="truth", colormap="gray", visible=False)
        viewer.add_image(y, name="noisy", colormap="gray",
                         metadata={"invimg": {"operator": A.spec(), "noise": noise.spec()}})
        rec = _dock(viewer, ReconstructWidget(viewer), "Reconstruct")
        rec.method.value = "ula"
        rec.params.set_values({"iterations": 1500, "n_samples": 32})
        seconds["denoise with uncertainty (ULA)"] = _wait(rec.run())
        _show_only(viewer, ["noisy", "ula mean", "ula std"], grid=True)
        _save(viewer, out, "reconstruct_ula_std")
        viewer.close()

    # 3. MRI ---------------------------------------------------------------------------------------------
    if not args.only or "mri" in args.only:
        viewer = _viewer()
        viewer.open_sample("napari-invimg", "mri_brain")
        mri = _dock(viewer, MRIWidget(viewer), "MRI")
        mri.method.value = "tv"
        seconds["MRI (8 coils, 4×, TV)"] = _wait(mri.reconstruct())
        _show_only(viewer, ["truth", "tv mean"], grid=True)
        _save(viewer, out, "mri")
        viewer.close()

    # 4. black hole -------------------------------------------------------------------------------------
    if not args.only or "black_hole" in args.only:
        viewer = _viewer()
        observe = _dock(viewer, BlackHoleObservationWidget(viewer), "Black hole observation")
        start = time.perf_counter()
        _wait(observe.show_coverage())
        observe.add_model()
        _wait(observe.simulate())
        bh = _dock(viewer, BlackHoleImagingWidget(viewer), "Black hole imaging")
        _wait(bh.run())
        _heights(viewer, [observe, bh], [460, 290])
        seconds["black hole (coverage, simulate, RML)"] = time.perf_counter() - start
        _show_only(viewer, ["sky ring", "dirty image", "rml mean"], grid=True)
        _save(viewer, out, "black_hole")
        viewer.close()

    # the other docks ------------------------------------------------------------------------------------
    if not args.only or "other_docks" in args.only:
        viewer = _viewer()
        viewer.open_sample("napari-invimg", "fluorescence")
        for cls, name in ((ForwardModelWidget, "forward_model"), (SimulateWidget, "simulate"),
                          (PSFWorkbenchWidget, "psf_workbench"), (TrainPriorWidget, "train_prior")):
            widget = _dock(viewer, cls(viewer), name)
            _save(viewer, out, name, dock_only=True)
            viewer.window.remove_dock_widget(widget.native)
        viewer.close()

    total = sum(p.stat().st_size for p in out.glob("*.png")) / 1024
    print(f"total {total:.0f} kB")
    print("\n| workflow | seconds |\n| --- | ---: |")
    for name, s in seconds.items():
        print(f"| {name} | {s:.1f} |")


if __name__ == "__main__":
    main()
