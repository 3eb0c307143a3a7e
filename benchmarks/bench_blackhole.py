"""Black-hole imaging benchmark: bundled sky models observed with EHT 2017 coverage of M87*.

For each model: a calibrated observation (thermal noise from the SEFDs) and a gain-corrupted one (10%
station amplitude errors and random station phases per scan, on top of the thermal noise). Prints
NXCORR with the truth (raw, and after the best shift, as eht-imaging compares images), NXCORR with the
truth blurred to the nominal resolution, and seconds, for

  dirty      natural-weighted dirty image
  clean      Högbom CLEAN (uniform weighting, restoring beam fitted to the dirty beam)
  rml_vis    our rml on complex visibilities
  rml_clos   our rml on closure phases + log closure amplitudes (immune to the station gains)
  dip, bayes_dip   on complex visibilities (``--dip-iterations`` caps their iterations)
  ehtim_vis, ehtim_clos   eht-imaging's Imager on the same data read from our UVFITS file (when importable):
             direct DFT, the regularizers of the EHT 2019 pipeline (simple MEM, TV, TSV, flux, centroid),
             two blur-and-restart rounds, the same prior Gaussian and total flux.

each on the calibrated data and on the gain-corrupted data (``--data``). For a method with a std, the
note gives the coverage of the central 90% interval (``diagnostics.coverage``) and the std–error
correlation against the truth and against the truth blurred to the nominal resolution, both with the
method's own std ("std"), and — the like-for-like comparison with the blurred truth — with the samples
blurred to the same resolution first, their mean and std taken over the blurred samples ("blurred
samples", :func:`napari_invimg.blackhole.blur_reconstruction`).

    PYTHONPATH=src python benchmarks/bench_blackhole.py [--quick] [--no-ehtim] [--models ring,crescent]
        [--methods rml_vis,rml_clos,...] [--data calibrated,gains] [--dip-iterations 500]
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


METHODS = ("dirty", "clean", "rml_vis", "rml_clos", "dip", "bayes_dip", "ehtim_vis", "ehtim_clos")


def uncertainty_note(rec, truth: np.ndarray, blurred: np.ndarray, resolution_uas: float) -> str:
    """Coverage (90%) and std–error correlation of the truth and of the blurred truth; the latter also with the
    samples blurred to the resolution first."""
    cov, corr = ni.diagnostics.coverage, ni.diagnostics.std_error_correlation
    note = (f"std: cov(truth) {cov(rec, truth, 0.9):.3f} corr {corr(rec, truth):.2f}, "
            f"cov(blurred truth) {cov(rec, blurred, 0.9):.3f} corr {corr(rec, blurred):.2f}")
    if rec.samples is not None and len(rec.samples) >= 2:
        smooth = bh.blur_reconstruction(rec, FOV, resolution_uas)
        note += (f"; blurred samples: cov(blurred truth) {cov(smooth, blurred, 0.9):.3f} "
                 f"corr {corr(smooth, blurred):.2f}")
    return note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the ring only, no eht-imaging")
    parser.add_argument("--no-ehtim", action="store_true", help="skip eht-imaging even when importable")
    parser.add_argument("--models", default="ring,crescent,double")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"any of {','.join(METHODS)}")
    parser.add_argument("--data", default="calibrated,gains", help="calibrated, gains or both")
    parser.add_argument("--dip-iterations", type=int, default=None, help="iteration cap of dip and bayes_dip")
    args = parser.parse_args()
    models = ["ring"] if args.quick else args.models.split(",")
    methods = args.methods.split(",")
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    try:
        import ehtim  # noqa: F401

        have_ehtim = not (args.quick or args.no_ehtim)
    except ImportError:
        have_ehtim = False
    available = ni.methods()
    dip_kw = {} if args.dip_iterations is None else {"iterations": args.dip_iterations}
    # warm-up: the first torch optimizer pulls in torch._dynamo (seconds, once per process)
    warm = bh.simulate(bh.models.ring(), seed=9)
    ni.reconstruct(warm.vis, bh.Interferometer(warm), "rml", noise=ni.noise.Gaussian(warm.sigma), iterations=5,
                   rounds=1)

    print(f"{'model':9s} {'method':11s} {'data':10s} {'NXCORR':>7s} {'aligned':>8s} {'blurred':>8s} "
          f"{'seconds':>8s}  note")
    tmp = Path(tempfile.mkdtemp())
    for name in models:
        truth = bh.models.get(name, NPIX, FOV)
        observations = {"calibrated": bh.simulate(truth, FOV, seed=0),
                        "gains": bh.simulate(truth, FOV, gain_error=0.1, phase_error=True, seed=0)}
        resolution = observations["calibrated"].resolution_uas
        blurred = bh.blur_to_resolution(truth, FOV, resolution)
        for data in args.data.split(","):
            obs = observations[data]
            A = bh.Interferometer(obs, NPIX, FOV)
            C = bh.Closures(obs, NPIX, FOV)
            noise_vis, noise_clos = ni.noise.Gaussian(obs.sigma), ni.noise.Gaussian(C.sigma)
            for method in methods:
                note = ""
                if method == "dirty":
                    t = time.perf_counter()
                    image = A.dirty_image(obs.vis, A.weights(obs.sigma, "natural"))
                    seconds = time.perf_counter() - t
                elif method.startswith("ehtim"):
                    if not have_ehtim:
                        continue
                    kind = "vis" if method == "ehtim_vis" else "closures"
                    path = obs.save_uvfits(tmp / f"{name}_{data}_{kind}.uvfits")
                    t = time.perf_counter()
                    image = ehtim_image(path, kind, C.total_flux, iterations=200, rounds=2)
                    seconds, note = time.perf_counter() - t, "eht-imaging 1.3.2, direct DFT"
                elif method == "rml_clos":
                    rec = ni.reconstruct(C.data, C, "rml", noise=noise_clos)
                    chi = rec.info["reduced_chi2"]
                    image, seconds = rec.mean, rec.info["seconds"]
                    note = f"χ² cp {chi['closure phase']:.2f} lca {chi['log closure amplitude']:.2f}"
                else:
                    registered = "rml" if method == "rml_vis" else method
                    if registered not in available:
                        continue
                    kw = {"data": "vis"} if method == "rml_vis" else dip_kw if method in ("dip", "bayes_dip") else {}
                    rec = ni.reconstruct(obs.vis, A, registered, noise=noise_vis, seed=0, **kw)
                    image, seconds = rec.mean, rec.info["seconds"]
                    if method == "rml_vis":
                        note = f"χ²ᵥ {rec.info['reduced_chi2']['visibility']:.2f}"
                    if rec.std is not None:
                        note = f"{rec.info.get('uncertainty')}; " + uncertainty_note(rec, truth, blurred, resolution)
                raw, aligned, blur = score(image, truth, blurred)
                print(f"{name:9s} {method:11s} {data:10s} {raw:7.3f} {aligned:8.3f} {blur:8.3f} {seconds:8.1f}  {note}",
                      flush=True)
    cal = bh.simulate(bh.models.ring(), FOV, seed=0)
    C = bh.Closures(bh.simulate(bh.models.ring(), FOV, gain_error=0.1, phase_error=True, seed=0), NPIX, FOV)
    print(f"\nEHT 2017 coverage of M87*: {len(cal)} visibilities, {cal.n_scans} scans, "
          f"{len(cal.station_names)} stations, nominal resolution {cal.resolution_uas:.1f} µas; "
          f"{C.n_phases} closure phases, {C.n_amplitudes} log closure amplitudes (gain-corrupted ring).")


if __name__ == "__main__":
    main()
