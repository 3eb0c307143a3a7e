"""A fresh process with the viewer created first, then the docks: no crash (torch's triton vs. OpenGL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

SCRIPT = Path(__file__).with_name("fresh_viewer_session.py")


def test_viewer_first_then_black_hole_train_and_dip_exit_cleanly():
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    for step in ("black hole rml: ok", "train prior: ok", "reconstruct dip: ok"):
        assert step in proc.stdout
