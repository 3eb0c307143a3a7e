"""Black-hole imaging benchmark: bundled sky models observed with EHT 2017 coverage of M87*.

For each model: a calibrated observation (thermal noise from the SEFDs) and a gain-corrupted one (10%
station amplitude errors and random station phases per scan, on top of the thermal noise). Prints
NXCORR with the truth (raw, and after the best shift, as eht-imaging compares images), NXCORR with the
truth blurred to the nominal resolution, and seconds, for

  dirty      natural-weighted dirty image of the calibrated data
  clean      Högbom CLEAN (uniform weighting, restoring beam fitted to the dirty beam), calibrated data
  rml vis    our rml on complex visibilities, calibrated data
  rml clos   our rml on closure phases + log closure amplitudes, gain-corrupted data
  dip / bayes_dip   (when registered) on complex visibilities, calibrated data
  ehtim vis / ehtim clos   eht-imaging's Imager on the same data read from our UVFITS file (when importable):
             direct DFT, the regularisers of the EHT 2019 pipeline (simple MEM, TV, TSV, flux, centroid),
             two blur-and-restart rounds, the same prior Gaussian and total flux.

    PYTHONPATH=src python benchmarks/bench_blackhole.py [--quick] [--no-ehtim]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import napari_invimg as ni
import napari_invimg.blackhole as bh

FOV, NPIX = 160.0, 64
PRIOR_FWHM = 80.0


def score(image: np.ndarray, truth: np.ndarray, blurred: np.ndarray) -> tuple[float, float, float]:
    return (ni.metrics.nxcorr(image, truth), bh.nxcorr_aligned(image, truth), bh.nxcorr_aligned(image, blurred))


def ehtim_image(path: Path, data: str, flux: float, iterations: int, rounds: int) -> np.ndarray:
    """eht-imaging's Imager on the UVFITS file ``path`` with EHT-pipeline-like settings."""
    import ehtim as eh

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = eh.obsdata.load_uvfits(str(path))
        prior = eh.image.make_empty(NPIX, FOV * eh.RADPERUAS, obs.ra, obs.dec, rf=obs.rf, source=obs.source,
                                    mjd=obs.mjd)
        prior = prior.add_gauss(flux, (PRIOR_FWHM * eh.RADPERUAS, PRIOR_FWHM * eh.RADPERUAS, 0, 0, 0))
        if data == "vis":
            data_term = {"vis": 100}
        else:
            data_term = {"cphase": 100, "logcamp": 100}
        reg_term = {"simple": 1, "tv": 1, "tv2": 1, "flux": 100, "cm": 10}
        imgr = eh.imager.Imager(obs, prior, prior_im=prior, flux=flux, data_term=data_term, reg_term=reg_term,
                                maxit=iterations, ttype="direct", norm_reg=True, epsilon_tv=1e-10,
                                show_updates=False)
        out = imgr.make_image_I(show_updates=False, niter=rounds, blur_frac=1.0)
    return np.asarray(out.imvec, dtype=np.float64).reshape(out.ydim, out.xdim)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the ring only, no eht-imaging")
    parser.add_argument("--no-ehtim", action="store_true", help="skip eht-imaging even when importable")
    parser.add_argument("--models", default="ring,crescent,double")
    args = parser.parse_args()
    models = ["ring"] if args.quick else args.models.split(",")
    try:
        import ehtim  # noqa: F401

        have_ehtim = not (args.quick or args.no_ehtim)
    except ImportError:
        have_ehtim = False
    available = ni.methods()
    # warm-up: the first torch optimiser pulls in torch._dynamo (seconds, once per process)
    warm = bh.simulate(bh.models.ring(), seed=9)
    ni.reconstruct(warm.vis, bh.Interferometer(warm), "rml", noise=ni.noise.Gaussian(warm.sigma), iterations=5,
                   rounds=1)

    rows = []
    print(f"{'model':9s} {'method':12s} {'NXCORR':>7s} {'aligned':>8s} {'blurred':>8s} {'seconds':>8s}  note")
    tmp = Path(tempfile.mkdtemp())
    for name in models:
        truth = bh.models.get(name, NPIX, FOV)
        cal = bh.simulate(truth, FOV, seed=0)
        bad = bh.simulate(truth, FOV, gain_error=0.1, phase_error=True, seed=0)
        blurred = bh.blur_to_resolution(truth, FOV, cal.resolution_uas)
        A = bh.Interferometer(cal, NPIX, FOV)
        C = bh.Closures(bad, NPIX, FOV)
        noise_vis, noise_clos = ni.noise.Gaussian(cal.sigma), ni.noise.Gaussian(C.sigma)
        runs = []
        t = time.perf_counter()
        dirty = A.dirty_image(cal.vis, A.weights(cal.sigma, "natural"))
        runs.append(("dirty", dirty, time.perf_counter() - t, ""))
        for method, kw in (("clean", {}), ("rml", {"data": "vis"})):
            rec = ni.reconstruct(cal.vis, A, method, noise=noise_vis)
            label = "rml vis" if method == "rml" else method
            note = f"χ²ᵥ {rec.info['reduced_chi2']['visibility']:.2f}" if method == "rml" else ""
            runs.append((label, rec.mean, rec.info["seconds"], note))
        rec = ni.reconstruct(C.data, C, "rml", noise=noise_clos)
        chi = rec.info["reduced_chi2"]
        runs.append(("rml clos", rec.mean, rec.info["seconds"],
                     f"χ² cp {chi['closure phase']:.2f} lca {chi['log closure amplitude']:.2f}"))
        for method in ("dip", "bayes_dip"):
            if method in available:
                rec = ni.reconstruct(cal.vis, A, method, noise=noise_vis, seed=0)
                note = rec.info.get("uncertainty") or ""
                if rec.std is not None:  # does the std cover the truth at the array's resolution?
                    note += (f"; 90% coverage of the blurred truth {ni.diagnostics.coverage(rec, blurred, 0.9):.3f}, "
                             f"std–error corr. {ni.diagnostics.std_error_correlation(rec, blurred):.2f}")
                runs.append((method, rec.mean, rec.info["seconds"], note))
        if have_ehtim:
            flux = C.total_flux
            for label, obs, data in (("ehtim vis", cal, "vis"), ("ehtim clos", bad, "closures")):
                path = obs.save_uvfits(tmp / f"{name}_{data}.uvfits")
                t = time.perf_counter()
                image = ehtim_image(path, data, flux, iterations=200, rounds=2)
                runs.append((label, image, time.perf_counter() - t, "eht-imaging 1.3.2, direct DFT"))
        for label, image, seconds, note in runs:
            raw, aligned, blur = score(image, truth, blurred)
            rows.append((name, label, raw, aligned, blur, seconds))
            print(f"{name:9s} {label:12s} {raw:7.3f} {aligned:8.3f} {blur:8.3f} {seconds:8.1f}  {note}", flush=True)
    print(f"\nEHT 2017 coverage of M87*: {len(cal)} visibilities, {cal.n_scans} scans, "
          f"{len(cal.station_names)} stations, nominal resolution {cal.resolution_uas:.1f} µas; "
          f"{C.n_phases} closure phases, {C.n_amplitudes} log closure amplitudes (gain-corrupted set).")


if __name__ == "__main__":
    main()
