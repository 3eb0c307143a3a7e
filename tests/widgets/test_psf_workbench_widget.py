"""The PSF workbench dock widget in a real viewer: beads → PSF + OTF layers, voxel checks, resampling."""

from __future__ import annotations

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.widgets.psf_workbench import PSFWorkbenchWidget

pytestmark = pytest.mark.gui


def _beads(n=8, size=160, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((size, size), 20.0)
    psf = ni.psf.widefield((21, 21), wavelength_um=0.52, na=1.4, pixel_size_um=0.065)
    for k in range(n):
        cy, cx = 25 + 36 * (k // 4), 25 + 36 * (k % 4)
        img[cy - 10:cy + 11, cx - 10:cx + 11] += 3e4 * psf
    return rng.poisson(img).astype(np.float32), psf


def test_extract_check_and_resample(viewer, qtbot, errors):
    beads, truth = _beads()
    viewer.add_image(beads, name="beads", scale=(0.065, 0.065))
    data = viewer.add_image(np.zeros((64, 64), np.float32), name="cells", scale=(0.1, 0.1))
    widget = PSFWorkbenchWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.box.value = "21, 21"
    task = widget.extract()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert errors == []
    psf = viewer.layers["beads · PSF"]
    np.testing.assert_allclose(psf.scale, (0.065, 0.065))
    assert psf.metadata["invimg"]["psf"] and psf.data.shape == (21, 21)
    assert np.linalg.norm(psf.data - truth) / np.linalg.norm(truth) < 0.05
    assert "beads · PSF OTF" in viewer.layers and widget.report.value.startswith("PSF ok")

    widget.psf.value, widget.data.value = psf, data
    assert widget.check() is None and "resample" in errors[-1]  # never used silently at the wrong voxel size
    resampled = widget.resample()
    np.testing.assert_allclose(resampled.scale, (0.1, 0.1))
    widget.psf.value = resampled
    assert widget.check().ok
