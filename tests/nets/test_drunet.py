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


def _v2():
    g = torch.random.fork_rng(devices=[])
    with g:
        torch.manual_seed(1)
        return SmallDRUNet((8, 16, 24), blocks=(1, 2, 1), unshuffle=2).eval()


def test_unshuffled_network_any_size_and_grid():
    net = _v2()
    assert net.factor == 8 and net.config["unshuffle"] == 2 and net.config["blocks"] == [1, 2, 1]
    for shape in [(37, 53), (5, 3), (16, 16)]:
        with torch.no_grad():
            out = net(torch.rand(1, 1, *shape), torch.tensor([0.1]))
        assert out.shape == (1, 1, *shape) and torch.isfinite(out).all()


def test_receptive_field_bounds_the_reach():
    """A pixel change moves no output pixel beyond the receptive field, and moves some more than halfway to it."""
    for net in (_v2(), SmallDRUNet((4, 8), blocks=1).eval()):
        for p in net.parameters():  # positive weights: no cancellation hides the reach
            p.data = p.data.abs() + 0.01
        n, r = 128, net.receptive_field
        x = 0.6 + 0.4 * torch.rand(1, 1, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        net = net.double()
        c = 48
        y = x.clone()
        y[0, 0, c, c] += 1.0
        with torch.no_grad():
            d = (net(y, torch.tensor([0.5])) - net(x, torch.tensor([0.5]))).abs()[0, 0, c]
        moved = torch.nonzero(d > 1e-12).flatten()
        assert int(moved.max()) - c <= r and c - int(moved.min()) <= r
        assert max(int(moved.max()) - c, c - int(moved.min())) >= r - net.factor


def test_architecture_field_round_trip_and_unknown(tmp_path):
    net = _v2()
    path = save_weights(net, tmp_path / "v2.pt", note="v2")
    loaded, meta = load_weights(path)
    assert loaded.config == net.config and loaded.receptive_field == net.receptive_field
    blob = torch.load(path, weights_only=True)
    assert blob["architecture"] == "SmallDRUNet" and sorted(tmp_path.iterdir()) == [path]  # no temporary left
    blob["architecture"] = "FutureNet"
    torch.save(blob, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="FutureNet"):
        load_weights(tmp_path / "future.pt")
    del blob["architecture"]  # files from before the field: the small UNet
    blob["config"] = SmallDRUNet().config
    blob["state_dict"] = SmallDRUNet().state_dict()
    torch.save(blob, tmp_path / "old.pt")
    assert load_weights(tmp_path / "old.pt")[0].receptive_field == 53
