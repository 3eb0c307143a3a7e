"""The registries (one duplicate-name rule), lazy domain modules and the import graph (issue #17)."""

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_invimg._registry import DOMAIN_MODULES, Registry
from napari_invimg.methods import registry
from napari_invimg.operators.base import operator_types

ROOT = Path(__file__).resolve().parents[1]


def test_import_graph_has_no_cycle_and_no_upward_import():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        check_imports = importlib.import_module("check_imports")
    finally:
        sys.path.pop(0)
    cycles, upward = check_imports.check(ROOT / "src")
    assert cycles == [] and upward == []


def test_the_checker_finds_a_cycle_and_an_upward_import(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        check_imports = importlib.import_module("check_imports")
    finally:
        sys.path.pop(0)
    pkg = tmp_path / "napari_invimg"
    (pkg / "priors").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "priors" / "__init__.py").write_text("")
    (pkg / "priors" / "a.py").write_text("from .b import x\n")
    (pkg / "priors" / "b.py").write_text("def f():\n    from . import a\n    from ..api import reconstruct\n")
    (pkg / "api.py").write_text("")
    cycles, upward = check_imports.check(tmp_path)
    assert cycles == [["napari_invimg.priors.a", "napari_invimg.priors.b"]]
    assert upward == [("napari_invimg.priors.b", "napari_invimg.api")]


def test_one_duplicate_name_rule():
    reg = Registry("widget")
    first = type("First", (), {})
    reg.add("x", first)
    reg.add("x", first)  # the same class again: fine
    with pytest.raises(RuntimeError, match="Two widgets are registered as 'x'"):
        reg.add("x", type("Second", (), {}))
    with pytest.raises(ValueError, match="Unknown widget 'y'; available: x"):
        reg.get("y")


def test_the_domain_table_matches_what_the_domain_modules_register():
    for module, kinds in DOMAIN_MODULES.items():
        importlib.import_module(module)
        methods = {n for n in registry.available() if registry.get(n).__module__.startswith(module)}
        operators = {n for n, c in operator_types().items() if c.__module__.startswith(module)}
        assert methods == set(kinds["method"]) and operators == set(kinds["operator"])


def test_domain_modules_load_on_first_use_and_their_methods_are_listed():
    code = ("import sys, napari_invimg as ni; "
            "assert 'napari_invimg.mri' not in sys.modules and 'napari_invimg.blackhole' not in sys.modules; "
            "assert 'scipy' not in sys.modules, 'scipy loaded with the package'; "
            "assert {'cg_sense', 'rml', 'clean'} <= set(ni.methods()); "
            "assert 'napari_invimg.mri' not in sys.modules; "
            "assert ni.method_info('cg_sense')['domain'] == 'mri' and 'napari_invimg.mri' in sys.modules; "
            "assert ni.mri.CartesianMRI and ni.blackhole.Interferometer and ni.psf.gaussian")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")})
    assert done.returncode == 0, done.stderr


def test_methods_for_an_operator_class_name_is_the_list_for_an_operator():
    import napari_invimg as ni

    blur = ni.operators.Blur(np.ones((3, 3), np.float32), (16, 16))
    assert ni.api.methods_for("Blur") == ni.methods(blur) and "wiener" in ni.methods(blur)
    assert "wiener" not in ni.api.methods_for("CartesianMRI") and "cg_sense" in ni.api.methods_for("CartesianMRI")
    with pytest.raises(ValueError, match="Unknown operator type 'Nope'"):
        ni.api.methods_for("Nope")


def test_a_parameter_names_the_operators_it_acts_on():
    """MRI coil compression is described as acting on the MRI operators only; an unrestricted parameter on all."""
    described = {p["name"]: p for p in registry.info("tv")["parameters"]}
    assert set(described["coil_energy"]["operators"]) >= {"CartesianMRI", "NonCartesianMRI"}
    assert described["lam"]["operators"] is None
    restricted = registry.Param("x", float, 1.0, operators=("CartesianMRI",))
    assert restricted.applies_to("CartesianMRI") and not restricted.applies_to("Blur")
    assert registry.Param("y", float, 1.0).applies_to("Blur")


def test_a_parameter_given_for_an_operator_it_does_not_act_on_is_said_in_info_and_a_warning():
    """The API accepts coil compression on a deconvolution (a recipe may carry it) but does not change anything with
    it: a value other than the default is recorded in ``info["ignored_params"]`` with a warning; at its default
    nothing is said. ``applies_to`` also takes an operator, or a class, whose base class is named."""
    import warnings

    import napari_invimg as ni

    y = ni.datasets.fluorescence((16, 16), seed=0)
    A = ni.operators.Blur(ni.psf.gaussian((5, 5), 1.0), y.shape)
    noise = ni.noise.Gaussian(0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing said at the default
        plain = ni.reconstruct(y, A, "tv", noise, iterations=3)
    assert "ignored_params" not in plain.info
    with pytest.warns(UserWarning, match="coil_energy.*does not act on Blur"):
        given = ni.reconstruct(y, A, "tv", noise, iterations=3, coil_energy=0.7)
    assert set(given.info["ignored_params"]) == {"coil_energy"}
    assert "CartesianMRI" in given.info["ignored_params"]["coil_energy"]
    np.testing.assert_array_equal(given.mean, plain.mean)  # ignored indeed

    class MyBlur(ni.operators.Blur):
        pass

    restricted = registry.Param("x", float, 1.0, operators=("Blur",))
    assert restricted.applies_to(MyBlur) and restricted.applies_to(A) and not restricted.applies_to("MyBlur")
    assert not restricted.applies_to(ni.operators.Identity((4, 4)))
    assert registry.get("tv").ignored_params(A, {"coil_energy": 0.7, "lam": 2.0}) == {
        "coil_energy": given.info["ignored_params"]["coil_energy"]}


def test_a_boolean_parameter_refuses_words_it_does_not_know():
    """'yes'/'no', 'true'/'false', 'on'/'off', '1'/'0' (any case) and 0/1 are read as booleans; a misspelt word or
    another number is refused (it was read as False, or True for any non-zero number, silently)."""
    p = registry.Param("positive", bool, True)
    for value, expected in (("Yes", True), ("off", False), ("FALSE", False), ("1", True), (0, False), (1.0, True),
                            (True, True), (np.bool_(False), False)):
        assert p.coerce(value) is expected, value
    for value in ("flase", "", "maybe", 2, float("nan"), 0.5):
        with pytest.raises(ValueError, match="'positive' must be"):
            p.coerce(value)
