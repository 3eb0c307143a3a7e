"""MRI methods: PSNR bounds, self-stopping SENSE (never below zero-filled, single coil too), radial data."""

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg import mri


@pytest.fixture(scope="module")
def scan():
    x = mri.shepp_logan((48, 48)).astype(np.complex64) * np.exp(0.5j)
    return mri.simulate_kspace(x, 8, kind="poisson", acceleration=4, snr_db=30.0, seed=0)


def _psnr(rec, x):
    return ni.metrics.psnr(np.abs(rec.mean), np.abs(x))


def test_methods_listed_for_mri_operators(scan):
    names = ni.methods(scan.operator)
    for m in ("adjoint", "cg_sense", "wavelet", "tv"):
        assert m in names
        assert ni.method_info(m)["description"]


def test_cs_beats_zero_filled_and_sense_never_below(scan):
    zf = _psnr(ni.reconstruct(scan.kspace, scan.operator, "adjoint"), scan.image)
    sense = ni.reconstruct(scan.kspace, scan.operator, "cg_sense", noise=ni.noise.Gaussian(scan.sigma))
    assert _psnr(sense, scan.image) >= zf
    assert "discrepancy" in sense.info["stopped"] or "stagnated" in sense.info["stopped"]
    tv = ni.reconstruct(scan.kspace, scan.operator, "tv", noise=ni.noise.Gaussian(scan.sigma), iterations=80)
    assert _psnr(tv, scan.image) >= zf + 8
    wav = ni.reconstruct(scan.kspace, scan.operator, "wavelet", noise=ni.noise.Gaussian(scan.sigma), iterations=60)
    assert _psnr(wav, scan.image) >= zf + 10
    # noise estimated from the k-space periphery: this pixel-sharp phantom has signal up to the Nyquist edge,
    # σ̂ is ~7× too large, the image over-smoothed, but still better than zero-filled
    wav = ni.reconstruct(scan.kspace, scan.operator, "wavelet", iterations=60)
    assert _psnr(wav, scan.image) >= zf + 2
    assert np.iscomplexobj(wav.mean) and wav.info["noise_source"] == "estimated"


def test_single_coil_sense_is_zero_filled_not_divergent():
    x = mri.brain((48, 48))
    sc = mri.simulate_kspace(x, 1, kind="equispaced", acceleration=4, seed=1)
    zf = ni.reconstruct(sc.kspace, sc.operator, "adjoint")
    rec = ni.reconstruct(sc.kspace, sc.operator, "cg_sense", noise=ni.noise.Gaussian(sc.sigma), iterations=200)
    assert _psnr(rec, x) >= _psnr(zf, x) - 0.01
    assert np.isfinite(rec.mean).all()


def test_radial_density_compensated_adjoint_and_tv():
    n = 48
    x = mri.shepp_logan((n, n)).astype(np.complex64)
    traj = mri.radial_trajectory(40, 2 * n)
    A = mri.NonCartesianMRI(traj, (n, n), coil_maps=mri.birdcage(4, (n, n)))
    y = ni.simulate(x, A, ni.noise.Gaussian(1e-3), seed=0)
    dirty = ni.reconstruct(y, A, "adjoint")
    assert dirty.info["density_compensated"]
    assert ni.metrics.nxcorr(np.abs(dirty.mean), np.abs(x)) > 0.8
    rec = ni.reconstruct(y, A, "tv", noise=ni.noise.Gaussian(1e-3), iterations=60)
    assert _psnr(rec, x) > _psnr(dirty, x) + 3


def test_adjoint_is_generic():
    x = ni.datasets.fluorescence((32, 32), seed=0)
    A = ni.operators.Blur(ni.psf.gaussian((7, 7), 1.5), (32, 32))
    y = ni.simulate(x, A, None)
    rec = ni.reconstruct(y, A, "adjoint", noise=ni.noise.Gaussian(0.01))
    assert rec.mean.shape == (32, 32) and ni.metrics.nxcorr(rec.mean, x) > 0.6
    # the least-squares scale: A x̂ explains y better than the raw Aᵀy does
    raw = A.adjoint(y)
    assert np.linalg.norm(A.forward(rec.mean) - y) <= np.linalg.norm(A.forward(raw) - y) + 1e-9
