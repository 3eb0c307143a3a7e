"""Name → class registries (methods, operators, regularizers, denoisers), with one duplicate-name rule.

A class registers itself when it is defined (``__init_subclass__`` calls :meth:`Registry.add`). Defining a
class again under a name already taken is an error unless it is the same class re-executed (same module and
qualified name: a module reloaded); ``lazy`` maps names to the module that defines them, imported on first
:meth:`Registry.get` (domain modules that load on first use).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping

__all__ = ["Registry", "import_submodules", "DOMAIN_MODULES", "domain_names"]

#: what the domain modules register when imported (on first use: ``napari_invimg.mri``, ``.blackhole``), so that
#: the registries list them without importing them; ``tests/test_registry.py`` checks it against the modules
DOMAIN_MODULES: dict[str, dict[str, tuple[str, ...]]] = {
    "napari_invimg.mri": {"method": ("cg_sense", "sparse_laplace"), "operator": ("MRIOperator", "CartesianMRI", "GatheredCartesianMRI",
                                                                  "NonCartesianMRI")},
    "napari_invimg.blackhole": {"method": ("clean", "gmrf_hmc", "rml"), "operator": ("Interferometer", "Closures")},
}


def domain_names(kind: str) -> dict[str, str]:
    """Name → domain module of the ``kind`` ("method", "operator") classes that load on first use."""
    return {name: module for module, kinds in DOMAIN_MODULES.items() for name in kinds.get(kind, ())}


def import_submodules(package: str) -> Callable[[], None]:
    """A ``discover`` callable that imports every public module of ``package`` (so that their classes register)."""

    def discover() -> None:
        pkg = importlib.import_module(package)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{package}.{mod.name}")

    return discover


class Registry:
    """Classes by name; ``kind`` names them in error messages ("method", "operator", ...)."""

    def __init__(self, kind: str, discover: Callable[[], None] | None = None,
                 lazy: Mapping[str, str] | None = None):
        self.kind = kind
        self._classes: dict[str, type] = {}
        self._discover = discover
        self.lazy = dict(lazy or {})

    def add(self, name: str, cls: type) -> None:
        """Register ``cls`` as ``name``; a different class under a taken name raises ``RuntimeError``."""
        old = self._classes.get(name)
        if old is not None and old is not cls and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise RuntimeError(f"Two {self.kind}s are registered as {name!r}: {old.__module__}.{old.__qualname__} and "
                               f"{cls.__module__}.{cls.__qualname__}.")
        self._classes[name] = cls

    def names(self) -> list[str]:
        """Every registered name, including those of modules not imported yet (``lazy``)."""
        if self._discover is not None:
            self._discover()
        return sorted(set(self._classes) | set(self.lazy))

    def loaded(self) -> dict[str, type]:
        """The classes registered so far (no import)."""
        return dict(self._classes)

    def get(self, name: str) -> type:
        """The class registered as ``name`` (importing its module if it loads lazily); ``ValueError`` if none."""
        if name not in self._classes and self._discover is not None:
            self._discover()
        if name not in self._classes and name in self.lazy:
            importlib.import_module(self.lazy[name])
        if name not in self._classes:
            raise ValueError(f"Unknown {self.kind} {name!r}; available: {', '.join(self.names())}.")
        return self._classes[name]
