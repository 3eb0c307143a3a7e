"""A cheap screen of ``gmrf_hmc`` on closures: the linearized proxy of RESULTS.md §7 (helpers closure6, closure7, closure8).

The closure residuals are linearized at the posterior mean (5 Gauss–Newton re-linearizations, ``CollapsedGMRF``), θ =
(σ, ρ) is put at the mode of its marginal, and 300 exact draws of ε | θ, y (Matheron's rule) with F from its prior are
scored in the closure gauge as ``bench_blackhole_posterior.py`` scores the sampler (cov G overall (source / background),
z90 G, corr G), plus the background split into "near" (blurred truth 0.5–5% of its peak) and "far" (< 0.5%). About
6–9 CPU s a model at 32² (the full sampler: 250–280 CPU s). Screen on the random family (validation), never on the
scored models.

    PYTHONPATH=src:benchmarks OMP_NUM_THREADS=1 python benchmarks/screen_closure_posterior.py random0,random1 0,1,2 [opt=value ...]

Options: g=G (high_frequency_gain, default 10); r=R (field amplitude a = m (1_S + R 1_B): a background/source ratio,
S = m > t·max m) or r=grid (log r on a grid with prior N(0, 1), the draws a mixture over the grid weighted by the
marginal with the Laplace volume of (σ, ρ)); t=T (0.05); amp=1 (amplitude = the proxy's posterior mean, clipped at 0)
with ab=B (that amplitude blurred to B × the resolution); bw=W (the gain's blur at W × the resolution); mb=B
(``mean_blur``); rc=C (the prior centre of ρ at C × the resolution); af=K (the amplitude plus K × m's peak × a
Gaussian of 80 µas: an additive broad part); a1=1 (amplitude = the mean image at blur 1 while the mean is at ``mb``).
"""

import sys, time, math
import numpy as np, torch
import napari_invimg as ni
import napari_invimg.blackhole as bh
from napari_invimg.blackhole.posterior import GMRFPosterior, compact_mean_image
from napari_invimg.blackhole.collapsed import CollapsedGMRF
from napari_invimg.uncertainty import Reconstruction
from bench_blackhole_posterior import sky, score, FOV

torch.set_num_threads(1)

def fit(post, relin=5):
    col = CollapsedGMRF(post)
    th = post.start()[-3:].clone()
    for _ in range(relin):
        th, cov = col.mode(th)
        U, chol = col.neg_log_posterior(th[None])
        eps = col.conditional_mean(th[None], chol)
        col.linearize(col.unit_image(th[None], eps)[0])
    th, cov = col.mode(th)
    U, chol = col.neg_log_posterior(th[None])
    # Laplace log volume of (σ, ρ) (F's is the same everywhere)
    logvol = 0.5 * float(torch.logdet(cov[:2, :2])) if float(torch.det(cov[:2, :2])) > 0 else 0.0
    return col, th, float(U[0]), chol, logvol

def draws_of(post, col, th, chol, n, gen):
    h = th[None].repeat(n, 1)
    h[:, 2] = math.log(post.flux0) + post.flux_sd * torch.randn(n, generator=gen, dtype=h.dtype)
    ch = chol.expand(n, -1, -1)
    eps = col.draw_field(h, ch, gen)
    return post.image(torch.cat([eps, h], -1)).numpy()

def run(name, seed, g=10.0, r=None, t=0.05, ndraw=300, npix=32, verbose=True, amp_iter=0, amp_blur=0.0, bw=1.0, mb=1.0, a1=False, rc=1.0, af=0.0):
    cpu = time.process_time()
    truth = sky(name, npix)
    obs = bh.simulate(truth, FOV, gain_error=0.1, phase_error=True, seed=seed)
    A = bh.Closures(obs, npix, FOV)
    y, noise = A.data, ni.noise.Gaussian(A.sigma)
    res = obs.resolution_uas
    pilot = ni.reconstruct(y, A, "rml", noise=noise, seed=seed)
    y = torch.as_tensor(np.asarray(y))
    m = compact_mean_image(np.asarray(pilot.mean), FOV, res, 0.1, mb)
    m1 = compact_mean_image(np.asarray(pilot.mean), FOV, res, 0.1, 1.0)
    kw = dict(prior_fwhm_uas=80.0, order=1, total_flux=None, flux_uncertainty=0.1, systematic=0.0, link="linear",
              mean_image=m, centroid_sd=0.02, high_frequency_gain=g)
    support = m > t * m.max()
    gen = torch.Generator().manual_seed(1000 + seed)
    def rebuild(post):
        if bw != 1.0 and g > 0:  # the gain's blur at bw x the resolution
            k = torch.fft.fftfreq(npix, dtype=torch.float64)
            k2 = k[:, None] ** 2 + k[: npix // 2 + 1][None, :] ** 2
            blur2 = torch.exp(-2 * (math.pi * bw * math.exp(post.rho0)) ** 2 * k2 / (4 * math.log(2)))
            post.boost = 1 + g * (1 - blur2)
        post.rho0 = post.rho0 + math.log(rc)  # the prior centre of ρ at rc × the resolution
        return post
    _GP = GMRFPosterior
    GP = lambda *a, **k: rebuild(_GP(*a, **k))
    if r is None:
        amp = m1 if a1 else None
        if af > 0:  # an additive broad part of the amplitude: af × m's peak × the Gaussian of 80 µas
            broad = bh.gaussian_image(npix, FOV, 80.0)
            amp = (m1 if a1 else m) + af * m.max() * broad / broad.max()
        post = GP(y, A, noise, amplitude_image=amp, **kw)
        col, th, U, chol, lv = fit(post)
        for _ in range(amp_iter):  # the field's amplitude = the posterior mean unit image (clipped at 0, blurred by amp_blur × res)
            _, ch0 = col.neg_log_posterior(th[None])
            u = col.unit_image(th[None], col.conditional_mean(th[None], ch0))[0].reshape(npix, npix).numpy()
            a = np.maximum(u, 0.0)
            if amp_blur > 0:
                a = bh.blur_to_resolution(a, FOV, amp_blur * res)
            post = GP(y, A, noise, amplitude_image=a, **kw)
            col, th, U, chol, lv = fit(post)
        X = draws_of(post, col, th, chol, ndraw, gen)
        extra = f"σ {math.exp(th[0]):.2f} ρ {math.exp(th[1]):.2f}px"
    else:
        rs = [float(r)] if r != "grid" else list(np.exp(np.linspace(np.log(0.1), np.log(3.0), 8)))
        fits = []
        for rr in rs:
            post = GP(y, A, noise, amplitude_image=m * (support + rr * ~support), **kw)
            col, th, U, chol, lv = fit(post)
            fits.append((rr, post, col, th, U + 0.5 * math.log(rr) ** 2 - lv, chol))
        vals = np.array([f[4] for f in fits])
        wts = np.exp(-(vals - vals.min())); wts /= wts.sum()
        counts = np.random.default_rng(seed).multinomial(ndraw, wts)
        X = np.concatenate([draws_of(f[1], f[2], f[3], f[5], c, gen) for f, c in zip(fits, counts) if c > 0])
        best = fits[int(np.argmax(wts))]
        extra = (f"r* {best[0]:.2f} (w {wts.max():.2f}) σ {math.exp(best[3][0]):.2f} ρ {math.exp(best[3][1]):.2f}px "
                 f"-logp {' '.join(f'{v - vals.min():.1f}' for v in vals)}")
    rec = Reconstruction(X.mean(0), X.std(0, ddof=1), X, {})
    target = bh.centroid(rec.mean)
    tr = bh.shift_to_centroid(truth, target)
    sc = score(rec, tr, res, unit=True, flux_prior=(None, 0.1))
    bu = bh.blur_to_resolution(tr / tr.sum(), FOV, res)
    sm = bh.blur_reconstruction(bh.closure_gauge(rec, target), FOV, res)
    inside = np.abs(np.asarray(sm.mean) - bu) <= ni.diagnostics.interval_halfwidth(sm, 0.9)
    near = (bu <= 0.05 * bu.max()) & (bu > 0.005 * bu.max()); far = bu <= 0.005 * bu.max()
    extra += f" | near {inside[near].mean():.3f} ({near.mean():.2f} of px) far {inside[far].mean():.3f} ({far.mean():.2f})"
    line = (f"{name:9s} s{seed} g{g:g} r{r} t{t} amp{amp_iter}/{amp_blur} bw{bw} mb{mb} a1{int(a1)} rc{rc} af{af}: covG {sc['cov_g']:.3f} ({sc['cov_g_source']:.3f}/{sc['cov_g_background']:.3f}) "
            f"z90G {sc['z90_g']:.2f} corrG {sc['corr_g']:.2f} NX {sc['nxcorr_b']:.3f} {extra} cpu {time.process_time() - cpu:.1f}")
    if verbose:
        print(line, flush=True)
    return sc

if __name__ == "__main__":
    models = sys.argv[1].split(","); seeds = [int(s) for s in sys.argv[2].split(",")]
    opts = dict(a.split("=") for a in sys.argv[3:])
    g = float(opts.get("g", 10)); t = float(opts.get("t", 0.05))
    r = opts.get("r"); r = None if r is None else (r if r == "grid" else float(r))
    for mname in models:
        for s in seeds:
            run(mname, s, g=g, r=r, t=t, amp_iter=int(opts.get('amp', 0)), amp_blur=float(opts.get('ab', 0)), bw=float(opts.get('bw', 1)), mb=float(opts.get('mb', 1)), a1=bool(int(opts.get('a1', 0))), rc=float(opts.get('rc', 1)), af=float(opts.get('af', 0)))
