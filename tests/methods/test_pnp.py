"""Plug-and-play methods with registered denoisers: PSNR bounds, complex images, bad denoiser names."""

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg import datasets
from napari_invimg.metrics import psnr
from napari_invimg.methods.pnp import default_denoiser
from napari_invimg.priors import denoiser_names


@pytest.fixture(scope="module")
def blur_problem():
    x = datasets.fluorescence((48, 48), seed=1)
    A = ni.operators.Blur(ni.psf.gaussian((9, 9), sigma=1.2), x.shape)
    noise = ni.noise.PoissonGaussian(gain=0.01, sigma=0.01)
    return x, A, noise, ni.simulate(x, A, noise, seed=0)


@pytest.mark.parametrize("method", ["pnp_admm", "pnp_pgd", "red"])
@pytest.mark.parametrize("denoiser", ["tv", "wavelet"])
def test_pnp_beats_the_data(blur_problem, method, denoiser):
    x, A, noise, y = blur_problem
    rec = ni.reconstruct(y, A, method, noise=noise, denoiser=denoiser, iterations=16)
    assert rec.info["denoiser"] == denoiser and rec.info["evaluations"] >= 4
    assert float(rec.mean.min()) >= 0
    assert psnr(rec.mean, x) > psnr(y, x) + 1.0


def test_default_denoiser_and_schema():
    assert default_denoiser() in denoiser_names()
    assert ni.method_info("pnp_admm")["parameters"][1]["name"] == "denoiser"


def test_unknown_denoiser_is_a_clear_error(blur_problem):
    x, A, noise, y = blur_problem
    with pytest.raises(ValueError, match="Unknown denoiser 'nope'"):
        ni.reconstruct(y, A, "pnp_admm", noise=noise, denoiser="nope")


def test_pnp_admm_on_complex_images():
    mag = datasets.fluorescence((32, 32), seed=6)
    yy, xx = np.mgrid[:32, :32] / 32.0
    x = (mag * np.exp(1j * 2 * (yy + 0.5 * xx))).astype(np.complex64)

    class ComplexInpainting(ni.operators.Inpainting):
        in_complex = out_complex = True

    A = ComplexInpainting(np.random.default_rng(0).random(x.shape) < 0.7)
    noise = ni.noise.Gaussian(0.05)
    y = ni.simulate(x, A, noise, seed=0)
    rec = ni.reconstruct(y, A, "pnp_admm", noise=noise, denoiser="tv", iterations=16)
    assert np.iscomplexobj(rec.mean)
    assert np.linalg.norm(rec.mean - x) < 0.6 * np.linalg.norm(A.forward(y) - x)


def test_3d_pnp():
    x = datasets.fluorescence((8, 24, 24), seed=5)
    A = ni.operators.Blur(ni.psf.gaussian((5, 7, 7), sigma=(1.5, 1.0, 1.0)), x.shape)
    noise = ni.noise.Gaussian(0.03)
    y = ni.simulate(x, A, noise, seed=0)
    rec = ni.reconstruct(y, A, "pnp_admm", noise=noise, denoiser="tv", iterations=12)
    assert psnr(rec.mean, x) > psnr(y, x) + 1.0


@pytest.mark.parametrize("method", ["pnp_admm", "pnp_pgd", "red", "tv", "wavelet", "hessian", "rl_tv"])
def test_defaults_validate_and_denoiser_is_automatic(method):
    from napari_invimg.methods import registry

    cls = registry.get(method)
    params = cls.validate({})
    if "denoiser" in params:
        assert params["denoiser"] is None
        assert cls.validate({"denoiser": "nlm"})["denoiser"] == "nlm"
    assert ni.method_info(method)["description"]


def test_pnp_takes_a_users_weights_file(tmp_path):
    """A weights file (e.g. from ni.train_denoiser) drives the PnP denoiser; the shipped file gives the default result."""
    import shutil
    from importlib.resources import files

    shipped = files("napari_invimg.nets") / "weights" / "denoiser.pt"
    mine = tmp_path / "mine.pt"
    shutil.copyfile(str(shipped), mine)
    x = ni.datasets.fluorescence((32, 32), seed=5)
    A = ni.operators.Blur(ni.psf.gaussian((5, 5), 1.0), x.shape)
    noise = ni.noise.Gaussian(0.02)
    y = ni.simulate(x, A, noise, seed=0)
    default = ni.reconstruct(y, A, "pnp_pgd", noise=noise, denoiser="drunet", iterations=4)
    users = ni.reconstruct(y, A, "pnp_pgd", noise=noise, denoiser="drunet", weights=str(mine), iterations=4)
    np.testing.assert_allclose(users.mean, default.mean, atol=1e-6)
    with pytest.raises(ValueError, match="no weights"):
        ni.reconstruct(y, A, "pnp_pgd", noise=noise, denoiser="tv", weights=str(mine), iterations=2)


def test_mri_plug_and_play_uses_the_mri_weights_and_weights_override(tmp_path, monkeypatch):
    """MRI operators name the denoiser fine-tuned on MR magnitudes (``preferred_denoiser``); a ``weights`` file replaces
    it, and other operators keep the general one."""
    import shutil
    from importlib.resources import files

    from napari_invimg import mri

    assert default_denoiser(ni.operators.Blur(ni.psf.gaussian((5, 5), 1.0), (16, 16))) == "drunet"
    sc = mri.simulate_kspace(mri.brain((32, 32), seed=3), 4, kind="poisson", acceleration=4, snr_db=30.0, seed=0)
    assert default_denoiser(sc.operator) == "drunet_mri"
    noise = ni.noise.Gaussian(sc.sigma)
    run = {"noise": noise, "iterations": 3, "start": "adjoint"}
    mri_default = ni.reconstruct(sc.kspace, sc.operator, "pnp_admm", **run)
    general = ni.reconstruct(sc.kspace, sc.operator, "pnp_admm", denoiser="drunet", **run)
    assert mri_default.info["denoiser"] == "drunet_mri" and general.info["denoiser"] == "drunet"
    assert not np.allclose(mri_default.mean, general.mean, atol=1e-4)
    mine = tmp_path / "general.pt"
    shutil.copyfile(str(files("napari_invimg.nets") / "weights" / "denoiser.pt"), mine)
    users = ni.reconstruct(sc.kspace, sc.operator, "pnp_admm", weights=str(mine), **run)
    np.testing.assert_allclose(users.mean, general.mean, atol=1e-5)
    # the MRI scheme (operator's plug_and_play_defaults): L1-wavelet start, first level a multiple of the noise, λ = 1
    tuned = ni.reconstruct(sc.kspace, sc.operator, "pnp_admm", noise=noise, iterations=2)
    scheme, tuning = tuned.info["scheme"], sc.operator.plug_and_play_defaults()
    assert scheme["start"] == "wavelet" and scheme["lam"] == tuning["lam"] == 1.0
    assert scheme["sigma_start"] == pytest.approx(tuning["sigma_start_noise"] * tuned.info["sigma_end"] / tuned.info["scale"])
    last = max(tuning.get("sigma_end_noise", 1.0) * tuned.info["sigma_end"] / tuned.info["scale"], 1e-3)
    assert scheme["sigma_last"] == pytest.approx(last)
    four = ni.reconstruct(sc.kspace, sc.operator, "pnp_admm", noise=noise, iterations=24, start="adjoint")
    assert four.info["scheme"]["averaged"] == tuning["average"] == 8  # the mean of the last 8 iterates
    monkeypatch.setitem(mri.operators.PLUG_AND_PLAY, "sigma_end_noise", 0.5)  # an operator may end below the noise
    low = ni.reconstruct(sc.kspace, sc.operator, "pnp_admm", noise=noise, iterations=2).info
    assert low["scheme"]["sigma_last"] == pytest.approx(max(0.5 * low["sigma_end"] / low["scale"], 1e-3))
    assert low["scheme"]["sigma_last"] < scheme["sigma_last"]
    assert ni.reconstruct(sc.kspace, sc.operator, "pnp_admm", noise=noise, iterations=2, lam=0.3,
                          start="adjoint").info["scheme"]["lam"] == 0.3


def test_mri_wavelet_start_reports_progress_and_honours_cancel():
    """The MRI scheme's L1-wavelet first estimate runs as a part of the call (``run_first_estimate``): the bar moves
    through it without going back, and a cancel there stops the call before any PnP iteration."""
    from napari_invimg import mri

    sc = mri.simulate_kspace(mri.brain((32, 32), seed=3), 4, kind="poisson", acceleration=4, snr_db=30.0, seed=0)
    noise = ni.noise.Gaussian(sc.sigma)
    with pytest.raises(ni.Cancelled) as exc:
        ni.reconstruct(sc.kspace, sc.operator, "pnp_admm", noise=noise, iterations=2, progress=lambda *a: False)
    assert exc.value.partial is None
    steps = []
    rec = ni.reconstruct(sc.kspace, sc.operator, "pnp_admm", noise=noise, iterations=2,
                         progress=lambda i, total, preview: steps.append((i, total)))
    assert rec.info["scheme"]["start"] == "wavelet" and len(steps) > 2  # the wavelet run's iterations report too
    fractions = [i / total for i, total in steps]
    assert all(a <= b + 1e-9 for a, b in zip(fractions, fractions[1:])) and steps[-1][0] == steps[-1][1]
