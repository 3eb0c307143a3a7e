import numpy as np
import pytest

from napari_invimg.operators import CompressedSensing, Downsampling, Inpainting


@pytest.mark.parametrize("factor", [2.5, float("nan"), float("inf")])
def test_downsampling_refuses_a_non_integer_factor(factor):
    with pytest.raises(ValueError, match="positive integer"):
        Downsampling((16, 16), factor)


def test_downsampling_factor_type_and_divisibility():
    with pytest.raises(TypeError, match="positive integer"):
        Downsampling((16, 16), "2")
    with pytest.raises(ValueError, match="divisible"):
        Downsampling((15, 16), 2)
    assert Downsampling((16, 16), 2.0).out_shape == (8, 8)


@pytest.mark.parametrize("m", [1.5, float("nan"), 0, 0.0, -3, 65])
def test_compressed_sensing_refuses_bad_measurement_counts(m):
    with pytest.raises(ValueError, match="measurements"):
        CompressedSensing((8, 8), m)


def test_compressed_sensing_takes_numpy_fractions_and_is_seeded():
    assert CompressedSensing((8, 8), np.float32(0.5)).m == 32 == CompressedSensing((8, 8), 0.5).m
    with pytest.raises(TypeError):
        CompressedSensing((8, 8), "10")
    a, b = CompressedSensing((8, 8), 20, seed=3), CompressedSensing((8, 8), 20, seed=3)
    x = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    assert np.array_equal(a.forward(x), b.forward(x))


@pytest.mark.parametrize("mask", [np.zeros((8, 8)), np.full((8, 8), 0.5), np.full((8, 8), np.nan)])
def test_inpainting_refuses_empty_or_non_boolean_masks(mask):
    with pytest.raises(ValueError, match="mask"):
        Inpainting(mask)


@pytest.mark.parametrize("seed", [-1, 1.5, "a"])
def test_sampling_patterns_refuse_bad_seeds_with_our_message(seed):
    from napari_invimg.operators import random_mask
    with pytest.raises(ValueError, match="seed must be"):
        random_mask((8, 8), 0.5, seed)
    with pytest.raises(ValueError, match="seed must be"):
        CompressedSensing((8, 8), 10, seed=seed)


def test_a_fresh_compressed_sensing_seed_is_recorded_and_rebuilds_the_same_operator():
    a = CompressedSensing((8, 8), 20, seed=None)
    b = CompressedSensing((8, 8), 20, seed=a.seed)
    x = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    assert np.array_equal(a.forward(x), b.forward(x))
