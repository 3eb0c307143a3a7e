import numpy as np
import pytest
import torch

import napari_invimg as ni
from napari_invimg.errors import Cancelled
from napari_invimg.nets.training import denoise_image, train_denoiser
from napari_invimg.priors.learned import LearnedDenoiser


def _noisy(shape=(64, 64), sigma=0.1, seed=3):
    clean = ni.datasets.fluorescence(shape, seed=seed)
    return clean, (clean + sigma * np.random.default_rng(0).standard_normal(shape)).astype(np.float32)


def _apply(den, image, sigma):
    with torch.no_grad():
        return den(torch.from_numpy(image), sigma).numpy()


def test_self_supervised_from_scratch_reduces_loss_and_noise():
    clean, noisy = _noisy()
    den = train_denoiser(noisy=noisy, sigma=0.1, steps=25, start="scratch", batch_size=8, normalize=False, seed=0)
    losses = den.metadata["losses"]
    assert len(losses) == 25
    assert np.mean(losses[-8:]) < 0.9 * np.mean(losses[:8])
    assert ni.metrics.psnr(_apply(den, noisy, 0.1), clean) > ni.metrics.psnr(noisy, clean) + 1


def test_self_supervised_fine_tune_improves_psnr():
    clean, noisy = _noisy()
    den = train_denoiser(noisy=noisy, steps=10, patch=32, batch_size=4, normalize=False, seed=0)
    assert abs(den.metadata["sigma"] - 0.1) < 0.03  # estimated from the measurement
    assert ni.metrics.psnr(_apply(den, noisy, 0.1), clean) > ni.metrics.psnr(noisy, clean) + 4


def test_supervised_save_load_round_trip(tmp_path):
    clean, noisy = _noisy()
    path = tmp_path / "mine.pt"
    calls = []
    den = train_denoiser(clean=[clean, clean[None]], steps=3, patch=32, batch_size=2, seed=1, save=path,
                         progress=lambda i, n, pv: calls.append((i, n, pv is not None)))
    assert calls[-1] == (3, 3, True)
    loaded = LearnedDenoiser(weights=path)
    assert loaded.metadata["mode"] == "supervised"
    a, b = _apply(den, noisy, 0.1), _apply(loaded, noisy, 0.1)
    assert np.abs(a - b).max() < 5e-3  # fp16 storage


def test_same_seed_same_weights():
    _, noisy = _noisy((32, 32))
    outs = [_apply(train_denoiser(noisy=noisy, sigma=0.1, steps=2, patch=16, batch_size=2, seed=7), noisy, 0.1)
            for _ in range(2)]
    assert np.array_equal(outs[0], outs[1])


def test_cancel_keeps_partial_model():
    _, noisy = _noisy((32, 32))
    with pytest.raises(Cancelled) as info:
        train_denoiser(noisy=noisy, sigma=0.1, steps=50, patch=16, batch_size=2, progress=lambda i, n, pv: i < 2)
    assert isinstance(info.value.partial, LearnedDenoiser)
    assert info.value.partial.metadata["cancelled"]


def test_bad_input():
    clean, noisy = _noisy((32, 32))
    with pytest.raises(ValueError, match="either clean"):
        train_denoiser(clean=clean, noisy=noisy)
    with pytest.raises(ValueError, match="either clean"):
        train_denoiser()
    with pytest.raises(ValueError, match="2D"):
        train_denoiser(clean=np.zeros((2, 2, 8, 8)))
    with pytest.raises(ValueError, match="does not exist"):
        train_denoiser(noisy=noisy, save="/nonexistent/dir/w.pt")


def test_stack_training_and_denoise_image_in_data_units():
    """A 3D stack in camera units (offset 100, scale 1000): trained slice by slice, denoised back in its units."""
    clean = np.stack([ni.datasets.fluorescence((32, 32), seed=s) for s in (8, 9)])
    noisy = (clean + 0.1 * np.random.default_rng(2).standard_normal(clean.shape)).astype(np.float32)
    stack = 100 + 1000 * noisy
    den = train_denoiser(noisy=stack, steps=3, patch=16, batch_size=4, seed=0)
    out = denoise_image(stack, den)
    assert out.shape == stack.shape
    assert ni.metrics.psnr((out - 100) / 1000, clean) > ni.metrics.psnr(noisy, clean) + 3
    with pytest.raises(ValueError, match="2D image or 3D stack"):
        denoise_image(np.zeros((2, 2, 8, 8)))


def test_denoise_image_self_ensemble_by_default_and_leaves_the_denoiser_alone():
    from napari_invimg.priors import get_denoiser
    from napari_invimg.priors.denoisers import dihedral_mean

    clean = ni.datasets.fluorescence((40, 48), seed=3)
    noisy = (clean + 0.1 * np.random.default_rng(4).standard_normal(clean.shape)).astype(np.float32)
    den = get_denoiser("drunet")
    plain = denoise_image(noisy, den, sigma=0.1, normalize=False, self_ensemble=False)
    plus = denoise_image(noisy, den, sigma=0.1, normalize=False)
    assert not den.self_ensemble  # the caller's denoiser is not changed
    with torch.no_grad():
        t = torch.from_numpy(noisy)
        assert np.allclose(plain, den(t, 0.1).numpy(), atol=1e-6)
        assert np.allclose(plus, dihedral_mean(lambda u: den(u, 0.1), t).numpy(), atol=1e-5)
    assert plus.dtype == plain.dtype and plus.shape == noisy.shape
    assert ni.metrics.psnr(plus, clean) > ni.metrics.psnr(plain, clean)
    with pytest.raises(TypeError, match="self_ensemble"):
        denoise_image(noisy, self_ensemble="yes")
