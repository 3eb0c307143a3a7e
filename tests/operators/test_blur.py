import warnings

import numpy as np
import pytest

import napari_invimg as ni
from napari_invimg.operators import Blur


@pytest.mark.parametrize("psf, message", [
    (np.full((3, 3), np.nan), "NaN"), (-np.ones((3, 3)), "positive"), (np.zeros((3, 3)), "positive"),
    (np.ones((17, 17)), "larger than the image"), (np.ones((3, 3, 3)), "dimensions"),
])
def test_blur_refuses_bad_psfs(psf, message):
    with pytest.raises(ValueError, match=message):
        Blur(psf, (16, 16))


@pytest.mark.parametrize("psf", [np.ones((4, 4)), ni.psf.gaussian((8, 8), 1.5), np.pad(np.ones((1, 1)), ((0, 2), (2, 0)))])
def test_blur_warns_when_the_psf_is_not_centred_on_its_middle_pixel(psf):
    with pytest.warns(UserWarning, match="centroid"):
        A = Blur(psf, (16, 16))
    assert np.isfinite(A.forward(np.ones((16, 16), np.float32))).all()


@pytest.mark.parametrize("psf", [ni.psf.gaussian((9, 9), 1.5), ni.psf.gaussian((5, 9, 9), (1.0, 1.5, 1.5)),
                                 np.pad(np.ones((1, 1)), ((1, 1), (1, 1)))])
def test_blur_is_silent_for_a_centred_odd_psf(psf):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Blur(psf, (8, 16, 16)[-psf.ndim:])
