"""``python -m napari_invimg``: the ``napari-invimg`` command line (:mod:`napari_invimg.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
