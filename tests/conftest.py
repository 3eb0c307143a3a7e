"""Test set-up shared by the whole suite: a display for the GUI tests and one torch thread.

Without a display, a private Xvfb server is started for the session when ``Xvfb`` is installed (napari's
canvas needs OpenGL, which Qt's ``offscreen`` platform does not give); otherwise Qt runs ``offscreen``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess

import pytest


def _start_xvfb() -> bool:
    exe = shutil.which("Xvfb")
    if exe is None:
        return False
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([exe, "-displayfd", str(write_fd), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()  # Xvfb writes its display number once it accepts connections
    if not number:
        proc.kill()
        return False
    def stop() -> None:
        proc.terminate()
        proc.wait(timeout=10)

    atexit.register(stop)
    os.environ["DISPLAY"] = f":{number}"
    return True


if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and not _start_xvfb():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Run every test on one torch thread: the suite's images are small, and one thread is both faster and
    steadier than two on a shared 2-core machine (torch's second thread often waits for a busy core)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
