"""The MRI dock widget in a real viewer: simulate k-space, reconstruct, read a fastMRI file."""

from __future__ import annotations

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg import mri
from napari_invimg.widgets.kspace_reader import get_reader
from napari_invimg.widgets.mri import MRIWidget

pytestmark = pytest.mark.gui



def test_simulate_and_reconstruct_phantom(viewer, qtbot, errors):
    w = MRIWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.source.value = "brain"
    w.size.value = 64
    w.coils.value = 4
    w.pattern.value = "poisson"
    w.acceleration.value = 4.0
    task = w.simulate()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert errors == []
    k = viewer.layers["brain · k-space"]
    assert k.data.shape == (4, 64, 64) and k.data.dtype == np.float32
    meta = k.metadata["invimg"]
    assert np.iscomplexobj(meta["kspace"]) and meta["coil_maps"].shape == (4, 64, 64)
    assert viewer.layers["brain · mask"].data.shape == (64, 64)
    zf = viewer.layers["brain · zero-filled RSS"].data
    assert zf.shape == (64, 64)
    assert "scan time saved" in w.report.value and abs(meta["acceleration"] - 4) < 0.5
    truth = np.abs(mri.brain((64, 64)))

    assert w.kspace.value.name == k.name and w.maps.value == "simulated (true)"
    assert w.method.value == "tv"  # the default: compressed sensing with TV
    w.form.set_values({"iterations": 40})
    w.phase.value = True
    task = w.reconstruct()
    qtbot.waitUntil(lambda: task.done, timeout=120_000)
    assert errors == []
    mean = viewer.layers["brain · k-space · tv mean"]
    assert mean.data.shape == (64, 64) and not np.iscomplexobj(mean.data)
    assert ni.metrics.psnr(mean.data, truth) > ni.metrics.psnr(zf, truth)
    info = mean.metadata["invimg"]
    assert info["method"] == "tv" and info["coil_maps_origin"] == "simulated (true)"
    assert info["coil_maps"].shape == (4, 64, 64)
    assert "brain · k-space · tv phase" in viewer.layers

    # ESPIRiT maps from the center, and a bad choice reported without layers
    w.maps.value = "ESPIRiT"
    w.method.value = "adjoint"
    task = w.reconstruct()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert viewer.layers["brain · k-space · adjoint mean"].metadata["invimg"]["coil_maps_origin"] == "ESPIRiT"
    n_layers = len(viewer.layers)
    w.kspace.value = None
    assert w.reconstruct() is None and errors and len(viewer.layers) == n_layers


def test_reader_and_image_layer_source(viewer, qtbot, errors, tmp_path):
    x = mri.shepp_logan((48, 48))
    sc = mri.simulate_kspace(x, 4, kind="equispaced", acceleration=2, seed=0)
    path = tmp_path / "scan.h5"
    mri.save_h5(path, np.stack([sc.kspace, sc.kspace]), rss=np.abs(np.stack([x, x])))
    reader = get_reader(str(path))
    assert reader is not None and get_reader(str(tmp_path / "other.tif")) is None
    for data, kwargs, kind in reader(str(path)):
        viewer.add_image(data, **kwargs)
    assert viewer.layers["scan · k-space"].data.shape == (2, 4, 48, 48)
    w = MRIWidget(viewer)
    w.kspace.value = viewer.layers["scan · k-space"]
    assert w.slice.max == 1 and w.maps.value == "ESPIRiT"
    w.slice.value = 1
    w.method.value = "cg_sense"
    task = w.reconstruct()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert errors == []
    rec = viewer.layers["scan · k-space · cg_sense mean"]
    assert rec.data.shape == (48, 48) and rec.metadata["invimg"]["slice"] == 1
    # any image layer can be the object
    layer = viewer.add_image(x * 3, name="object", scale=(0.5, 0.5))
    w.source.reset_choices()
    w.source.value = layer
    w.coils.value = 1
    task = w.simulate()
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    assert viewer.layers["object · k-space"].data.shape == (48, 48)
    np.testing.assert_allclose(viewer.layers["object · zero-filled RSS"].scale, (0.5, 0.5))


def test_pnp_defaults_in_the_dock_are_the_librarys(viewer):
    """The MRI dock runs pnp_admm with the registry's defaults (the benchmark's: phase removal, no injection)."""
    from napari_invimg.methods import registry

    w = MRIWidget(viewer)
    w.method.value = "pnp_admm"
    shown = w.form.values()
    defaults = registry.get("pnp_admm").validate({})
    assert shown and registry.get("pnp_admm").validate(shown) == defaults
    assert shown["phase"] == "auto" and shown["noise_injection"] is None and shown["average"] is None


def test_faulty_kspace_layers_are_reported_by_name(viewer, qtbot, errors):
    """k-space with NaN, real k-space and an image for the simulation with NaN: our message shown, no layer added."""
    sc = mri.simulate_kspace(mri.brain((32, 32)).astype(np.complex64), 2, kind="equispaced", acceleration=2, seed=0)
    bad = sc.kspace.copy()
    bad[0, 16, 16] = np.nan
    w = MRIWidget(viewer)
    for name, k, message in (("nan", bad, "NaN"), ("real", sc.kspace.real.copy(), "complex")):
        layer = viewer.add_image(np.abs(k), name=f"{name} · k-space",
                                 metadata={"invimg": {"kspace": k, "mask": sc.mask, "coil_maps": sc.coil_maps}})
        w.kspace.reset_choices()
        w.kspace.value = layer
        w.maps.value = "simulated (true)"
        w.method.value = "adjoint"
        n_layers, before = len(viewer.layers), len(errors)
        task = w.reconstruct()
        if task is not None:
            qtbot.waitUntil(lambda: task.done, timeout=60_000)
        assert len(errors) == before + 1 and message in errors[-1], errors
        assert len(viewer.layers) == n_layers
    image = viewer.add_image(np.full((32, 32), np.nan, np.float32), name="broken")
    w.source.reset_choices()
    w.source.value = image
    assert w.simulate() is None and "NaN" in errors[-1] and "broken" in errors[-1]
