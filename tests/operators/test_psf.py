import numpy as np
import pytest

import napari_invimg as ni


def _fwhm(profile):
    half = profile.max() / 2
    above = np.nonzero(profile >= half)[0]
    return above[-1] - above[0] + 1


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
    assert _fwhm(h[:, 16, 16]) * 0.1 > 2 * _fwhm(h[10, 16]) * 0.05


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
