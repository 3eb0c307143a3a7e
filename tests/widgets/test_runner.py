"""The widget runner on its own: geometry of output layers, and a generic task with progress and cancel."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_invimg import Cancelled
from napari_invimg.widgets._runner import LayerInfo, run_task, running_tasks, spatial_kwargs


def test_spatial_kwargs_for_finer_and_equal_grids():
    coarse = LayerInfo("y", (16, 16), (0.2, 0.2), (0.05, 0.05))
    fine = spatial_kwargs(coarse, (32, 32))  # super-resolution: pixel centers of the fine grid
    np.testing.assert_allclose(fine["scale"], (0.1, 0.1))
    np.testing.assert_allclose(fine["translate"], (0.0, 0.0))
    same = spatial_kwargs(LayerInfo("x", (8, 9, 10), (0.3, 0.1, 0.1), (1.0, 2.0, 3.0), axis_labels=("z", "y", "x")),
                          (8, 9, 10))
    assert same["scale"] == (0.3, 0.1, 0.1) and same["translate"] == (1.0, 2.0, 3.0)
    assert same["axis_labels"] == ("z", "y", "x")


@pytest.mark.gui
def test_run_task_reports_progress_and_returns_partial_on_cancel(qtbot):
    outcome = {}

    def work(progress):
        for k in range(1, 10_000):
            time.sleep(0.01)
            if progress(k, 10_000, np.full((4, 4), k, np.float32)) is False:
                raise Cancelled(partial=k)
        return "finished"

    previews = []
    task = run_task(work, total=10_000, desc="test", on_preview=lambda s, t, p: previews.append(s),
                    on_done=lambda result, cancelled: outcome.update(result=result, cancelled=cancelled))
    qtbot.waitUntil(lambda: task.progress_bar.n >= 3, timeout=20_000)
    task.cancel()
    qtbot.waitUntil(lambda: task.done, timeout=20_000)
    assert outcome["cancelled"] is True and outcome["result"] >= 3
    assert previews and task not in running_tasks()


@pytest.mark.gui
def test_add_result_layers_with_std_and_samples(make_napari_viewer_proxy):
    from napari_invimg import Reconstruction
    from napari_invimg.widgets._runner import add_result_layers

    viewer = make_napari_viewer_proxy()
    image = viewer.add_image(np.zeros((6, 8), np.float32), name="img", scale=(0.5, 0.25), units=("µm", "µm"))
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(3, 6, 8)).astype(np.float32)
    rec = Reconstruction(samples.mean(0), samples.std(0), samples, {"method": "demo", "seed": 1})
    layers = add_result_layers(viewer, image, rec, add_samples=True)
    assert [lyr.name for lyr in layers] == ["img · demo mean", "img · demo std", "img · demo samples"]
    std, stack = viewer.layers["img · demo std"], viewer.layers["img · demo samples"]
    assert std.colormap.name == "magma" and std.metadata["invimg"]["output"] == "std"
    np.testing.assert_allclose(stack.scale, (1.0, 0.5, 0.25))
    assert stack.data.shape == (3, 6, 8) and str(std.units[0]) == "micrometer"
    # the same name again updates the layers in place
    add_result_layers(viewer, image, Reconstruction(rec.mean + 1, rec.std, None, rec.info))
    assert len(viewer.layers) == 4
    np.testing.assert_allclose(viewer.layers["img · demo mean"].data, rec.mean + 1)


def test_progress_bar_text_shows_the_methods_latest_logged_values(viewer, qtbot):
    """A method's logged values (Richardson–Lucy's misfit, DIP's loss) become the progress bar's text."""
    import napari_invimg as ni
    from napari_invimg.widgets._runner import run_task

    x = ni.datasets.fluorescence((32, 32), seed=0)
    A = ni.operators.Blur(ni.psf.gaussian((5, 5), 1.0), x.shape)
    noise = ni.noise.Gaussian(0.01)
    y = ni.simulate(x, A, noise, seed=0)
    texts = []
    task = run_task(lambda progress: ni.reconstruct(y, A, "richardson_lucy", noise=noise, stop="none", iterations=20,
                                                    progress=progress), total=20, desc="rl")
    task.progress_bar.events.description.connect(lambda e: texts.append(e.value))
    qtbot.waitUntil(lambda: task.done, timeout=30_000)
    assert any("misfit" in t for t in texts)
