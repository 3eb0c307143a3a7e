"""Richardson–Lucy per-iteration cost as ratios measured in one process (for loaded machines).

The FFT floors (two convolutions on the image's size and on the padded grid), our RL with its defaults (since
2026-12-07 ``object_domain="auto"``: the cosine-transform loop for a reflect blur with a symmetric PSF in 3D; the padded grid in 2D since the lead's quiet 2-thread run of 2026-12-07 12:00 UTC), the padded-grid loop
(``object_domain="padded"``) and the cosine-transform loop (``object_domain="boundary"``) are timed alternately,
iteration by iteration; the 20th percentile of each is reported, with their ratios. ``floor_grid`` is the operator's
padded grid (``A.grid``, 2·3·5-smooth), ``floor_rl`` RL's own grid (since 2026-12-07 the shorter 2·3·5·7-smooth length
where there is one: 560² instead of 576² for 512² / 31²; ``_rl_grid``).

    PYTHONPATH=src python benchmarks/bench_rl_ratio.py CASE [THREADS] [cpu]    # CASE: 0, 1, 2 as in bench_rl.py

Each case runs in its own process, and the floor's 20th percentile moved by up to 1.33× between processes on the quiet
machine: compare the two 2D cases with ``bench_rl_same_floor.py`` (one process, one floor).

``cpu`` times process CPU seconds instead of wall seconds: with one thread on a loaded machine that leaves out the
time spent waiting for a core (memory contention still counts); with more threads it counts every thread's CPU time.

scikit-image's ``richardson_lucy`` is timed in the same rotation (whole calls of n/3 iterations): ``skimage/new``
times the iteration counts to scikit-image's best PSNR (``bench_rl.py`` (b)) gives the time-to-best speed-up.
"""
import sys, time, numpy as np, torch
sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.abspath(__file__)))
from napari_invimg.methods.classical import _rl_grid
from bench_rl import make_case, CASES, floor_timer, rl_timer
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv)>2 else 1)
clock=time.process_time if 'cpu' in sys.argv[3:] else time.perf_counter
name=list(CASES)[int(sys.argv[1])]
x, psf, A, noise, y = make_case(name)
yt=torch.from_numpy(np.asarray(y,dtype=np.float32))
Q=20
def floor(shape): return floor_timer(shape, psf, clock)
def rl(op, domain="auto"): return rl_timer(yt, op, noise, clock, object_domain=domain)
def skimage_rl(n):  # scikit-image's RL, seconds per iteration of a whole call (it has no per-iteration hook)
    from skimage.restoration import richardson_lucy
    k=max(n//3,2); t=clock(); richardson_lucy(np.clip(y,0,None), psf, num_iter=k, clip=False)
    return [(clock()-t)/k]*(n//3)
fs={'floor_img':floor(A.in_shape),'floor_grid':floor(A.grid),'floor_rl':floor(_rl_grid(A)),'new':rl(A, 'auto'),'padded':rl(A, 'padded'),'cosine':rl(A, 'boundary'),'skimage':skimage_rl}
n=15 if A.ndim==2 else 4
res={k:[] for k in fs}
for r in range(4 if A.ndim==2 else 2):
    for k,f in fs.items(): res[k]+=f(n)
best={k:np.percentile(v,Q) for k,v in res.items()}
print(name, torch.get_num_threads(), 'threads', 'CPU s' if clock is time.process_time else 'wall s', 'load %.1f'%__import__('os').getloadavg()[0], f'p{Q} of', len(res['new']), {k:round(v,5) for k,v in best.items()}, 'new/floor_img %.2f new/floor_grid %.2f new/floor_rl %.2f padded/floor_grid %.2f padded/new %.2f cosine/new %.2f skimage/new %.2f'%(best['new']/best['floor_img'],best['new']/best['floor_grid'],best['new']/best['floor_rl'],best['padded']/best['floor_grid'],best['padded']/best['new'],best['cosine']/best['new'],best['skimage']/best['new']))
