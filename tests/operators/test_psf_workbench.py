"""PSF workbench: beads -> PSF, resampling between voxel sizes, checks, OTF, a PSF matched to a file."""

import numpy as np
import pytest

import napari_invimg as ni


def test_from_beads_recovers_a_widefield_psf():
    big = ni.psf.widefield((31, 31), wavelength_um=0.52, na=1.4, pixel_size_um=0.065)
    img, pos = ni.datasets.beads((256, 256), big, 24, (27, 27), photons=20000, background=10, seed=0)
    truth = big[4:-4, 4:-4] / big[4:-4, 4:-4].sum()
    assert len(ni.psf.detect_beads(img, (27, 27))) == len(pos)
    est = ni.psf.from_beads(img, truth.shape)
    assert np.linalg.norm(est - truth) / np.linalg.norm(truth) < 0.05
    assert ni.psf.check(est, 0.065, 0.065).ok


def test_from_beads_3d_denoising_and_lateral_symmetry_reduce_the_error():
    # 0.15 µm steps: the exact-defocus PSF is ~30% shorter in z than the paraxial one this test was written for
    big = ni.psf.widefield((25, 29, 29), wavelength_um=0.52, na=1.4, pixel_size_um=0.1, z_step_um=0.15)
    truth = big[5:-5, 5:-5, 5:-5] / big[5:-5, 5:-5, 5:-5].sum()
    img, _ = ni.datasets.beads((24, 120, 120), big, 12, (19, 23, 23), photons=50000, background=5, seed=1)

    def error(**kwargs):
        est = ni.psf.from_beads(img, truth.shape, **kwargs)
        return np.linalg.norm(est - truth) / np.linalg.norm(truth)

    plain, denoised, symmetric = error(denoise=False), error(), error(lateral_symmetry=True)
    assert denoised < 0.9 * plain and symmetric < 0.9 * denoised
    assert denoised < 0.1


def test_detect_beads_rejects_neighbors_edges_and_clipped():
    img = np.zeros((80, 80), np.uint16)
    psf = (ni.psf.gaussian((9, 9), 1.5) * 2e4).astype(np.uint16)
    for c in [(20, 20), (20, 26), (60, 60), (3, 40)]:  # a close pair, one good bead, one at the edge
        sl = tuple(slice(max(ci - 4, 0), ci + 5) for ci in c)
        img[sl] += psf[tuple(slice(4 - (ci - s.start), 9) for ci, s in zip(c, sl))]
    img[40:43, 15:18] = np.iinfo(np.uint16).max  # a saturated blob
    found = ni.psf.detect_beads(img, (9, 9), min_separation=10)
    assert found.tolist() == [[60, 60]]


def test_resample_matches_a_psf_generated_at_the_target_pixel_size():
    coarse = ni.psf.widefield((41, 41), wavelength_um=0.52, na=1.4, pixel_size_um=0.1)
    fine = ni.psf.widefield((63, 63), wavelength_um=0.52, na=1.4, pixel_size_um=0.065)
    out = ni.psf.resample(coarse, 0.1, 0.065, shape=(63, 63))
    assert out.shape == (63, 63) and abs(out.sum() - 1) < 1e-5
    assert np.linalg.norm(out - fine) / np.linalg.norm(fine) < 0.02
    back = ni.psf.resample(out, 0.065, 0.1, shape=(41, 41))
    assert np.linalg.norm(back - coarse) / np.linalg.norm(coarse) < 0.02


def test_check_refuses_a_voxel_mismatch_and_reports_problems():
    h = ni.psf.widefield((3, 25, 25), wavelength_um=0.52, na=1.4, pixel_size_um=0.1, z_step_um=0.3)
    with pytest.raises(ValueError, match="resample"):
        ni.psf.check(h, (0.3, 0.1, 0.1), (0.3, 0.065, 0.065))
    report = ni.psf.check(np.roll(h, 2, axis=2) * 2, (0.3, 0.1, 0.1), (0.3, 0.1, 0.1))
    assert not report.ok and len(report.messages) == 3  # not normalized, off-center, cut short in z
    assert "z-planes" in str(report)


def test_otf_is_one_at_zero_frequency_and_band_limited():
    h = ni.psf.widefield((64, 64), wavelength_um=0.5, na=1.0, pixel_size_um=0.05)
    H = ni.psf.otf(h)
    assert H.shape == (64, 64) and abs(H[32, 32] - 1) < 1e-5
    f = np.fft.fftshift(np.fft.fftfreq(64, d=0.05))
    fy, fx = np.meshgrid(f, f, indexing="ij")
    beyond = np.hypot(fy, fx) > 1.15 * 2 * 1.0 / 0.5  # past the cut-off 2 NA / λ
    assert np.abs(H[beyond]).max() < 1e-2


def test_widefield_like_takes_optics_from_file_metadata(tmp_path):
    ni.io.imwrite(tmp_path / "s.ome.tif", np.zeros((5, 32, 32), np.float32), pixel_size_um=(0.25, 0.08, 0.08),
                  metadata={"na": 1.2, "wavelength_um": 0.6, "immersion_index": 1.33})
    img = ni.io.imread(tmp_path / "s.ome.tif")
    h = ni.psf.widefield_like(img, (9, 21, 21))
    ref = ni.psf.widefield((9, 21, 21), wavelength_um=0.6, na=1.2, pixel_size_um=0.08, z_step_um=0.25, ni=1.33)
    np.testing.assert_allclose(h, ref, rtol=1e-5, atol=1e-8)
    bare = ni.io.Image(np.zeros((32, 32)), (0.1, 0.1), "yx")
    with pytest.raises(ValueError, match="na or wavelength_um"):
        ni.psf.widefield_like(bare, (15, 15))
