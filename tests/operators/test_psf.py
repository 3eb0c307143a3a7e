import numpy as np
import pytest

import napari_invimg as ni


def _fwhm(profile):
    half = profile.max() / 2
    above = np.nonzero(profile >= half)[0]
    return above[-1] - above[0] + 1


def _fwhm_interpolated(profile, step):
    """FWHM of a peaked profile with linearly interpolated half-maximum crossings (in the units of ``step``)."""
    p = np.asarray(profile, dtype=np.float64) / np.max(profile)
    i = int(np.argmax(p))
    lo, hi = i, i
    while lo > 0 and p[lo - 1] >= 0.5:
        lo -= 1
    while hi < len(p) - 1 and p[hi + 1] >= 0.5:
        hi += 1
    assert 0 < lo and hi < len(p) - 1, "the profile must fall to half its maximum inside the array"
    left = lo - (p[lo] - 0.5) / (p[lo] - p[lo - 1])
    right = hi + (p[hi] - 0.5) / (p[hi] - p[hi + 1])
    return (right - left) * step


def test_gaussian_sums_to_one_and_is_centered():
    h = ni.psf.gaussian((15, 21), sigma=(2.0, 3.0))
    assert h.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.unravel_index(h.argmax(), h.shape) == (7, 10)


@pytest.mark.parametrize("model", ["born_wolf", "gibson_lanni"])
def test_widefield_width_matches_the_diffraction_limit(model):
    if model != "born_wolf":
        pytest.importorskip("psfmodels")  # optional extra (napari-invimg[psfmodels])
    px = 0.02
    h = ni.psf.widefield((65, 65), wavelength_um=0.5, na=1.2, pixel_size_um=px, model=model)
    assert h.sum() == pytest.approx(1.0, abs=1e-4)
    fwhm_um = _fwhm(h[32]) * px
    assert fwhm_um == pytest.approx(0.51 * 0.5 / 1.2, rel=0.2)  # Airy FWHM ≈ 0.51 λ/NA


def test_widefield_3d_is_elongated_in_z():
    h = ni.psf.widefield((21, 33, 33), wavelength_um=0.5, na=1.2, pixel_size_um=0.05, z_step_um=0.1, ni=1.33)
    assert h.shape == (21, 33, 33)
    assert np.unravel_index(h.argmax(), h.shape) == (10, 16, 16)
    assert _fwhm_interpolated(h[:, 16, 16], 0.1) > 2 * _fwhm_interpolated(h[10, 16], 0.05)


def test_widefield_bad_input():
    with pytest.raises(ValueError, match="numerical aperture"):
        ni.psf.widefield((15, 15), na=1.6, ni=1.515)
    with pytest.raises(ValueError, match="z_step"):
        ni.psf.widefield((5, 15, 15))


def test_from_bead_recenters_and_normalizes():
    h = ni.psf.gaussian((31, 31), 2.0)
    bead = np.roll(h, (3, -2), axis=(0, 1)) * 1000 + 5.0
    est = ni.psf.from_bead(bead, shape=(15, 15))
    assert est.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(est, ni.psf.gaussian((15, 15), 2.0) * 1.0, atol=2e-3)


@pytest.mark.parametrize("na, n", [(0.8, 1.0), (1.2, 1.33), (1.4, 1.515)])
def test_default_3d_psf_matches_psfmodels(na, n):
    """The exact-defocus Debye model: axial FWHM within 5% of psfmodels' scalar and vectorial models, lateral
    within 5% of the scalar one. The vectorial lateral FWHM is 7–12% wider (polarization, which no scalar model
    has; benchmarks/RESULTS.md section 11)."""
    psfmodels = pytest.importorskip("psfmodels")
    dxy = dz = 0.025
    nz = 121 if na < 1 else 81
    ours = ni.psf.widefield((nz, 41, 41), wavelength_um=0.52, na=na, pixel_size_um=dxy, z_step_um=dz, ni=n)
    zv = (np.arange(nz) - nz // 2) * dz

    def widths(h):
        z, y, x = np.unravel_index(np.argmax(h), h.shape)
        return _fwhm_interpolated(h[z, y, :], dxy), _fwhm_interpolated(h[:, y, x], dz)

    lateral, axial = widths(ours)
    for model in ("scalar", "vectorial"):
        ref = psfmodels.make_psf(zv, 41, dxy=dxy, NA=na, wvl=0.52, ns=n, ni=n, ni0=n, model=model)
        ref_lateral, ref_axial = widths(ref)
        assert axial == pytest.approx(ref_axial, rel=0.05), model
        assert lateral == pytest.approx(ref_lateral, rel=0.05 if model == "scalar" else 0.15), model


def test_default_3d_psf_is_not_paraxial():
    """At NA 1.4 in oil the paraxial defocus made the axial FWHM ≈ 0.71 µm; the exact phase gives ≈ 0.50 µm."""
    h = ni.psf.widefield((61, 9, 9), wavelength_um=0.52, na=1.4, pixel_size_um=0.05, z_step_um=0.025, ni=1.515)
    assert _fwhm_interpolated(h[:, 4, 4], 0.025) == pytest.approx(0.50, abs=0.03)


@pytest.mark.parametrize("na, n", [(0.8, 1.0), (1.2, 1.33), (1.4, 1.515)])
def test_richards_wolf_matches_psfmodels_vectorial(na, n):
    """The numpy vectorial model (randomly polarized emitter): lateral and axial FWHM within 5% of psfmodels'
    vectorial model (index-matched), and laterally wider than the scalar default at high NA."""
    psfmodels = pytest.importorskip("psfmodels")
    dxy = dz = 0.025
    nz = 121 if na < 1 else 81
    ours = ni.psf.widefield((nz, 41, 41), wavelength_um=0.52, na=na, pixel_size_um=dxy, z_step_um=dz, ni=n,
                            model="richards_wolf")
    ref = psfmodels.make_psf((np.arange(nz) - nz // 2) * dz, 41, dxy=dxy, NA=na, wvl=0.52, ns=n, ni=n, ni0=n,
                             model="vectorial")

    def widths(h):
        z, y, x = np.unravel_index(np.argmax(h), h.shape)
        return _fwhm_interpolated(h[z, y, :], dxy), _fwhm_interpolated(h[:, y, x], dz)

    (lateral, axial), (ref_lateral, ref_axial) = widths(ours), widths(ref)
    assert lateral == pytest.approx(ref_lateral, rel=0.05)
    assert axial == pytest.approx(ref_axial, rel=0.05)


@pytest.mark.parametrize("kwargs", [
    {"wavelength_um": float("nan")}, {"wavelength_um": float("inf")}, {"pixel_size_um": float("nan")},
    {"pixel_size_um": float("inf")}, {"ni": float("inf")}, {"ns": float("nan"), "model": "gibson_lanni"},
    {"ns": -1.0}, {"pixel_size_um": 0.0}, {"wavelength_um": 0.0}, {"na": 1.6},
])
@pytest.mark.parametrize("model", ["born_wolf", "richards_wolf"])
def test_widefield_refuses_non_finite_optics(kwargs, model):
    kwargs = {"model": model, **kwargs}
    with pytest.raises(ValueError, match="finite|positive|numerical aperture"):
        ni.psf.widefield(9, **kwargs)
    with pytest.raises(TypeError, match="wavelength_um must be a number"):
        ni.psf.widefield(9, wavelength_um="0.5")


def test_widefield_3d_refuses_an_infinite_z_step():
    with pytest.raises(ValueError, match="z_step_um must be finite"):
        ni.psf.widefield((3, 9, 9), z_step_um=float("inf"))


@pytest.mark.parametrize("sigma", [float("nan"), float("inf"), 0.0, -1.0, (1.0, 2.0, 3.0)])
def test_gaussian_refuses_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        ni.psf.gaussian(9, sigma)


def test_resample_check_and_otf_refuse_bad_voxels_and_psfs():
    h = ni.psf.gaussian(9, 1.0)
    with pytest.raises(ValueError, match="positive and finite"):
        ni.psf.resample(h, float("nan"), 0.1)
    with pytest.raises(ValueError, match="positive and finite"):
        ni.psf.check(h, 0.1, float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        ni.psf.otf(np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="positive"):
        ni.psf.otf(np.zeros((3, 3)))
    assert np.isfinite(ni.psf.otf(h)).all()


@pytest.mark.parametrize("shape", [9.5, (9, 8.5), (float("nan"), 9), (0, 9), (2, 2, 2, 2), "9"])
def test_psf_shapes_must_be_whole_positive_sizes(shape):
    with pytest.raises(ValueError, match="PSF shape"):
        ni.psf.gaussian(shape, 1.0)
