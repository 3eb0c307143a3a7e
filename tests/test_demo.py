"""The headless demo (``make demo`` without a display) writes its PNGs, improves on the measurement and
does not import napari."""

from __future__ import annotations

import subprocess
import sys


def test_headless_demo_writes_pngs_and_beats_the_measurement(tmp_path):
    code = (
        "import sys, pathlib, napari_invimg.demo as d; "
        f"r = d.run_headless(pathlib.Path({str(tmp_path)!r}), size=96); "
        "print('BETTER', r['psnr_richardson_lucy'] > r['psnr_measurement']); "
        "print('NAPARI', 'napari' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True).stdout
    assert "PSNR" in out and "BETTER True" in out and "NAPARI False" in out
    assert {"measurement.png", "mean.png", "residual.png"} <= {p.name for p in tmp_path.glob("*.png")}
