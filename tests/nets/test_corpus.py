import numpy as np
import pytest

from napari_invimg.nets import corpus


def test_procedural_images_are_seeded_and_in_range():
    for make in (corpus.dead_leaves, corpus.cells):
        a, b, c = make((48, 64), seed=3), make((48, 64), seed=3), make((48, 64), seed=4)
        assert a.shape == (48, 64) and a.dtype == np.float32
        assert np.array_equal(a, b) and not np.array_equal(a, c)
        assert 0 <= a.min() and a.max() <= 1 and a.std() > 0.01


def test_heldout_list_never_in_training():
    assert not set(corpus.HELDOUT_NATURAL) & set(corpus.TRAINING_NATURAL)
    held = corpus.heldout_images(32)
    assert {"camera", "moon", "coins"} <= set(held) and all(im.shape == (32, 32) for im in held.values())
    with pytest.raises(ValueError, match="held-out"):
        corpus.training_images(procedural=4, fluorescence=0, seed=10)


def test_training_images_by_source():
    data = corpus.training_images(procedural=4, fluorescence=1, shape=(32, 32))
    assert [len(data[k]) for k in ("dead_leaves", "cells", "fluorescence")] == [3, 1, 1]
    assert len(data["natural"]) == len(corpus.TRAINING_NATURAL)
