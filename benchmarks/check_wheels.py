"""Does every hard dependency install from a wheel (no compiler) on CPython 3.11, 3.12 and 3.13?

For each requirement in ``pyproject.toml``'s ``[project] dependencies`` and each Python version, asks pip
which wheel it would install for Linux x86_64 with ``--only-binary=:all:`` and ``--no-deps``, and prints a
table of the wheel versions found (``-`` = no wheel: pip would have to build from source).

    python benchmarks/check_wheels.py                  # pip install --dry-run --report (wheel metadata only)
    python benchmarks/check_wheels.py --download       # pip download (fetches every wheel; large: torch)
    python benchmarks/check_wheels.py --extra psfmodels --python 3.11 3.12

The default mode resolves from the index's wheel metadata (PEP 658) without downloading the wheels; the
``--download`` mode runs exactly ``pip download --only-binary=:all: --python-version X --no-deps -d DIR PKG``.
Exit code 1 when some requirement has no wheel for some version.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def requirements(extra: str | None = None) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["optional-dependencies"][extra]) if extra else list(project["dependencies"])


def _strip_marker(req: str) -> str:
    return req.split(";")[0].strip()


def wheel_for(req: str, python: str, download: bool, platform: str | None) -> str:
    """The wheel file pip picks for ``req`` on CPython ``python`` (Linux x86_64), or ``-`` when none."""
    common = ["--only-binary=:all:", "--no-deps", "--python-version", python, "--implementation", "cp",
              "--quiet", "--disable-pip-version-check"]
    if platform:
        common += ["--platform", platform]
    with tempfile.TemporaryDirectory() as tmp:
        if download:
            cmd = [sys.executable, "-m", "pip", "download", *common, "-d", tmp, _strip_marker(req)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            files = [p.name for p in Path(tmp).iterdir() if p.suffix == ".whl"]
            return files[0] if done.returncode == 0 and files else "-"
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--target", str(Path(tmp) / "t"),
               "--report", str(report), *common, _strip_marker(req)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not report.exists():
            return "-"
        items = json.loads(report.read_text()).get("install", [])
        if not items:
            return "-"
        return items[0]["download_info"]["url"].rsplit("/", 1)[-1].split("#")[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", nargs="+", default=["3.11", "3.12", "3.13"])
    parser.add_argument("--download", action="store_true", help="really download the wheels (pip download)")
    parser.add_argument("--extra", help="check an optional-dependencies group instead of the hard dependencies")
    parser.add_argument("--platform", default=None,
                        help="pip platform tag (default: this machine's, i.e. Linux x86_64 here)")
    args = parser.parse_args(argv)
    reqs = requirements(args.extra)
    rows, missing = [], 0
    for req in reqs:
        found = [wheel_for(req, py, args.download, args.platform) for py in args.python]
        missing += sum(f == "-" for f in found)
        rows.append([_strip_marker(req), *found])
    header = ["requirement", *[f"cp{py.replace('.', '')}" for py in args.python]]

    def short(cell: str) -> str:  # "numpy-2.4.6-cp312-cp312-manylinux_2_27_x86_64.whl" -> "2.4.6 (cp312, manylinux_2_27)"
        if cell == "-" or not cell.endswith(".whl"):
            return cell
        parts = cell[:-4].split("-")
        plat = parts[-1].replace("_x86_64", "").replace(".manylinux", ",manylinux")
        return f"{parts[1]} ({parts[-2]}, {plat})"

    table = [header] + [[r[0], *map(short, r[1:])] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(table[0], widths)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for row in table[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
    print(f"\n{len(reqs)} requirements x {len(args.python)} Python versions: "
          f"{len(reqs) * len(args.python) - missing} with a wheel, {missing} without "
          f"({'pip download' if args.download else 'pip install --dry-run --report'}, --only-binary=:all:, --no-deps).")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
