import numpy as np
import pytest

import napari_invimg as ni
import napari_invimg.blackhole as bh


@pytest.fixture(scope="module")
def ring():
    truth = bh.models.ring()
    return truth, bh.simulate(truth, seed=0), bh.simulate(truth, gain_error=0.1, phase_error=True, seed=0)


def test_rml_on_visibilities_images_the_ring(ring):
    truth, obs, _ = ring
    A = bh.Interferometer(obs)
    rec = ni.reconstruct(obs.vis, A, "rml", noise=ni.noise.Gaussian(obs.sigma), iterations=400, rounds=2)
    assert ni.metrics.nxcorr(rec.mean, truth) > 0.9
    assert rec.mean.min() >= 0 and rec.mean.sum() == pytest.approx(0.6, rel=0.1)
    assert rec.info["reduced_chi2"]["visibility"] < 2.5 and rec.info["uncertainty"] is None
    dirty = A.dirty_image(obs.vis, A.weights(obs.sigma))
    assert ni.metrics.nxcorr(rec.mean, truth) > ni.metrics.nxcorr(dirty, truth) + 0.3


def test_rml_on_closures_despite_station_gains(ring):
    truth, _, bad = ring
    C = bh.Closures(bad)
    rec = ni.reconstruct(C.data, C, "rml", noise=ni.noise.Gaussian(C.sigma), iterations=250, rounds=1)
    assert bh.nxcorr_aligned(rec.mean, truth) > 0.8
    chi2 = rec.info["reduced_chi2"]
    assert chi2["closure phase"] < 2 and chi2["log closure amplitude"] < 3


def test_clean_beats_the_dirty_image(ring):
    truth, obs, _ = ring
    A = bh.Interferometer(obs)
    rec = ni.reconstruct(obs.vis, A, "clean", noise=ni.noise.Gaussian(obs.sigma))
    dirty = A.dirty_image(obs.vis, A.weights(obs.sigma))
    assert ni.metrics.nxcorr(rec.mean, truth) > max(0.6, ni.metrics.nxcorr(dirty, truth))
    assert rec.info["components"] > 10 and 10 < rec.info["restoring_beam_uas"] < 40


def test_methods_refuse_mismatched_data(ring):
    _, _, bad = ring
    C = bh.Closures(bad)
    with pytest.raises(ValueError, match="linear"):
        ni.reconstruct(C.data, C, "clean", noise=ni.noise.Gaussian(C.sigma))
    with pytest.raises(ValueError, match="closure data"):
        ni.reconstruct(C.data, C, "rml", noise=ni.noise.Gaussian(C.sigma), data="vis")
    assert "rml" in ni.methods(domain="blackhole") and ni.method_info("rml")["domain"] == "blackhole"


def test_rml_screens_several_starts_on_closures(ring):
    truth, _, bad = ring
    C = bh.Closures(bad)
    kw = {"noise": ni.noise.Gaussian(C.sigma), "iterations": 40, "rounds": 2}
    one = ni.reconstruct(C.data, C, "rml", starts=1, **kw)
    three = ni.reconstruct(C.data, C, "rml", starts=3, **kw)
    assert three.info["iterations"] > one.info["iterations"]  # three screening rounds, then the best finishes
    assert np.isfinite(three.mean).all() and bh.nxcorr_aligned(three.mean, truth) > 0.5
