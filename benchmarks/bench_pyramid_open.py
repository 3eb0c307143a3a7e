"""A large tiled result opens in napari as a multiscale layer (issue #20: "a 4 GiB tiled result opens in napari as a
multiscale layer and displays its lowest level in ≤ 2 s").

Writes a synthetic float32 OME-Zarr image (default 64×4096×4096 = 4 GiB in memory) the way a tiled reconstruction
writes its result (``io.ome_zarr.create_image``, chunk by chunk, then ``io.ome_zarr.write_pyramid``), then, in a
fresh process with a real napari viewer (Xvfb when there is no display): the time from ``viewer.open(path,
plugin="napari-invimg")`` to the first rendered canvas (``viewer.screenshot(canvas_only=True)``), which level it
drew, and the time until the view settled on the level napari chooses for the canvas; "cold" is the first open
in a fresh napari (the plugin, torch and dask imported on the way), "warm" a second open in the same viewer (as
after a tiled reconstruction in that session). The store is deleted at the
end unless ``--keep``.

Run: ``python benchmarks/bench_pyramid_open.py`` (``--shape 64x4096x4096 --chunks 64x256x256 --workdir /tmp``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _block(_zeros: np.ndarray, block_info=None) -> np.ndarray:
    """A smooth synthetic image with fine detail (a few cosines and a deterministic speckle) for one chunk."""
    loc = block_info[0]["array-location"]
    z, y, x = (np.arange(a, b, dtype=np.float32) for a, b in loc)
    img = (1.2 + np.sin(z[:, None, None] / 7.0) * np.cos(y[None, :, None] / 31.0) * np.sin(x[None, None, :] / 43.0)
           + 0.1 * np.cos((y[None, :, None] * 0.37 + x[None, None, :] * 0.61) * (1.0 + z[:, None, None] / 64.0)))
    return img.astype(np.float32)


def write(path: str, shape, chunks) -> dict:
    import dask.array as da

    from napari_invimg.io.ome_zarr import create_image, write_pyramid

    t = time.perf_counter()
    arr = create_image(path, shape, chunks, "f4", (0.3, 0.1, 0.1), "zyx", "mean")
    data = da.zeros(shape, chunks=chunks, dtype=np.float32).map_blocks(_block, dtype=np.float32)
    da.store(data, arr, lock=False)
    level0 = time.perf_counter() - t
    t = time.perf_counter()
    levels = write_pyramid(path)
    return {"level0_s": level0, "pyramid_s": time.perf_counter() - t, "levels": levels,
            "disk_gib": sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**30}


def _open_once(viewer, path: str) -> dict:
    from qtpy.QtWidgets import QApplication

    t = time.perf_counter()
    layers = viewer.open(path, plugin="napari-invimg")
    first = viewer.screenshot(canvas_only=True)
    first_s = time.perf_counter() - t
    layer = layers[0]
    first_level = int(layer.data_level)
    for _ in range(20):  # let napari pick the level for the canvas and draw it
        QApplication.processEvents()
        time.sleep(0.05)
    settled = viewer.screenshot(canvas_only=True)
    return {"multiscale": bool(layer.multiscale), "n_levels": len(layer.data),
            "level_shapes": [list(map(int, d.shape)) for d in layer.data],
            "first_draw_s": first_s, "first_level": first_level, "first_nonblank": bool(np.ptp(first[..., :3]) > 0),
            "settled_s": time.perf_counter() - t, "settled_level": int(layer.data_level),
            "settled_nonblank": bool(np.ptp(settled[..., :3]) > 0)}


def view(path: str) -> dict:
    """Open twice in one viewer: cold (the plugin, torch and dask not yet imported: a fresh napari) and warm (the
    layer removed and the file opened again, as after a tiled reconstruction in the same session)."""
    import napari

    viewer = napari.Viewer(show=True)
    try:
        viewer.screenshot(canvas_only=True)  # the empty canvas drawn once: its first-draw cost is not the layer's
        cold = _open_once(viewer, path)
        viewer.layers.clear()
        return {"cold": cold, "warm": _open_once(viewer, path)}
    finally:
        viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="64x4096x4096")
    parser.add_argument("--chunks", default="64x256x256")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--view", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.view:
        print(json.dumps(view(args.view)))
        return
    shape = tuple(int(v) for v in args.shape.split("x"))
    chunks = tuple(int(v) for v in args.chunks.split("x"))
    workdir = tempfile.mkdtemp(dir=args.workdir)
    path = os.path.join(workdir, "result.zarr")
    try:
        w = write(path, shape, chunks)
        env = dict(os.environ)
        cmd = [sys.executable, __file__, "--view", path]
        if not env.get("DISPLAY"):
            cmd = ["xvfb-run", "-a", "-s", "-screen 0 1366x768x24"] + cmd
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        v = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    gib = np.prod(shape) * 4 / 2**30
    print(f"# OME-Zarr pyramid opened in napari: {args.shape} float32 ({gib:.2f} GiB in memory, "
          f"{w['disk_gib']:.2f} GiB on disk), chunks {args.chunks}, load average {os.getloadavg()[0]:.1f}")
    print("| open | levels | level shapes | write level 0 s | write pyramid s | multiscale layer | first draw s | "
          "level drawn first | settled s | level settled |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for kind in ("cold", "warm"):
        o = v[kind]
        print(f"| {kind} | {o['n_levels']} | {', '.join('×'.join(map(str, s)) for s in o['level_shapes'])} | "
              f"{w['level0_s']:.1f} | {w['pyramid_s']:.1f} | {o['multiscale']} | {o['first_draw_s']:.2f} | "
              f"{o['first_level']}{' (lowest)' if o['first_level'] == o['n_levels'] - 1 else ''}"
              f"{'' if o['first_nonblank'] else ' blank'} | {o['settled_s']:.2f} | {o['settled_level']}"
              f"{'' if o['settled_nonblank'] else ' blank'} |")

if __name__ == "__main__":
    main()
