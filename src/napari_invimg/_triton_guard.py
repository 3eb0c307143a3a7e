"""Keep torch's triton from crashing a process that shows OpenGL (napari) — floor 1, no napari import.

The default PyPI torch wheel on Linux (the CUDA build) brings ``triton``. The first ``torch.optim``
optimizer imports ``torch._dynamo``, which imports triton, whose ``libtriton`` carries its own LLVM;
loaded after Mesa's OpenGL driver (which maps ``libLLVM``: llvmpipe, radeonsi, Xvfb) the two LLVMs
clash and the process dies with a segmentation fault. Reproduced in four lines with torch
2.14.1+cu130 (``napari.Viewer(); torch.optim.Adam([...])``, see ``benchmarks/RESULTS.md`` §12).

:func:`guard_triton` runs when ``napari_invimg`` is imported:

- triton not installed (the CPU wheel) or already imported: nothing to do;
- no Mesa/LLVM OpenGL driver in the process yet (a script, ``make demo``, a viewer not created yet):
  import triton now, so that it is loaded before the driver — both then coexist;
- a Mesa/LLVM driver already mapped (the plugin opened from a running napari): importing triton would
  crash, so triton is marked unavailable for this process (``sys.modules["triton"] = None``); torch then
  runs eagerly as on the CPU wheel. napari-invimg never compiles with triton, so nothing of ours is lost;
  ``torch.compile`` on a GPU in that same napari session is. Set ``NAPARI_INVIMG_KEEP_TRITON=1`` to skip
  the guard.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys

__all__ = ["guard_triton", "gl_driver_with_llvm_loaded", "last_result"]

log = logging.getLogger(__name__)

#: shared objects whose presence means an OpenGL driver that brings LLVM is loaded (Mesa)
_LLVM_GL_MARKERS = ("libLLVM", "libgallium", "_dri.so", "libGLX_mesa", "libEGL_mesa")


def gl_driver_with_llvm_loaded() -> bool:
    """Whether this process has mapped Mesa's OpenGL driver or an LLVM shared library (Linux; else ``False``)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any(marker in line for line in maps for marker in _LLVM_GL_MARKERS)
    except OSError:
        return False


#: what the last :func:`guard_triton` call did (for reports and tests)
last_result = ""


def guard_triton() -> str:
    """Make triton safe for a process that shows OpenGL; returns what was done (``"absent"``,
    ``"already imported"``, ``"imported"``, ``"blocked"``, ``"skipped"``)."""
    global last_result
    last_result = _guard()
    return last_result


def _guard() -> str:
    if os.environ.get("NAPARI_INVIMG_KEEP_TRITON"):
        return "skipped"
    if "triton" in sys.modules:
        return "already imported" if sys.modules["triton"] is not None else "blocked"
    try:
        if importlib.util.find_spec("triton") is None:
            return "absent"
    except (ImportError, ValueError):
        return "absent"
    if sys.platform.startswith("linux") and gl_driver_with_llvm_loaded():
        sys.modules["triton"] = None  # import triton -> ImportError: torch runs without it
        log.info("napari-invimg: an OpenGL driver with LLVM is already loaded, so triton (whose own LLVM would "
                 "crash the process) is disabled for this session; torch runs eagerly.")
        return "blocked"
    try:
        import triton  # noqa: F401  (loads libtriton before any OpenGL driver)
    except Exception as exc:  # a broken triton: torch copes with its absence
        log.info("napari-invimg: triton failed to import (%s); torch runs without it.", exc)
        sys.modules["triton"] = None
        return "blocked"
    return "imported"
