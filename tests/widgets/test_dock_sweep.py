"""Every method each dock offers, run from that dock with the parameters it shows by default.

The API's tests run each method with the registry's defaults; a dock reads its parameters back from widgets
(text fields, spin boxes), where a default can be lost on the way (an empty ``weights`` field once became
``None``, so ``pnp_admm`` and ``red`` failed from a dock and not from the API). Here each dock's method list is
swept: the form's values must be the registry's defaults, and a run with them — only iteration, sample and
chain counts lowered so the run is quick — must end without an error, with a finite mean of the right shape and,
where the method returns one, a finite non-negative std.
"""

from __future__ import annotations

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg import blackhole, datasets, mri, operators, psf
from napari_invimg.api import method_info, methods_for
from napari_invimg.methods import registry
from napari_invimg.operators.noise import Gaussian, PoissonGaussian
from napari_invimg.widgets.blackhole import BlackHoleImagingWidget
from napari_invimg.widgets.kspace_reader import log_magnitude
from napari_invimg.widgets.mri import MRIWidget
from napari_invimg.widgets.reconstruct import ReconstructWidget
from napari_invimg.widgets.uvfits_reader import dirty_image_layers

pytestmark = pytest.mark.gui

#: methods a sweep with default parameters cannot run: they need trained weights files the package does not ship
NEEDS_WEIGHTS_FILE = {"care": "needs a CARE weights file (trained by the Train supervised dock)",
                      "unrolled": "needs an unrolled-network weights file (trained by the Train supervised dock)"}

#: the iteration, sample, chain and step counts lowered for speed (everything else stays at the value the dock shows)
FAST_COUNTS = {"iterations": 8, "n_samples": 3, "chains": 1, "warmup": 8, "cg_iterations": 5, "rounds": 1,
               "patience": 4, "window": 4, "max_leapfrog": 8, "posterior_iterations": 8}
#: the ensemble's members run the base method (dip) with its own schedule: lowered the same way
FAST_ENSEMBLE = {"n_samples": 2, "base_params": '{"iterations": 6}'}

SIZE = 32
BLUR = operators.Blur(psf.gaussian((9, 9), 1.5), (SIZE, SIZE))
BLUR_METHODS = methods_for(BLUR)
MRI_METHODS = methods_for(mri.CartesianMRI)
BH_METHODS = methods_for(blackhole.Interferometer)


def _params(case) -> list:
    """One pytest param per method; the ones in NEEDS_WEIGHTS_FILE skipped with their reason."""
    return [pytest.param(n, marks=pytest.mark.skip(reason=NEEDS_WEIGHTS_FILE[n])) if n in NEEDS_WEIGHTS_FILE
            else pytest.param(n) for n in case]


def _fast(name: str, shown: dict) -> dict:
    """``shown`` with the counts of FAST_COUNTS lowered (within the parameter's bounds)."""
    specs = {p.name: p for p in registry.get(name).params}
    out = dict(shown)
    for key, value in FAST_COUNTS.items():
        if key in specs:
            low = specs[key].low
            out[key] = max(value, int(low)) if low is not None else value
    if name == "ensemble":
        out.update(FAST_ENSEMBLE)
    return out


@pytest.fixture(scope="module")
def sweep_viewer():
    """One viewer for the module (a viewer per method would cost more than most runs); emptied after each test."""
    import napari

    viewer = napari.Viewer(show=False)
    yield viewer
    viewer.close()


@pytest.fixture
def clean_viewer(sweep_viewer):
    yield sweep_viewer
    sweep_viewer.window.remove_dock_widget("all")
    sweep_viewer.layers.clear()


def _check_result(viewer, base: str, method: str, shape: tuple[int, ...], errors: list[str], task) -> None:
    assert errors == [] and task.error is None, (method, errors, task.error)
    mean = viewer.layers[f"{base} mean"].data
    assert mean.shape == shape and np.isfinite(mean).all(), (method, mean.shape)
    if method_info(method)["returns_std"]:
        stds = [layer for layer in viewer.layers if layer.name.startswith(f"{base} std")]
        assert len(stds) == 1, (method, [layer.name for layer in viewer.layers])
        std = np.asarray(stds[0].data)
        assert std.shape == shape and np.isfinite(std).all() and (std >= 0).all(), method


def test_the_skip_list_is_exactly_the_methods_that_need_weights_files():
    """A method joins NEEDS_WEIGHTS_FILE only if it cannot run without a file: a new method is swept by default."""
    offered = set(BLUR_METHODS) | set(MRI_METHODS) | set(BH_METHODS)
    needs_file = {n for n in offered
                  if any(p.name == "weights" for p in registry.get(n).params)
                  and not any(p.name in ("denoiser", "iterations") for p in registry.get(n).params)}
    assert set(NEEDS_WEIGHTS_FILE) == needs_file == {"care", "unrolled"}


@pytest.mark.parametrize("name", sorted(set(BLUR_METHODS) | set(MRI_METHODS)))
def test_the_form_shows_the_registrys_defaults(name):
    """What a parameter form reads back untouched is what the API uses (the weights bug broke this)."""
    from napari_invimg.widgets._models import ParameterForm

    shown = ParameterForm(method_info(name)["parameters"]).values()
    defaults = {p.name: p.default for p in registry.get(name).params}
    assert shown == defaults
    assert registry.get(name).validate(shown) == registry.get(name).validate({})


def _measurement():
    x = datasets.fluorescence((SIZE, SIZE), seed=3)
    noise = PoissonGaussian(gain=0.01, sigma=0.01)
    y = noise.sample(BLUR.forward(x), seed=0).astype(np.float32)
    return y, {"invimg": {"operator": BLUR.spec(), "noise": noise.spec(), "seed": 0}}


def _run_with_shown_defaults(method_combo, form, start, name, qtbot, errors):
    """Select ``name`` in a dock, check the form shows the registry's defaults, lower only the counts, start the run
    with ``start()`` and wait for it to end."""
    assert name in method_combo.choices
    method_combo.value = name
    shown = form.values()
    assert registry.get(name).validate(shown) == registry.get(name).validate({})
    form.set_values(_fast(name, shown))
    task = start()
    assert task is not None, errors
    qtbot.waitUntil(lambda: task.done, timeout=120_000)
    return task


@pytest.mark.parametrize("name", _params(BLUR_METHODS))
def test_reconstruct_dock_runs_each_method_with_its_defaults(name, clean_viewer, qtbot, errors):
    viewer = clean_viewer
    y, meta = _measurement()
    layer = viewer.add_image(y, name="meas", scale=(0.1, 0.1), metadata=meta)
    widget = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.measurement.value = layer
    task = _run_with_shown_defaults(widget.method, widget.params, widget.run, name, qtbot, errors)
    _check_result(viewer, f"meas · {name}", name, (SIZE, SIZE), errors, task)


def _kspace_layer_kwargs():
    x = mri.shepp_logan((SIZE, SIZE))
    sc = mri.simulate_kspace(x, 4, kind="equispaced", acceleration=2, seed=0, snr_db=30.0)
    meta = {"kspace": sc.kspace, "coil_maps": sc.coil_maps, "mask": sc.mask, "sigma": sc.sigma,
            "operator": sc.operator.spec(), "noise": Gaussian(max(sc.sigma, 1e-12)).spec(), "source": "phantom"}
    return log_magnitude(sc.kspace), {"name": "phantom · k-space", "metadata": {"invimg": meta}}


@pytest.mark.parametrize("name", _params(MRI_METHODS))
def test_mri_dock_runs_each_method_with_its_defaults(name, clean_viewer, qtbot, errors):
    viewer = clean_viewer
    data, kwargs = _kspace_layer_kwargs()
    layer = viewer.add_image(data, **kwargs)
    widget = MRIWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.kspace.value is layer and widget.maps.value == "simulated (true)"
    task = _run_with_shown_defaults(widget.method, widget.form, widget.reconstruct, name, qtbot, errors)
    _check_result(viewer, f"{layer.name} · {name}", name, (SIZE, SIZE), errors, task)


@pytest.fixture(scope="module")
def observation():
    sky = ni.blackhole.models.get("ring", SIZE, 160.0)
    return ni.blackhole.simulate(sky, fov_uas=160.0, duration_hours=6.0, seed=1)


@pytest.mark.parametrize("name", _params(BH_METHODS))
def test_black_hole_dock_runs_each_method_with_its_defaults(name, clean_viewer, qtbot, errors, observation):
    """The imaging dock's form shows the method's parameters but 'data' (the data combo's): defaults, counts lowered."""
    viewer = clean_viewer
    for data, kwargs, kind in dirty_image_layers(observation, "ring", SIZE, 160.0):
        if kind == "image":
            viewer.add_image(data, **kwargs)
    widget = BlackHoleImagingWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.observation.value is not None and widget.npix.value == SIZE
    task = _run_with_shown_defaults(widget.method, widget.form, widget.run, name, qtbot, errors)
    _check_result(viewer, f"ring · {name}", name, (SIZE, SIZE), errors, task)
