"""The Forward model dock widget driven in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.widgets.forward_model import ForwardModelWidget
from napari_invimg.widgets.reconstruct import ReconstructWidget

pytestmark = pytest.mark.gui


def shown(*widgets) -> bool:
    """Whether the widgets are shown in their form (``visible`` is False for any widget of a hidden window)."""
    return all(not w.native.isHidden() for w in widgets)


@pytest.fixture
def widget(viewer):
    w = ForwardModelWidget(viewer)
    viewer.window.add_dock_widget(w)
    return w


@pytest.mark.parametrize("model", ["born_wolf", "richards_wolf"])
def test_widefield_psf_layer_from_the_layer_scale(viewer, qtbot, widget, errors, model):
    stack = viewer.add_image(np.zeros((8, 40, 40), np.float32), name="stack", scale=(0.25, 0.1, 0.1))
    widget.image.value = stack
    assert widget.forward.ndim == 3
    assert widget.forward.pixel_size.value == pytest.approx(0.1)
    assert widget.forward.z_step.value == pytest.approx(0.25)
    assert shown(widget.forward.z_step, widget.forward.psf_size_z)
    widget.forward.psf_kind.value = model
    assert shown(widget.forward.na, widget.forward.wavelength)
    widget.forward.psf_size.value = 15
    widget.forward.psf_size_z.value = 7
    task = widget.add_psf()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert errors == []
    psf = viewer.layers[f"PSF · {model}"]
    assert psf.data.shape == (7, 15, 15) and psf.data.sum() == pytest.approx(1.0, rel=1e-4)
    np.testing.assert_allclose(psf.scale, (0.25, 0.1, 0.1))
    assert psf.metadata["invimg"]["psf"]["na"] == pytest.approx(1.4)


def test_parameters_follow_the_operator(widget):
    f = widget.forward
    f.kind.value = "Identity"
    assert not shown(f.psf_kind) and not shown(f.factor)
    f.kind.value = "Downsampling"
    assert shown(f.factor, f.psf_kind)
    f.kind.value = "CompressedSensing"
    assert shown(f.fraction, f.pattern_seed) and not shown(f.psf_kind)
    f.kind.value = "Blur"
    f.psf_kind.value = "gaussian"
    assert shown(f.sigma) and not shown(f.na)
    f.psf_kind.value = "gibson_lanni"
    assert shown(f.na, f.n_sample) and not shown(f.sigma)


def test_measured_bead_psf_feeds_a_reconstruction(viewer, qtbot, widget, errors):
    """A bead image (offset, shifted, on a background) becomes a centered PSF used by Reconstruct."""
    truth_psf = ni.psf.gaussian((21, 21), 1.5)
    bead = np.roll(truth_psf, (2, -1), axis=(0, 1)) * 1000 + 5.0
    bead_layer = viewer.add_image(bead, name="bead")
    x = ni.datasets.fluorescence((48, 48), seed=2)
    A = ni.operators.Blur(truth_psf, x.shape)
    y = viewer.add_image(ni.simulate(x, A, ni.noise.Gaussian(0.01), seed=0), name="y")
    widget.image.value = y
    widget.forward.psf_kind.value = "bead"
    widget.forward.bead.value = bead_layer
    task = widget.add_psf()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert errors == []
    kernel = viewer.layers["PSF · bead"].data
    np.testing.assert_allclose(kernel, truth_psf, atol=2e-3)

    rec = ReconstructWidget(viewer)
    rec.measurement.value = viewer.layers["y"]
    rec.source.value = "psf_layer"
    rec.psf_layer.value = viewer.layers["PSF · bead"]
    rec.method.value = "wiener"
    run = rec.run()
    qtbot.waitUntil(lambda: run.done, timeout=60_000)
    assert errors == []
    assert ni.metrics.psnr(viewer.layers["y · wiener mean"].data, x) > ni.metrics.psnr(y.data, x)


def test_apply_without_image_reports_error(widget, viewer, errors):
    assert widget.apply() is None
    assert len(errors) == 1 and "image layer" in errors[0]
    assert len(viewer.layers) == 0
