"""Recipes: everything needed to replay a reconstruction (operator spec, noise, method, parameters, seed,
version) as one JSON file. Arrays (a PSF, a mask) are stored inline as base64-encoded ``.npy`` bytes.
"""

from __future__ import annotations

import base64
import io as _io
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ._image import atomic_output

__all__ = ["save_recipe", "load_recipe", "recipe_from", "to_jsonable", "from_jsonable", "RECIPE_FORMAT",
           "RECIPE_VERSION"]

RECIPE_FORMAT = "napari-invimg recipe"
#: version of the recipe layout; a reader refuses layouts newer than it knows
RECIPE_VERSION = 1
_KEYS = ("method", "params", "operator", "noise", "noise_source", "seed", "device", "tiling", "calibration")


def to_jsonable(value: Any) -> Any:
    """Plain JSON values from nested dicts/lists/tuples, numpy scalars and arrays (``{"__ndarray__": …}``)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        buf = _io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return {"__ndarray__": base64.b64encode(buf.getvalue()).decode("ascii")}
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        return to_jsonable(value.detach().cpu().numpy())
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def from_jsonable(value: Any) -> Any:
    """Inverse of :func:`to_jsonable`."""
    if isinstance(value, dict):
        if set(value) == {"__ndarray__"}:
            return np.load(_io.BytesIO(base64.b64decode(value["__ndarray__"])), allow_pickle=False)
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def recipe_from(source: Any) -> dict[str, Any]:
    """The recipe of a :class:`~napari_invimg.Reconstruction`, its ``info`` dict, or a layer's
    ``metadata`` (which holds it under ``"invimg"``)."""
    info = getattr(source, "info", source)
    if isinstance(info, dict) and "invimg" in info and "method" not in info:
        info = info["invimg"]
    if not isinstance(info, dict) or "method" not in info or "operator" not in info:
        raise ValueError("No reconstruction recipe found: give a Reconstruction, its info, or the metadata of a "
                         "layer made by napari-invimg (metadata['invimg']).")
    recipe = {"format": RECIPE_FORMAT, "recipe_version": RECIPE_VERSION,
              "package_version": info.get("version", __version__)}
    recipe.update({k: info[k] for k in _KEYS if k in info and info[k] is not None})
    return recipe


def save_recipe(source: Any, path: str | os.PathLike) -> Path:
    """Write the recipe of ``source`` (see :func:`recipe_from`) as JSON, atomically; an existing ``path`` is
    replaced only when it is a JSON file (a folder or another kind of file is left alone, with an error)."""
    recipe = to_jsonable(recipe_from(source))
    with atomic_output(path, kind="json") as tmp:
        Path(tmp).write_text(json.dumps(recipe, indent=1, ensure_ascii=False), encoding="utf-8")
    return Path(path)


def _version_tuple(v: str) -> tuple[int, ...]:
    """``"1.2.3rc1+local"`` -> ``(1, 2, 3)``: the release numbers a newer-version check compares."""
    release = re.match(r"\d+(\.\d+)*", v.strip())
    return tuple(int(p) for p in release.group(0).split(".")) if release else (0,)


def load_recipe(path_or_recipe: str | os.PathLike | dict) -> dict[str, Any]:
    """Read a recipe (a path to JSON, or an already parsed dict) and check it can be replayed here."""
    if isinstance(path_or_recipe, dict):
        raw = path_or_recipe
        where = "the recipe"
    else:
        where = str(path_or_recipe)
        try:
            raw = json.loads(Path(path_or_recipe).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"Recipe file {where} does not exist.") from None
        except IsADirectoryError:
            raise ValueError(f"Recipe {where} is a folder, not a JSON file.") from None
        except UnicodeDecodeError:
            raise ValueError(f"{where} is not a text (JSON) file; is it an image given in the recipe's place?") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where} is not valid JSON ({exc}).") from None
    if not isinstance(raw, dict) or raw.get("format") != RECIPE_FORMAT:
        raise ValueError(f"{where} is not a napari-invimg recipe (no 'format': {RECIPE_FORMAT!r}).")
    newer_package = not __version__.endswith("+source") and \
        _version_tuple(str(raw.get("package_version", "0"))) > _version_tuple(__version__)
    if int(raw.get("recipe_version", 0)) > RECIPE_VERSION or newer_package:
        raise ValueError(f"{where} was written by napari-invimg {raw.get('package_version')} (recipe layout "
                         f"{raw.get('recipe_version')}), newer than the installed {__version__}; upgrade napari-invimg.")
    missing = [k for k in ("method", "operator") if k not in raw]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}.")
    unknown = sorted(set(raw) - set(_KEYS) - {"format", "recipe_version", "package_version"})
    if unknown:
        warnings.warn(f"{where} has keys this napari-invimg does not know, ignored: {', '.join(unknown)} "
                      f"(known: {', '.join(_KEYS)}); a misspelt key keeps its default.", UserWarning, stacklevel=2)
    if not isinstance(raw["method"], str):
        raise ValueError(f"{where}: 'method' must be a method's name (a string), got {raw['method']!r}.")
    if not isinstance(raw.get("params", {}), dict):
        raise ValueError(f"{where}: 'params' must map parameter names to values, got {type(raw['params']).__name__}.")
    return from_jsonable(raw)
