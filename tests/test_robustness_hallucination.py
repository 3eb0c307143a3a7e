"""ni.diagnostics.robustness (perturbed forward model, nominal A) and the hallucination map (null-space part)."""

from __future__ import annotations

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.methods._perturb import mask_kind, perturb_noise, perturb_operator, scale_psf


def _blur(shape=(48, 48), sigma=2.0):
    return ni.operators.Blur(ni.psf.gaussian((15, 15), sigma), shape)


def test_scale_psf_widens_the_psf():
    psf = ni.psf.gaussian((21, 21), 2.0)
    wide = scale_psf(psf, 1.2)
    yy = np.arange(21) - 10
    var = lambda h: float((h.sum(1) * yy**2).sum())  # noqa: E731
    assert wide.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.sqrt(var(wide) / var(psf)) == pytest.approx(1.2, abs=0.03)
    with pytest.raises(ValueError, match="positive"):
        scale_psf(psf, 0.0)


def test_perturbations_of_mri_masks_and_noise():
    A = ni.mri.CartesianMRI(ni.mri.mask("equispaced", (32, 32), acceleration=4, seed=0))
    assert mask_kind(A.mask_array) == "equispaced"
    assert mask_kind(ni.mri.mask("poisson", (32, 32), acceleration=4, seed=0)) == "poisson"
    B = perturb_operator(A, "acceleration", 8)
    assert B.acceleration > A.acceleration * 1.5
    C = perturb_operator(A, "mask", "random")
    assert C.mask_array.shape == A.mask_array.shape and not np.array_equal(C.mask_array, A.mask_array)
    n2 = perturb_noise(ni.noise.PoissonGaussian(0.01, 0.02), 2.0)
    assert n2.gain == pytest.approx(0.04) and n2.sigma == pytest.approx(0.04)
    with pytest.raises(ValueError, match="Blur"):
        perturb_operator(A, "psf_scale", 1.1)


def test_robustness_rows():
    x = ni.datasets.fluorescence((40, 40), seed=3)
    A, noise = _blur((40, 40)), ni.noise.Gaussian(0.01)
    rows = ni.diagnostics.robustness("richardson_lucy", A, noise, [x], perturb={"psf_scale": [0.8, 1.2],
                                     "noise_scale": [2.0]}, seed=0, iterations=30)
    assert [(r["perturbation"], r["value"]) for r in rows] == [("nominal", None), ("psf_scale", 0.8),
                                                              ("psf_scale", 1.2), ("noise_scale", 2.0)]
    assert rows[0]["psnr_change"] == 0.0
    assert all(np.isfinite(r["psnr"]) for r in rows)
    # data blurrier than the model: the reconstruction loses
    assert rows[2]["psnr_change"] < -0.3
    assert "psf_scale" in ni.diagnostics.format_robustness(rows, "richardson_lucy")


def test_robustness_cancel():
    x = ni.datasets.fluorescence((32, 32), seed=3)
    with pytest.raises(ni.Cancelled):
        ni.diagnostics.robustness("wiener", _blur((32, 32)), ni.noise.Gaussian(0.01), [x],
                                  progress=lambda *a: False)


def test_hallucination_flags_a_planted_null_space_feature():
    shape = (48, 48)
    x = ni.datasets.fluorescence(shape, seed=2)
    A, noise = _blur(shape), ni.noise.Gaussian(0.01)
    y = ni.simulate(x, A, noise, seed=0)
    checker = np.indices(shape).sum(0) % 2 * 2.0 - 1.0  # 0.5 cycles/pixel: the Gaussian blur erases it
    patch = np.zeros(shape, np.float32)
    patch[10:20, 10:20] = 0.3
    planted = x + patch * checker
    bump = x + 0.3 * np.exp(-((np.indices(shape) - 34.0) ** 2).sum(0) / 30.0)
    h_plain = ni.diagnostics.hallucination(x, y, A, noise)
    h_planted = ni.diagnostics.hallucination(planted, y, A, noise)
    h_bump = ni.diagnostics.hallucination(bump, y, A, noise)
    for h in (h_plain, h_planted, h_bump):
        assert 0.0 <= h.fraction_flagged <= 1.0 and h.map.shape == shape
    assert h_planted.flagged[11:19, 11:19].mean() > 0.9
    assert h_planted.fraction_flagged > h_plain.fraction_flagged + 0.02
    assert h_bump.flagged[30:38, 30:38].mean() < 0.2  # a smooth, well-measured change is not a null-space feature
    amap, info = h_planted
    assert info["fraction_flagged"] == h_planted.fraction_flagged
    # a std that explains the feature removes the flag
    rec = ni.Reconstruction(mean=planted, std=np.full(shape, 1.0, np.float32), samples=None, info={})
    assert ni.diagnostics.hallucination(rec, y, A, noise).fraction_flagged < 0.01


def test_hallucination_in_unmeasured_pixels_and_errors():
    shape = (32, 32)
    mask = np.ones(shape, bool)
    mask[8:16, 8:16] = False
    A, noise = ni.operators.Inpainting(mask), ni.noise.Gaussian(0.01)
    x = ni.datasets.fluorescence(shape, seed=1)
    y = ni.simulate(x, A, noise, seed=0)
    rec = x.copy()
    rec[10:14, 10:14] += 0.5
    h = ni.diagnostics.hallucination(rec, y, A, noise)
    assert h.flagged[10:14, 10:14].all() and not h.flagged[mask].any()
    with pytest.raises(ValueError, match="shape"):
        ni.diagnostics.hallucination(np.zeros((5, 5)), y, A, noise)
