import numpy as np
import pytest

import napari_invimg.blackhole as bh


@pytest.fixture(scope="module")
def obs():
    return bh.simulate(bh.models.crescent(), gain_error=0.1, phase_error=True, seed=2)


def test_uvfits_round_trip(obs, tmp_path):
    path = obs.save_uvfits(tmp_path / "crescent.uvfits")
    back = bh.load_uvfits(path)
    assert len(back) == len(obs)
    np.testing.assert_allclose(back.vis, obs.vis, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(back.sigma, obs.sigma, rtol=1e-5)
    np.testing.assert_allclose(back.u, obs.u, rtol=1e-6)
    np.testing.assert_allclose(back.time, obs.time, atol=1e-6)  # hours
    assert list(back.station1) == list(obs.station1) and back.ra_hours == pytest.approx(obs.ra_hours)
    assert back.mjd == obs.mjd and back.freq_hz == obs.freq_hz


def test_uvfits_bad_files(tmp_path):
    from astropy.io import fits

    empty = tmp_path / "empty.uvfits"
    fits.PrimaryHDU(np.zeros((2, 2))).writeto(empty)
    with pytest.raises(ValueError, match="no visibilities"):
        bh.load_uvfits(empty)
    with pytest.raises(ValueError, match="No file"):
        bh.load_uvfits(tmp_path / "missing.uvfits")


def _canonical(o):
    """Rows keyed by (second, station pair in name order), with vis and u conjugated/negated where swapped."""
    swap = o.station1 > o.station2
    vis = np.where(swap, np.conj(o.vis), o.vis)
    u = np.where(swap, -o.u, o.u)
    pairs = [(round(t * 3600), min(a, b), max(a, b)) for t, a, b in zip(o.time, o.station1, o.station2)]
    order = {p: k for k, p in enumerate(pairs)}
    return order, vis, u


def _match(a, b):
    (ka, va, ua), (kb, vb, ub) = _canonical(a), _canonical(b)
    common = sorted(set(ka) & set(kb))
    i, j = np.array([ka[c] for c in common]), np.array([kb[c] for c in common])
    return len(common), (va[i], vb[j]), (ua[i], ub[j]), (a.sigma[i], b.sigma[j])


@pytest.mark.slow
def test_uvfits_with_ehtim(obs, tmp_path, capfd):
    ehtim = pytest.importorskip("ehtim")
    ours = obs.save_uvfits(tmp_path / "ours.uvfits")
    theirs = ehtim.obsdata.load_uvfits(str(ours))
    assert len(theirs.data) == len(obs)
    np.testing.assert_allclose(np.sort(theirs.data["vis"].real), np.sort(obs.vis.real), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.sort(theirs.data["sigma"]), np.sort(obs.sigma), rtol=1e-5)
    written = tmp_path / "ehtim.uvfits"
    theirs.save_uvfits(str(written))
    back = bh.load_uvfits(written)
    n, vis, u, sigma = _match(obs, back)
    assert n == len(obs) == len(back)
    np.testing.assert_allclose(vis[1], vis[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sigma[1], sigma[0], rtol=1e-4)
    np.testing.assert_allclose(u[1], u[0], rtol=1e-6)


def _rewrite(path, out, change):
    from astropy.io import fits

    with fits.open(path) as h:
        hdus = fits.HDUList([x.copy() for x in h])
    change(hdus)
    hdus.writeto(out)
    return out


def _drop_an_column(name):
    from astropy.io import fits

    def change(h):
        t = h["AIPS AN"]
        h["AIPS AN"] = fits.BinTableHDU.from_columns([c for c in t.columns if c.name != name], header=t.header,
                                                     name="AIPS AN")
    return change


def test_uvfits_damaged_tables_and_values(obs, tmp_path):
    good = obs.save_uvfits(tmp_path / "good.uvfits")
    for column in ("ANNAME", "NOSTA"):
        bad = _rewrite(good, tmp_path / f"no_{column}.uvfits", _drop_an_column(column))
        with pytest.raises(ValueError, match=f"no {column} column"):
            bh.load_uvfits(bad)
    # without station positions the visibilities still load (imaging uses u, v), with a warning
    bad = _rewrite(good, tmp_path / "no_xyz.uvfits", _drop_an_column("STABXYZ"))
    with pytest.warns(RuntimeWarning, match="STABXYZ"):
        back = bh.load_uvfits(bad)
    assert len(back) == len(obs) and not back.stations.xyz.any()

    def zero_freq(h):
        h["AIPS AN"].header["FREQ"] = 0.0
    with pytest.raises(ValueError, match="frequency"):
        bh.load_uvfits(_rewrite(good, tmp_path / "freq0.uvfits", zero_freq))

    # a NaN value or an infinite weight under a positive weight is damage, not a flag: the row goes, with a warning
    # (an infinite weight used to become σ ≈ 1e-154, which outweighed every other visibility)
    def damage(h):
        h[0].data.data[0, ..., 0] = np.nan
        h[0].data.data[1, ..., 2] = np.inf
    with pytest.warns(RuntimeWarning, match="4 correlations"):
        back = bh.load_uvfits(_rewrite(good, tmp_path / "damaged.uvfits", damage))
    assert len(back) == len(obs) - 2 and np.isfinite(back.vis).all() and back.sigma.min() > 0.5 * obs.sigma.min()
