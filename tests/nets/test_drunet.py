import numpy as np
import pytest
import torch

from napari_invimg.nets.drunet import SmallDRUNet, load_weights, save_weights
from napari_invimg.nets.training import add_noise, blind_spot


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SmallDRUNet().eval()


@pytest.mark.parametrize("shape", [(37, 53), (8, 8), (5, 3), (64, 64)])
def test_any_size(model, shape):
    x = torch.rand(2, 1, *shape)
    with torch.no_grad():
        out = model(x, torch.tensor([0.1, 0.5]))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_preconditioning_limits(model):
    """D → x as σ → 0 (c_skip → 1, c_out → 0)."""
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        out = model(x, torch.tensor([1e-6]))
    assert torch.allclose(out, x, atol=1e-4)


def test_save_load_round_trip(model, tmp_path):
    path = save_weights(model, tmp_path / "w.pt", note="test")
    loaded, meta = load_weights(path)
    assert meta["note"] == "test" and loaded.config == model.config
    x = torch.rand(1, 1, 24, 40)
    with torch.no_grad():
        a, b = model(x, torch.tensor([0.1])), loaded(x, torch.tensor([0.1]))
    assert torch.allclose(a, b, atol=2e-3)


def test_bad_weights_file(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"something": 1}, bad)
    with pytest.raises(ValueError, match="not a napari-invimg"):
        load_weights(bad)
    with pytest.raises(ValueError, match="No denoiser weights"):
        load_weights(tmp_path / "missing.pt")


def test_blind_spot_replaces_masked_pixels_by_a_neighbor():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(1, 1, 20, 20, generator=g)
    masked, mask = blind_spot(y, 0.1, g)
    assert 0 < mask.sum() < 400
    keep = mask == 0
    assert torch.equal(masked[keep], y[keep])
    for i, j in torch.nonzero(mask[0, 0, 1:-1, 1:-1]).tolist():
        window = y[0, 0, i:i + 3, j:j + 3].flatten().tolist()
        window.pop(4)
        assert float(masked[0, 0, i + 1, j + 1]) in window


def test_add_noise_effective_sigma():
    g = torch.Generator().manual_seed(1)
    clean = torch.full((64, 1, 32, 32), 0.4)
    noisy, sigma = add_noise(clean, (0.01, 0.3), g, poisson_fraction=0.5)
    emp = (noisy - clean).std(dim=(1, 2, 3))
    assert np.allclose(emp.numpy(), sigma.numpy(), rtol=0.15)
