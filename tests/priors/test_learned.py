import numpy as np
import pytest
import torch

import napari_invimg as ni
from napari_invimg.nets.training import heldout_set
from napari_invimg.priors import denoiser_names, get_denoiser, score
from napari_invimg.priors.learned import LearnedDenoiser



@pytest.fixture(scope="module")
def den():
    return get_denoiser("drunet")


def test_registered_and_offline(den):
    assert "drunet" in denoiser_names() and isinstance(den, LearnedDenoiser)
    meta = den.metadata
    assert meta["sigma_range"][0] <= 0.002 and meta["sigma_range"][1] >= 1.0
    assert "command" in meta and "heldout_psnr" in meta


def test_shipped_weights_denoise_heldout(den):
    (s, clean, noisy), = heldout_set([0.1], seeds=[0], shape=(128, 128))
    with torch.no_grad():
        out = den(torch.from_numpy(noisy), s).numpy()
    assert ni.metrics.psnr(noisy, clean) < 20.5
    assert ni.metrics.psnr(out, clean) > 29.0


def test_odd_size_and_batch_sigma(den):
    (_, clean, _), = heldout_set([0.1], seeds=[1], shape=(45, 67))
    rng = np.random.default_rng(0)
    sig = torch.tensor([0.05, 0.2])
    x = torch.from_numpy(clean)[None] + sig[:, None, None] * torch.from_numpy(rng.standard_normal((2, 45, 67)).astype(np.float32))
    out = den(x, sig)
    assert out.shape == x.shape
    for k in range(2):
        assert ni.metrics.psnr(out[k].numpy(), clean) > ni.metrics.psnr(x[k].numpy(), clean) + 3
        assert torch.allclose(out[k], den(x[k], float(sig[k])), atol=1e-5)


def test_stack_slice_by_slice(den):
    x = torch.rand(3, 24, 20)
    out = den(x, 0.1, ndim=3)
    assert out.shape == x.shape
    assert torch.allclose(out[1], den(x[1], 0.1, ndim=2), atol=1e-5)
    stacks = den(torch.stack([x, x]), torch.tensor([0.1, 0.3]), ndim=3)
    assert torch.allclose(stacks[0], out, atol=1e-5)


def test_sigma_clamped_and_score(den):
    x = torch.rand(16, 16)
    assert torch.allclose(den(x, 50.0), den(x, den.sigma_range[1]))
    s = score(den, x, 0.1)
    assert torch.isfinite(s).all() and s.shape == x.shape


def test_gradient_through_denoiser_when_asked(den):
    x = torch.rand(16, 16, requires_grad=True)
    den(x, 0.2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with torch.no_grad():
        assert not den(torch.rand(8, 8), 0.1).requires_grad


def test_complex_and_dtype(den):
    z = torch.complex(torch.rand(16, 16), torch.rand(16, 16))
    assert den(z, 0.1).is_complex()
    assert den(torch.rand(16, 16, dtype=torch.float64), 0.1).dtype == torch.float64


def test_bad_input(den, tmp_path):
    with pytest.raises(ValueError, match="ndim"):
        den(torch.rand(4, 4, 4, 4), 0.1, ndim=4)
    with pytest.raises(ValueError, match="positive"):
        den(torch.rand(8, 8), -1.0)
    with pytest.raises(ValueError, match="No denoiser weights"):
        LearnedDenoiser(weights=tmp_path / "missing.pt")(torch.rand(8, 8), 0.1)


def test_save_copy_round_trip(den, tmp_path):
    path = den.save(tmp_path / "copy.pt")
    copy = LearnedDenoiser(weights=path)
    x = torch.rand(20, 20)
    assert torch.allclose(copy(x, 0.1), den(x, 0.1), atol=1e-6)
    assert copy.metadata["command"] == den.metadata["command"]


def test_mri_weights_are_shipped_with_complete_metadata():
    """``denoiser_mri.pt``: small, fine-tuned from the shipped network on MR-like images only (never the benchmark's
    test images), and better than the general weights on a held-out ellipse phantom at MRI noise levels."""
    from importlib.resources import as_file

    from napari_invimg import mri
    from napari_invimg.nets.drunet import shipped_weights

    with as_file(shipped_weights("denoiser_mri.pt")) as path:
        assert path.stat().st_size < 20e6
    den = get_denoiser("drunet_mri")
    assert "drunet_mri" in denoiser_names() and isinstance(den, LearnedDenoiser)
    meta = den.metadata
    for key in ("command", "seed", "steps", "hardware", "data", "heldout", "heldout_psnr_table", "init", "ood_reference",
                "train_seconds"):
        assert meta.get(key) not in (None, "", {}), key
    assert meta["corpus"] == "mri" and "--corpus mri" in meta["command"]
    assert meta["sigma_range"][0] <= 0.002 and 0.05 <= meta["sigma_range"][1] <= 0.2
    assert "Shepp-Logan" in meta["heldout"] and "seeds 0" in meta["heldout"]
    assert "flat" in meta["data"] and "--flat-ellipses" in meta["command"]  # piecewise-constant images (RESULTS §6)
    clean = np.ascontiguousarray(mri.random_ellipses((256, 256), seed=1_000_003)[64:192, 64:192])
    noisy = clean + 0.01 * np.random.default_rng(0).standard_normal(clean.shape).astype(np.float32)
    with torch.no_grad():
        tuned = ni.metrics.psnr(den(torch.from_numpy(noisy), 0.01).numpy(), clean)
        general = ni.metrics.psnr(get_denoiser("drunet")(torch.from_numpy(noisy), 0.01).numpy(), clean)
    assert tuned > general + 1.0 and tuned > ni.metrics.psnr(noisy, clean) + 3.0


def test_dihedral_mean_symmetrizes():
    from napari_invimg.priors.denoisers import dihedral, dihedral_mean

    x = torch.arange(30.0).reshape(5, 6)
    assert torch.equal(dihedral_mean(lambda t: 3 * t, x), 3 * x)  # an equivariant map is unchanged
    ramp = torch.arange(5.0)[:, None] * torch.ones(5)  # a map that adds a direction: averaged away
    out = dihedral_mean(lambda t: t + ramp, torch.zeros(5, 5))
    assert torch.allclose(out, torch.full((5, 5), 2.0))
    for k in range(8):  # the mean is exactly equivariant, also for a map that is not
        f = lambda t: t ** 2 + ramp[: t.shape[-2], : t.shape[-1]]
        y = torch.rand(5, 5, generator=torch.Generator().manual_seed(k))
        assert torch.allclose(dihedral_mean(f, dihedral(lambda t: t, y, k)),
                              dihedral(lambda t: t, dihedral_mean(f, y), k), atol=1e-6)


def test_self_ensemble_equivariant_shape_dtype_and_better():
    plain, plus = LearnedDenoiser(), LearnedDenoiser(self_ensemble=True)
    assert not get_denoiser("drunet").self_ensemble and get_denoiser("drunet", self_ensemble=True).self_ensemble
    (s, clean, noisy), = heldout_set([0.1], seeds=[0], shape=(40, 56))
    x = torch.from_numpy(noisy).double()
    with torch.no_grad():
        out = plus(x, s)
        assert out.shape == x.shape and out.dtype == torch.float64
        # exactly equivariant to a 90° rotation and a flip (the plain net is not)
        assert torch.allclose(plus(torch.rot90(x, 1), s), torch.rot90(out, 1), atol=1e-5)
        assert torch.allclose(plus(x.flip(-2), s), out.flip(-2), atol=1e-5)
        assert not torch.allclose(plain(torch.rot90(x, 1), s), torch.rot90(plain(x, s), 1), atol=1e-4)
        assert ni.metrics.psnr(out.numpy(), clean) > ni.metrics.psnr(plain(x, s).numpy(), clean)
        stack = plus(torch.stack([x, x.flip(-1)]), torch.tensor([s, 2 * s]))  # a batch with one σ per image
        assert stack.shape == (2, 40, 56)
        assert torch.allclose(stack[0], out, atol=1e-5)
        assert torch.allclose(stack[1], plus(x.flip(-1), 2 * s), atol=1e-5)
    with pytest.raises(TypeError, match="self_ensemble"):
        LearnedDenoiser(self_ensemble=1)
