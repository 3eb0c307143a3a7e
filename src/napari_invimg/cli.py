"""The command line (floor 4): replay saved recipes on files, folders and glob patterns.

    napari-invimg run recipe.json input.ome.tif -o output.ome.zarr
    napari-invimg run recipe.json "data/*.tif" -o results/
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
import warnings
from pathlib import Path
from typing import Any

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_DESCRIPTION = """\
Replay a reconstruction recipe on image files.

A recipe is a JSON file that holds everything needed to repeat a reconstruction: the forward operator
(e.g. a Blur with its PSF as inline array data), the noise model (or a note that it was estimated from
the data, in which case it is estimated again on each input), the method and all its parameters, the
seed, and the napari-invimg version that wrote it. Save one from Python with
ni.io.save_recipe(rec, "recipe.json") or from napari with the "Save recipe" action on a result layer.
Replaying a recipe on the data it was made from gives the same result as the original run.

Inputs are TIFF / OME-TIFF / OME-Zarr files, folders (every image inside) or glob patterns. Images with
more axes than the recipe's operator (time-lapses, channels) are reconstructed frame by frame; files
larger than memory are read lazily and processed tile by tile. Outputs keep the input's pixel sizes.
An output appears under its name only when it is complete.

An output is never written over an input (even with --overwrite), an output name must end in a format
napari-invimg writes (.ome.zarr, .zarr, .ome.tif, .tif; end a folder name with '/'), and --overwrite
replaces only a file or store of the same kind (a TIFF by a TIFF, an OME-Zarr written by napari-invimg
by an OME-Zarr): nothing else is ever deleted.

Exit codes: 0 every input done; 1 some inputs failed (see the summary); 2 bad usage (an output that is
an input, an output suffix we do not write, no inputs) or a bad recipe.
"""


class _Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, label: str, stream=None, width: int = 30):
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.last = -1.0

    def __call__(self, step: int, total: int, preview=None) -> None:
        frac = step / total if total else 1.0
        now = time.monotonic()
        if now - self.last < 0.2 and step < total:
            return None
        self.last = now
        filled = int(round(frac * self.width))
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {step}/{total}")
        self.stream.flush()
        return None

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _expand(inputs: list[str]) -> list[Path]:
    from .io import SUFFIXES

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if any(ch in item for ch in "*?["):
            files.extend(Path(m) for m in sorted(glob.glob(item)))
        elif p.is_dir() and not p.name.lower().endswith(".zarr"):
            files.extend(sorted(c for c in p.iterdir() if c.name.lower().endswith(SUFFIXES)))
        else:
            files.append(p)
    seen, out = set(), []
    for f in files:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            out.append(f)
    return out


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _outputs(files: list[Path], output: str | None, fmt: str) -> list[Path]:
    """The output path of each input; a :class:`ValueError` (exit code 2) for an output name whose suffix
    is not a format we write, an output that is one of the inputs, or two inputs with the same output."""
    from .io import SUFFIXES

    if output is not None and output.lower().rstrip("/").endswith(SUFFIXES) and not output.endswith(("/", "\\")):
        if len(files) != 1:
            raise ValueError(f"{len(files)} inputs need an output folder, not the file name {output}.")
        outs = [Path(output)]
    else:
        folder = Path(output) if output is not None else None
        if folder is not None and not output.endswith(("/", "\\")) and not folder.is_dir():
            if folder.exists():
                raise ValueError(f"-o {output}: a file of a format napari-invimg does not write; outputs are "
                                 f"{', '.join(SUFFIXES)} files or a folder.")
            if folder.suffix:
                raise ValueError(f"-o {output}: {folder.suffix!r} is not a format napari-invimg writes "
                                 f"({', '.join(SUFFIXES)}); to write into a new folder, end the name with '/'.")
        outs = [(folder or f.parent) / f"{_stem(f)}{'' if folder else '_invimg'}.{fmt}" for f in files]
    inputs = {f.resolve(): f for f in files}
    seen: dict[Path, Path] = {}
    for src, dst in zip(files, outs):
        key = dst.resolve()
        if key in inputs:
            raise ValueError(f"The output {dst} is the input {inputs[key]}; napari-invimg never writes over its "
                             f"input (even with --overwrite). Choose another output name.")
        if key in seen:
            raise ValueError(f"The inputs {seen[key]} and {src} would both be written to {dst}; give an output "
                             f"folder with --format, or run them separately.")
        seen[key] = src
    return outs


def _recipe_of(rec) -> dict[str, Any]:
    """``{"invimg": recipe}`` for a result's file (TIFF outputs keep it in the OME-XML or ImageJ Info), or ``{}``."""
    from .io.recipe import recipe_from, to_jsonable

    try:
        return {"invimg": to_jsonable(recipe_from(rec))}
    except ValueError:
        return {}


def _run_one(recipe: dict[str, Any], src: Path, dst: Path, quiet: bool, pilot: str | None = None) -> dict[str, Any]:
    import numpy as np
    import psutil

    from . import io
    from .io.ome_zarr import write_zarr
    from ._replay import recipe_ndim, replay

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        img = io.imread(src)
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    data = img.data
    small = int(np.prod(data.shape)) * 4 < 0.25 * psutil.virtual_memory().available
    if img.lazy and small:
        data = np.asarray(data)
    nd = recipe_ndim(recipe["operator"])
    if data.ndim > img.spatial_ndim and nd == img.spatial_ndim and data.ndim - nd > 2:
        raise ValueError(f"{src.name} has axes {img.axes}; at most time and channel may lead the image.")
    bar = None if quiet else _Progress(src.name)
    try:
        if type(data).__module__.startswith("dask"):
            to_zarr = dst.name.lower().endswith(".zarr")
            store = dst if to_zarr else dst.with_name(f".{dst.name}.tiles.zarr")
            rec = replay(recipe, data, progress=bar, output=store, pixel_size_um=img.pixel_size_um, axes=img.axes,
                         pilot=pilot)
            if not to_zarr:
                try:
                    meta = {k: img.metadata[k] for k in ("na", "wavelength_um", "immersion_index") if k in img.metadata}
                    io.imwrite(dst, rec.mean, pixel_size_um=img.pixel_size_um, axes=img.axes,
                               metadata={**meta, **_recipe_of(rec)})
                finally:
                    import shutil

                    shutil.rmtree(store, ignore_errors=True)
        else:
            rec = replay(recipe, data, progress=bar)
            meta = {k: img.metadata[k] for k in ("na", "wavelength_um", "immersion_index") if k in img.metadata}
            if dst.name.lower().endswith(".zarr"):
                from .io.recipe import recipe_from, to_jsonable

                write_zarr(dst, rec.mean.astype(np.float32), img.pixel_size_um, axes=img.axes,
                           attrs={"invimg": to_jsonable(recipe_from(rec))})
            else:
                io.imwrite(dst, rec.mean.astype(np.float32), pixel_size_um=img.pixel_size_um, axes=img.axes,
                           metadata={**meta, **_recipe_of(rec)})
    finally:
        if bar is not None:
            bar.close()
    return {"shape": "×".join(map(str, data.shape)), "seconds": time.perf_counter() - t0, "notes": notes}


def _table(rows: list[dict[str, Any]]) -> str:
    cols = ("input", "output", "shape", "seconds", "status")
    cells = [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(out)


def _check_method(recipe: dict[str, Any]) -> None:
    """A :class:`ValueError` for a recipe whose method is unknown or whose parameters that method does not take
    (or of the wrong type), before any input is read: a recipe fault is a usage error (exit code 2), not each file's."""
    from .methods.registry import get

    get(recipe["method"]).validate(recipe.get("params", {}))


def _cmd_run(args: argparse.Namespace) -> int:
    from .io import load_recipe

    try:
        recipe = load_recipe(args.recipe)
        _check_method(recipe)
    except (ValueError, OSError) as exc:
        print(f"napari-invimg: bad recipe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    files = _expand(args.inputs)
    if not files:
        print("napari-invimg: no input files matched.", file=sys.stderr)
        return EXIT_USAGE
    try:
        outputs = _outputs(files, args.output, args.format)
    except ValueError as exc:
        print(f"napari-invimg: {exc}", file=sys.stderr)
        return EXIT_USAGE
    rows, failed = [], 0
    for src, dst in zip(files, outputs):
        row: dict[str, Any] = {"input": str(src), "output": str(dst)}
        if dst.exists() and not args.overwrite:
            row["status"] = "skipped: output exists (use --overwrite)"
            failed += 1
        else:
            try:
                res = _run_one(recipe, src, dst, args.quiet, "bounded" if args.bounded_memory else None)
                row.update(shape=res["shape"], seconds=f"{res['seconds']:.1f}",
                           status="ok" + (f" ({'; '.join(res['notes'])})" if res["notes"] else ""))
            except KeyboardInterrupt:
                row["status"] = "interrupted"
                rows.append(row)
                print(_table(rows))
                return EXIT_FAILED
            except Exception as exc:  # one bad file must not stop the batch; the summary says why
                row["status"] = f"failed: {type(exc).__name__}: {exc}"
                failed += 1
        rows.append(row)
    print(_table(rows))
    return EXIT_FAILED if failed else EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-invimg", description=_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="replay a recipe on files, folders or glob patterns",
                         description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("recipe", help="recipe JSON (ni.io.save_recipe, or 'Save recipe' in napari)")
    run.add_argument("inputs", nargs="+", help="image files (.tif, .ome.tif, .zarr), folders or glob patterns")
    run.add_argument("-o", "--output", help="output file (one input) or folder; default: next to each input, "
                                            "named <input>_invimg.<format>")
    run.add_argument("--format", default="ome.zarr", choices=("ome.zarr", "ome.tif", "tif"),
                     help="output format when -o is a folder (default ome.zarr)")
    run.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.add_argument("--bounded-memory", action="store_true",
                     help="files processed tile by tile never hold more memory than one untiled frame (the global "
                          "choices then come from a central region; default: from the whole frame when it fits)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``napari-invimg`` console script; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    return _cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
