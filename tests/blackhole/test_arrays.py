import numpy as np
import pytest

import napari_invimg.blackhole as bh


def test_shipped_arrays_have_cited_sources():
    assert {"EHT2017", "EHT2018", "ngEHT"} <= set(bh.array_names())
    eht = bh.array("EHT2017")
    assert len(eht) == 8 and "ALMA" in eht.stations and "Sources" in eht.sources
    assert "GLT" in bh.array("EHT2018").stations and "ILLUSTRATIVE" in bh.array("ngEHT").sources
    with pytest.raises(ValueError, match="Unknown array"):
        bh.array("VLA")


def test_m87_coverage_with_eht2017():
    cov = bh.coverage("EHT2017", *bh.SOURCES["M87*"])
    stations = set(cov.station1) | set(cov.station2)
    assert "SPT" not in stations and len(stations) == 7  # SPT never rises above 10° for M87*
    assert 20 < cov.resolution_uas < 30  # λ / 8.7 Gλ ≈ 25 µas
    assert len(np.unique(cov.scan)) > 15
    # Sgr A* (dec −29°) is seen from the South Pole
    sgr = bh.coverage("EHT2017", *bh.SOURCES["Sgr A*"])
    assert "SPT" in set(sgr.station1) | set(sgr.station2)


def test_gmst_and_bad_schedule():
    # GMST at 2000-01-01 12h UT1 is 18.697 h (Astronomical Almanac)
    assert bh.gmst_hours(51544.5) == pytest.approx(18.697374558, abs=1e-6)
    with pytest.raises(ValueError, match="No two stations"):
        bh.coverage("EHT2017", 12.5, 12.4, elevation_min_deg=89.0)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        bh.coverage(date="11/04/2017")


def test_non_finite_schedule_and_simulation_inputs_are_named():
    # NaN passed every `<= 0` test: a NaN frequency went through, a NaN duration died in numpy's arange
    for kw, match in ((dict(freq_ghz=float("nan")), "frequency"), (dict(duration_hours=float("nan")), "duration_hours"),
                      (dict(start_hours=float("inf")), "start_hours"), (dict(elevation_min_deg=float("nan")), "elevation"),
                      (dict(elevation_min_deg=95.0), "elevation")):
        with pytest.raises(ValueError, match=match):
            bh.coverage(**kw)
    sky = bh.models.ring(npix=32)
    with pytest.raises(ValueError, match="gain amplitude error"):
        bh.simulate(sky, gain_error=float("nan"))  # ran without gains before
    with pytest.raises(ValueError, match="seed"):
        bh.simulate(sky, seed=-1)
