import pickle

import numpy as np
import pytest
import torch

import napari_invimg.blackhole as bh
from napari_invimg.blackhole.closures import closure_phases, log_closure_amplitudes, wrap_phase


@pytest.fixture(scope="module")
def obs():
    return bh.simulate(bh.models.ring(), fov_uas=160.0, seed=1)


def test_interferometer_adjoint(obs):
    A = bh.Interferometer(obs, npix=64, fov_uas=160.0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 64)).astype(np.float32)
    y = (rng.standard_normal(len(obs)) + 1j * rng.standard_normal(len(obs))).astype(np.complex64)
    lhs = np.real(np.vdot(y, A.forward(x)))
    rhs = float((x * A.adjoint(y)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-4)
    # a point source at the center pixel has |V| = flux × pixel response everywhere
    point = np.zeros((64, 64), np.float32)
    point[32, 32] = 1.0
    np.testing.assert_allclose(np.abs(A.forward(point)), A.response, rtol=1e-5)


def ay_of(A, x):
    """``Re Aᴴ A x`` in float64."""
    with torch.no_grad():
        return A.apply_adjoint(A.apply(torch.as_tensor(x))).numpy()


@pytest.mark.parametrize("npix", [64, 33])
def test_nufft_matches_the_direct_transform_and_is_its_adjoint(obs, npix):
    dft = bh.Interferometer(obs, npix=npix, fov_uas=160.0, transform="dft")
    nufft = bh.Interferometer(obs, npix=npix, fov_uas=160.0, transform="nufft")
    assert bh.Interferometer(obs, npix=npix, fov_uas=160.0).transform == "dft"  # auto: small problems keep the matrix
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, npix, npix))
    y = rng.standard_normal((2, len(obs))) + 1j * rng.standard_normal((2, len(obs)))
    with torch.no_grad():  # float64 tensors (the DFT matrices hold float32 entries: agreement to ~1e-7)
        vx = nufft.apply(torch.as_tensor(x)).numpy()
        ay = nufft.apply_adjoint(torch.as_tensor(y)).numpy()
        np.testing.assert_allclose(vx, dft.apply(torch.as_tensor(x)).numpy(), rtol=0, atol=1e-6 * np.abs(vx).max())
        np.testing.assert_allclose(ay, dft.apply_adjoint(torch.as_tensor(y)).numpy(), rtol=0, atol=1e-6 * np.abs(ay).max())
    assert np.real(np.vdot(y, vx)) == pytest.approx(float((x * ay).sum()), rel=1e-7)
    # the numpy interface (float32): float32 accuracy
    np.testing.assert_allclose(nufft.forward(x[0]), dft.forward(x[0]), rtol=0, atol=1e-4 * np.abs(vx).max())
    xt = torch.as_tensor(x[0]).requires_grad_(True)
    (g,) = torch.autograd.grad((nufft.apply(xt).abs() ** 2).sum(), xt, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 2 * ay_of(dft, x[0]), atol=1e-6 * g.abs().max().item())
    v = torch.as_tensor(x[1])
    (hv,) = torch.autograd.grad((g * v).sum(), xt)  # a Hessian-vector product goes through both NUFFTs
    np.testing.assert_allclose(hv.numpy(), 2 * ay_of(dft, x[1]), atol=1e-6 * hv.abs().max().item())
    assert nufft.spec()["transform"] == "nufft"
    copy = pickle.loads(pickle.dumps(nufft))  # used plans are not pickled; the copy makes its own
    np.testing.assert_allclose(copy.forward(x[0]), nufft.forward(x[0]), rtol=0, atol=1e-6 * np.abs(vx).max())


def test_interferometer_spec_round_trip(obs):
    from napari_invimg.operators import from_spec

    A = bh.Interferometer(obs, npix=32, fov_uas=160.0)
    B = from_spec(A.spec())
    x = bh.models.crescent(npix=32)
    np.testing.assert_allclose(B.forward(x), A.forward(x), rtol=1e-5, atol=1e-7)
    C = bh.Closures(obs, npix=32, fov_uas=160.0)
    np.testing.assert_allclose(from_spec(C.spec()).forward(x), C.forward(x), atol=1e-6)


def test_closures_immune_to_station_gains(obs):
    design = bh.closure_design(obs)
    phased, _ = bh.apply_station_gains(obs, 0.0, random_phase=True, seed=3)
    np.testing.assert_allclose(wrap_phase(closure_phases(phased.vis, design) - closure_phases(obs.vis, design)), 0,
                               atol=1e-9)
    gained, _ = bh.apply_station_gains(obs, 0.3, random_phase=True, seed=4)
    np.testing.assert_allclose(log_closure_amplitudes(gained.vis, design), log_closure_amplitudes(obs.vis, design),
                               atol=1e-9)
    # non-redundant: per scan at most (N-1)(N-2)/2 phases and N(N-3)/2 amplitudes, and full rank
    assert np.linalg.matrix_rank(design.phase) == design.n_phases
    assert np.linalg.matrix_rank(design.amplitude) == design.n_amplitudes
    n_scans = obs.n_scans
    assert design.n_phases <= n_scans * 15 and design.n_amplitudes <= n_scans * 14


def test_closures_operator_is_differentiable_and_matches_noise(obs):
    C = bh.Closures(obs, npix=64, fov_uas=160.0)
    x = torch.tensor(bh.models.ring(), requires_grad=True)
    z = C.forward(x)
    loss = C.nll(torch.as_tensor(C.data), z)
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    r = C.normalized_residuals(bh.models.ring())
    chi2 = np.mean(np.concatenate(list(r.values())) ** 2)
    assert 0.5 < chi2 < 2.0  # the truth fits the closures to the thermal noise


def test_bad_input_is_refused(obs):
    with pytest.raises(ValueError, match="no visibilities"):
        bh.Observation([], [], [], [], [], [], [])
    with pytest.raises(ValueError, match="NaN"):
        bh.Observation([0.0], ["A"], ["B"], [1e9], [0.0], [1 + 0j], [np.nan])
    with pytest.raises(ValueError, match="longest baseline"):
        bh.Interferometer(obs, npix=8, fov_uas=160.0)
    with pytest.raises(ValueError, match="too small for the source"):
        bh.Interferometer(obs, npix=16, fov_uas=30.0)
    with pytest.raises(ValueError, match="too small for the source"):
        bh.simulate(bh.models.ring(npix=32, fov_uas=50.0), fov_uas=50.0)


def test_scan_averaging_of_integrations():
    fine = bh.simulate(bh.models.double(), integration_s=60.0, thermal_noise=False, interval_minutes=120.0)
    coarse = fine.average(600.0)
    assert len(fine) == 10 * len(coarse)
    per_baseline = dict(zip(zip(fine.station1, fine.station2), fine.sigma))
    ratio = coarse.sigma / np.array([per_baseline[p] for p in zip(coarse.station1, coarse.station2)])
    np.testing.assert_allclose(ratio, 1 / np.sqrt(10), rtol=1e-6)  # ten 60 s integrations per 10-min scan
    np.testing.assert_allclose(coarse.integration_s, 600.0)


def test_grid_noise_and_averaging_values_are_checked(obs):
    # a fractional pixel count is not truncated silently; NaN / infinite fields of view are refused
    for npix, fov, match in ((16.5, 160.0, "whole number"), ("x", 160.0, "whole number"), (True, 160.0, "whole"),
                             (16, float("nan"), "finite"), (16, float("inf"), "finite"), (16, "wide", "number")):
        with pytest.raises(ValueError, match=match):
            bh.Interferometer(obs, npix=npix, fov_uas=fov)
    assert bh.Interferometer(obs, npix=16.0, fov_uas=160).npix == 16
    with pytest.raises(ValueError, match="freq_hz"):
        bh.Observation([0.0], ["A"], ["B"], [1e9], [0.0], [1 + 0j], [0.1], freq_hz=0.0)
    with pytest.raises(ValueError, match="bandwidth_hz"):
        bh.Observation([0.0], ["A"], ["B"], [1e9], [0.0], [1 + 0j], [0.1], bandwidth_hz=float("nan"))
    for seconds in (float("nan"), float("inf"), 0.0):
        with pytest.raises(ValueError, match="averaging time"):
            obs.average(seconds)
    with pytest.raises(ValueError, match="Bandwidth"):
        bh.thermal_sigma(1000.0, 1000.0, float("nan"), 10.0)
    with pytest.raises(ValueError, match="SEFD"):
        bh.thermal_sigma(1000.0, -1.0, 2e9, 10.0)
    with pytest.raises(ValueError, match="amplitude error"):
        bh.apply_station_gains(obs, float("nan"))


def test_gaussian_image_narrower_than_a_pixel_keeps_its_flux():
    # the usual case is the sampled Gaussian, normalized
    x, y = bh.operators.pixel_positions_rad(16, 160.0)
    s = 40.0 / (2 * np.sqrt(2 * np.log(2))) * bh.arrays.RAD_PER_UAS
    g = np.exp(-(x[None, :] ** 2 + y[:, None] ** 2) / (2 * s * s))
    np.testing.assert_array_equal(bh.gaussian_image(16, 160.0, 40.0, 2.0), 2.0 * g / g.sum())
    # 80 µas in 20 000 µas pixels underflowed to 0/0 (NaN priors in rml and gmrf_hmc): now the flux sits on the
    # four pixels around the centre, with a warning
    with pytest.warns(RuntimeWarning, match="below one pixel"):
        point = bh.gaussian_image(16, 320000.0, 80.0, 1.5)
    assert np.isfinite(point).all() and point.sum() == pytest.approx(1.5)
    np.testing.assert_allclose(point[7:9, 7:9], 0.375)
    with pytest.raises(ValueError, match="FWHM"):
        bh.gaussian_image(16, 160.0, float("nan"))


def test_closure_snr_cut_and_model_grids_are_checked(obs):
    with pytest.raises(ValueError, match="min_snr"):
        bh.Closures(obs, npix=16, fov_uas=160.0, min_snr=float("nan"))  # kept every baseline before
    with pytest.raises(ValueError, match="min_snr = 1e"):
        bh.Closures(obs, npix=16, fov_uas=160.0, min_snr=1e9)  # the cause is the cut, not the array
    with pytest.raises(ValueError, match="field of view"):
        bh.models.get("ring", 16, float("nan"))  # a NaN image before
    with pytest.raises(ValueError, match="pixels"):
        bh.models.ring(npix=0)
    with pytest.raises(ValueError, match="resolution"):
        bh.blur_to_resolution(bh.models.ring(npix=16), 160.0, float("nan"))
