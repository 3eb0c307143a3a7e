"""Deep Image Prior and Deep Decoder: an untrained network ``G_θ`` fed a fixed random input ``z``, its weights
fitted so that ``A(G_θ(z))`` explains ``y`` under the noise likelihood; the network's bias towards natural
images, and stopping before it fits the noise, regularize.

Stopping needs no ground truth: an exponentially weighted running variance of the iterates (Wang, Li,
Zhuang, Chen & Sun, "Early stopping for deep image prior", TMLR 2023: the variance curve's minimum tracks
the PSNR peak) and the discrepancy principle (stop when ``noise.misfit(y, A(x)) ≤ τ E[misfit]``, Morozov 1966, with
the expectation at the noise level: 1 for Gaussian noise, above 1 for Poisson counts, ``NoiseModel.expected_misfit``).
The returned image is the running mean of the iterates at the selected iteration.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..nets.dip import DeepDecoder, HalfResolution, SkipNet
from ..nets.init import materialize
from ..operators.base import Operator
from ..operators.noise import NoiseModel
from .registry import ITERATIONS, Context, Estimate, Method, Param

__all__ = ["DIP", "DeepDecoderMethod", "DIPProblem", "StoppingRule", "RunningMoments", "fit_network", "random_input",
           "refuse_kspace", "skip_widths", "input_noise_param", "gradient_preconditioner", "STOP_PARAMS", "STOP_RULES",
           "IN_CHANNELS", "HALF_SMOOTH", "POSITIVE"]

#: channels of the random input of the skip networks
IN_CHANNELS = 8

#: smooth maps that ``dip(resolution="half")`` upsamples and mixes at full resolution (RESULTS §4, dip7: 8 maps
#: instead of 1 gained 0.4 dB at 600 iterations on the validation fluorescence)
HALF_SMOOTH = 8

STOP_RULES = ("auto", "variance", "discrepancy", "none")

#: stopping and optimizer parameters shared by the untrained-network methods
STOP_PARAMS = (
    Param("lr", float, 0.01, 1e-5, 1.0, doc="Adam learning rate", log_scale=True),
    Param("stop", str, "auto", choices=STOP_RULES,
          doc="auto: whichever of running variance and discrepancy comes first; none: run all iterations"),
    Param("tau", float, 1.0, 0.1, 10.0, doc="discrepancy target: stop when the misfit per measurement ≤ τ × the "
          "misfit expected at the noise level (1 for Gaussian noise, > 1 for Poisson counts)"),
    Param("window", int, 50, 2, 10000, doc="length (iterations) of the exponential window of the running mean/variance"),
    Param("patience", int, 200, 1, 100000, doc="stop when the running variance has not reached a new minimum for this many iterations"),
)


def input_noise_param(default: float) -> Param:
    """The std of the perturbation of ``z`` at each step (Ulyanov et al.'s regularizing input noise)."""
    return Param("input_noise", float, default, 0.0, 1.0, doc="std of the perturbation added to z at each step (0: off)")


@dataclass
class DIPProblem:
    """How network outputs become images for a given operator: channels, output scale and positivity.

    ``image = scale · act(out[:, 0])`` for real images (``act`` = softplus when ``positive``, else identity) and
    ``scale · (out[:, 0] + i out[:, 1])`` for complex ones. ``scale`` is the least-squares gain of a reference
    image (``Aᴴy`` for linear operators, a constant image otherwise), so the network works at unit scale.
    """

    shape: tuple[int, ...]
    complex_image: bool
    positive: bool
    scale: float

    @property
    def out_channels(self) -> int:
        return 2 if self.complex_image else 1

    @classmethod
    def for_operator(cls, y: torch.Tensor, A: Operator, noise: NoiseModel, positive: bool) -> DIPProblem:
        if A.ndim not in (2, 3):
            raise ValueError(f"Deep Image Prior reconstructs 2D or 3D images; this operator's images are {A.ndim}D.")
        with torch.no_grad():
            scale = _reference_scale(y, A, noise)
        return cls(tuple(A.in_shape), bool(A.in_complex), bool(positive and not A.in_complex), scale)

    def image(self, out: torch.Tensor) -> torch.Tensor:
        """Network output ``(B, C, *shape)`` -> images ``(B, *shape)``."""
        if self.complex_image:
            return self.scale * torch.complex(out[:, 0], out[:, 1])
        x = out[:, 0]
        return self.scale * (F.softplus(x) if self.positive else x)


def _reference_scale(y: torch.Tensor, A: Operator, noise: NoiseModel) -> float:
    """Typical magnitude of the image: the 99th percentile of ``|α r|`` with ``α`` the best gain for ``A(α r) ≈ y``."""
    if A.linear:
        r = A.apply_adjoint(y)
        Ar = A.apply(r)
        denom = float((Ar.abs() ** 2).sum())
        alpha = float((Ar.conj() * y).real.sum()) / denom if denom > 0 else 0.0
        mag = (alpha * r).abs().flatten()
        if alpha > 0:
            k = max(1, int(0.99 * mag.numel()))
            value = float(mag.kthvalue(k).values)
            if value > 0 and math.isfinite(value):
                return value
    # non-linear (or degenerate) operators: the constant image whose data fit best, on a log grid
    ones = torch.ones(A.in_shape, dtype=torch.complex64 if A.in_complex else torch.float32, device=y.device)
    best, best_c = math.inf, 1.0
    for c in torch.logspace(-6, 6, 49).tolist():
        try:
            m = noise.misfit(y, A.apply(c * ones))
        except (RuntimeError, ValueError):
            continue
        if math.isfinite(m) and m < best * (1 - 1e-6):
            best, best_c = m, c
    return best_c


class RunningMoments:
    """Exponentially weighted running mean ``m`` of the iterates and running variance ``v = E_w[‖x − m‖²] / N``
    (the windowed moving variance of Wang et al. 2023 with an exponential window of about ``window`` iterations)."""

    def __init__(self, window: int):
        self.beta = 1.0 - 1.0 / max(window, 2)
        self.mean: torch.Tensor | None = None
        self.var = 0.0

    def update(self, x: torch.Tensor) -> None:
        x = x.detach()
        if self.mean is None:
            self.mean = x.clone()
            return
        delta = float((x - self.mean).abs().pow(2).mean())
        self.mean = self.beta * self.mean + (1 - self.beta) * x
        self.var = self.beta * self.var + (1 - self.beta) * delta


class StoppingRule:
    """When to stop fitting, from the data misfit and the running variance of each iteration.

    ``variance``: select the iteration of the smallest running variance (counted once the window has filled; with
    ``margin`` > 0 a new minimum must lie that fraction below the selected one) and stop when no new minimum came for
    ``patience`` iterations. ``discrepancy``: stop (and select) at the first
    iteration after the window whose misfit is ≤ ``tau``. ``auto``: whichever comes first. ``none``: never.
    After :meth:`update`, ``improved`` says whether this iteration is the new selection; ``done`` whether to stop.
    """

    def __init__(self, stop: str, tau: float, window: int, patience: int, margin: float = 0.0):
        if stop not in STOP_RULES:
            raise ValueError(f"stop must be one of {STOP_RULES}, got {stop!r}.")
        self.use_variance = stop in ("auto", "variance")
        self.use_discrepancy = stop in ("auto", "discrepancy")
        self.tau, self.window, self.patience, self.margin = tau, window, patience, margin
        self.best_var = math.inf
        self.selected = 0
        self.improved = self.done = False
        self.reason = ""

    def update(self, k: int, misfit: float, variance: float) -> None:
        self.improved = False
        if k > self.window and self.use_variance and variance < self.best_var * (1 - self.margin):
            self.best_var, self.selected, self.improved = variance, k, True
        if self.use_discrepancy and k > self.window and misfit <= self.tau:
            self.done, self.selected, self.improved = True, k, True
            self.reason = f"discrepancy: misfit {misfit:.4g} ≤ {self.tau:.4g}"
        elif self.use_variance and self.selected and k - self.selected >= self.patience:
            self.done = True
            self.reason = f"running variance: no new minimum for {self.patience} iterations"

    def finish(self, k: int) -> None:
        """Called when the iterations run out before the rule stopped."""
        if not self.selected:
            self.selected = k
            self.reason = f"maximum of {k} iterations"
        else:
            self.reason = f"maximum of {k} iterations (running-variance minimum at iteration {self.selected})"

    @classmethod
    def replay(cls, history: dict[str, list], stop: str = "auto", tau: float = 1.0, window: int = 50,
               patience: int = 200, margin: float = 0.0) -> StoppingRule:
        """Apply the rule to a logged run (``history`` with ``misfit`` and ``variance`` per iteration)."""
        rule = cls(stop, tau, window, patience, margin)
        k = 0
        for k, (m, v) in enumerate(zip(history["misfit"], history["variance"]), start=1):
            rule.update(k, m, v)
            if rule.done:
                return rule
        rule.finish(k)
        return rule


def gradient_preconditioner(A: Operator, shift: float) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``g ↦ C F⁻¹ (|Ĥ|²/max|Ĥ|² + ε)^(−1/2) F Cᴴ g``, scaled to gain 1 where ``|Ĥ|`` is largest, for operators with a
    circulant model (convolutions); ``None`` for the others, for a flat ``Ĥ`` (denoising) and for ``ε = 0``.

    Applied to the image-space gradient ``Aᴴ∇nll`` it is, for Gaussian noise and the circular boundary, the gradient
    of the frequency-weighted data term ``½‖(|Ĥ|² + ε)^(−1/4)(y − Ĥx)‖²``, with the least-squares fit's minimizers:
    the frequencies a blur attenuates (``|Ĥ|² ≪ 1``) are fitted up to ``ε^(−1/2)`` times sooner (preconditioned
    Landweber: Piana & Bertero, Inverse Problems 13 (1997) 441).
    """
    if shift <= 0 or not hasattr(A, "circulant"):
        return None
    grid, transfer, _, crop = A.circulant()
    power = transfer.abs() ** 2
    peak = float(power.max())
    if power.numel() < 2 or peak <= 0 or float(power.min()) >= peak * (1 - 1e-6):
        return None
    gain = (power / peak + shift) ** -0.5
    gain = (gain / float(gain[power == peak].max())).to(torch.float32)
    dims = tuple(range(-len(grid), 0))
    size = math.prod(grid)
    # where the crop C takes each image pixel from on the grid (cropping the grid's own indices): Cᴴ puts it back
    positions = crop(torch.arange(size, dtype=torch.float64, device=transfer.device).reshape(grid)).round().long()
    positions = positions.flatten()

    def adjoint_crop(g: torch.Tensor) -> torch.Tensor:
        batch = g.shape[: g.ndim - len(grid)]
        out = g.new_zeros(batch + (size,))
        out[..., positions] = g.reshape(batch + (-1,))
        return out.reshape(batch + tuple(grid))

    def apply(g: torch.Tensor) -> torch.Tensor:
        if g.is_complex():
            return torch.complex(apply(g.real), apply(g.imag))
        G = torch.fft.rfftn(adjoint_crop(g), s=grid, dim=dims)
        return crop(torch.fft.irfftn(G * gain.to(G.device), s=grid, dim=dims))

    return apply


class _PreconditionGradient(torch.autograd.Function):
    """Identity forward; the backward pass applies a preconditioner to the incoming gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, apply: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        ctx.filter = apply
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return ctx.filter(grad), None


def fit_network(
    net: nn.Module,
    z: torch.Tensor,
    y: torch.Tensor,
    A: Operator,
    noise: NoiseModel,
    problem: DIPProblem,
    ctx: Context,
    *,
    iterations: int,
    lr: float,
    stop: str,
    tau: float,
    window: int,
    patience: int,
    input_noise: float,
    penalty: Callable[[], torch.Tensor] | None = None,
    restore: bool = False,
    discrepancy_of_mean: bool = False,
    precondition: float = 0.0,
    progress_total: int | None = None,
    margin: float = 0.0,
    members: bool = False,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Adam on ``nll(y, A(G(z + δ))) + penalty()`` with ``δ ~ N(0, input_noise²)``, stopped by a :class:`StoppingRule`.

    Returns the selected image (the running mean of the iterates at the selected iteration) and info: the
    selected iteration, the number of iterations run and why it stopped. With ``restore`` the network's weights
    are reset to those of the selected iteration (for methods that sample from it). Every iteration reports
    progress with the current iterate, keeps the selected image for cancel and logs loss, misfit and variance.
    With ``discrepancy_of_mean`` the discrepancy test uses the misfit of the running mean, the image that is
    returned, rather than of the current iterate (one more ``A`` per iteration; logged as ``mean_misfit``): a
    network that fits fast then does not stop while its running mean still lags behind the data.
    ``precondition`` > 0: the gradient reaching the image is filtered by :func:`gradient_preconditioner` with that
    ``ε`` (convolution operators only; the loss, the misfit and the stopping rule are unchanged). ``progress_total``:
    the steps the caller's bar counts (default ``iterations``; more when further steps follow this fit). ``margin``:
    how far below the selected running variance a new minimum must lie (:class:`StoppingRule`). ``members``: the
    network's batch holds independent members (an ensemble): the loss is the sum of their ``nll``s (each fits the data
    alone), the iterate and the returned running mean are their mean, and the selected running means of all members
    are returned as ``(members, *shape)`` (the caller takes their mean and spread); with ``discrepancy_of_mean`` the
    discrepancy waits for the last member: the largest misfit of the members' running means (logged as
    ``member_misfit``) is tested, as their mean's misfit falls below the target while slower members still lag
    (validation fluorescence seed 7, 128² denoising, 4 fields: stop at 277 with 33.07 dB on the mean's misfit, at 330
    with 34.1 dB on the last member's; RESULTS §13, nfield5).
    """
    measured = A.n_measured() * (y.numel() // max(math.prod(A.out_shape), 1))  # unsampled k-space does not count
    # τ is relative to the misfit that explaining the data down to the noise gives: 1 for Gaussian noise, more for
    # Poisson counts (fluorescence/blur of RESULTS §4: 1.057; the truth's own misfit is 1.066, so τ = 1 asked for a fit
    # into the noise and the discrepancy never fired on the blur cases)
    expected = noise.expected_misfit(y.detach(), measured)
    rule = StoppingRule(stop, tau * expected, window, patience, margin)
    net.to(ctx.device)
    # one multi-tensor update for all the weights: the per-tensor loop is ~10–25% of a 128² CPU step (RESULTS §4)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, foreach=True)
    moments = RunningMoments(window)
    preconditioner = gradient_preconditioner(A, precondition)
    gen = ctx.generator(offset=7)
    selected: torch.Tensor | None = None
    selected_state: dict[str, torch.Tensor] | None = None
    k = 0
    for k in range(1, iterations + 1):
        optimizer.zero_grad(set_to_none=True)
        zin = z
        if input_noise > 0:
            zin = z + input_noise * torch.randn(z.shape, generator=gen, device=gen.device).to(z.device)
        if members:  # each member fits the data alone; the iterate is their mean
            stack = problem.image(net(zin))
            nll = sum(noise.nll(y, A.apply(xm)) for xm in stack)
            x = stack.detach().mean(0)
            fit = A.apply(x)
        else:
            x = problem.image(net(zin))[0]
            fit = A.apply(x if preconditioner is None else _PreconditionGradient.apply(x, preconditioner))
            nll = noise.nll(y, fit)
        loss = nll + penalty() if penalty is not None else nll
        loss.backward()
        optimizer.step()
        ctx.evaluations += 1
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise ValueError("The network fit diverged (non-finite loss); lower the learning rate.")
        with torch.no_grad():
            misfit = noise.misfit(y, fit.detach(), measured)
            moments.update(stack if members else x)
            current = moments.mean.mean(0) if members else moments.mean
            mean_misfit = noise.misfit(y, A.apply(current), measured) if discrepancy_of_mean else misfit
            tested = mean_misfit
            if members and discrepancy_of_mean:
                tested = max(noise.misfit(y, A.apply(m), measured) for m in moments.mean)
        rule.update(k, tested, moments.var)
        if rule.improved:
            selected = moments.mean
            if restore:
                selected_state = {name: t.detach().clone() for name, t in net.state_dict().items()}
        if discrepancy_of_mean:
            ctx.log(loss=loss_value, misfit=misfit, variance=moments.var, mean_misfit=mean_misfit,
                    **({"member_misfit": tested} if members else {}))
        else:
            ctx.log(loss=loss_value, misfit=misfit, variance=moments.var)
        kept = moments.mean if selected is None else selected
        ctx.keep(kept.mean(0) if members else kept, iteration=rule.selected or k)
        ctx.step(k, iterations if progress_total is None else progress_total, x)
        if rule.done:
            break
    if not rule.done:
        rule.finish(k)
        if selected is None:
            selected, selected_state = moments.mean, None
    if restore and selected_state is not None and rule.selected != k:
        net.load_state_dict(selected_state)
    return selected.detach(), {"iterations": k, "stop_iteration": rule.selected, "stopped": rule.reason,
                               "discrepancy_target": rule.tau,
                               "scale": problem.scale}


def random_input(ctx: Context, shape: tuple[int, ...], spread: float = 0.1) -> torch.Tensor:
    """The fixed network input: ``U(0, spread)`` noise of ``shape`` (with a batch axis), seeded."""
    gen = ctx.generator(offset=3)
    return (spread * torch.rand((1, *shape), generator=gen, device=gen.device)).to(ctx.device)


def refuse_kspace(name: str, A: Operator | type[Operator]) -> str | None:
    """Why the untrained-network methods are not offered on MRI k-space (``None`` for other operators); ``A`` an
    operator or an operator class."""
    kind = A if isinstance(A, type) else type(A)
    if any(c.__name__ == "MRIOperator" for c in kind.__mro__):
        return (f"{name!r} is not offered on MRI k-space: with its defaults (tuned on microscopy) it stops below the "
                "zero-filled image on the brain phantom (RESULTS.md §6: 16.3–16.7 dB against 16.7–22.9 dB, 8 coils); "
                "use tv, wavelet or cg_sense.")
    return None


class _UntrainedNetwork(Method):
    """Shared run logic: build the generator, fit it with :func:`fit_network`, return the selected image."""

    needs_adjoint = False
    complex_images = True

    @classmethod
    def supports(cls, A: Operator | type[Operator]) -> str | None:
        return refuse_kspace(cls.name, A) or super().supports(A)

    @abstractmethod
    def build(self, problem: DIPProblem, **params: Any) -> tuple[nn.Module, tuple[int, ...]]:
        """The network and the shape of its input (channels first, no batch axis)."""

    def run(self, y, A, noise, ctx: Context, iterations: int, positive: bool, lr: float, stop: str, tau: float,
            window: int, patience: int, input_noise: float, precondition: float = 0.0, margin: float = 0.0,
            **arch: Any) -> Estimate:
        problem = DIPProblem.for_operator(y, A, noise, positive)
        with torch.device("meta"):  # no draws from torch's global generator: initialized from the run's own
            net, in_shape = self.build(problem, **arch)
        net = materialize(net, ctx.generator(offset=5, device="cpu"))
        if isinstance(net, HalfResolution):
            net.zero_residual()
        z = random_input(ctx, in_shape)
        x, info = fit_network(net, z, y, A, noise, problem, ctx, iterations=iterations, lr=lr, stop=stop, tau=tau,
                              window=window, patience=patience, input_noise=input_noise, precondition=precondition,
                              margin=margin)
        info["parameters"] = sum(p.numel() for p in net.parameters())
        return Estimate(x, info=info)


POSITIVE = Param("positive", bool, True, doc="non-negative image (softplus output; ignored for complex images)")

#: DIP's stopping parameters: with the blur preconditioner the running variance keeps making new minima 2–4 % apart
#: while the PSNR has levelled off (RESULTS §4, `dipstop`): a new minimum must be 2 % lower, patience 150
DIP_STOP_PARAMS = (
    *(replace(p, default=150) if p.name == "patience" else p for p in STOP_PARAMS),
    Param("margin", float, 0.02, 0.0, 0.5, doc="a new minimum of the running variance counts only when it is this "
          "fraction below the selected one"),
)


class DIP(_UntrainedNetwork):
    name = "dip"
    label = "Deep Image Prior"
    description = (
        "x = G_θ(z), θ = Adam-argmin −log p(y | A G_θ(z)) for a skip encoder–decoder G and fixed random z; "
        "stops itself (running variance of the iterates, or the discrepancy principle) and returns the running mean; "
        "for a blur the image gradient is preconditioned by (|Ĥ|² + ε)^(−1/2)."
    )
    reference = (
        "Ulyanov, Vedaldi & Lempitsky, Deep Image Prior, CVPR 2018; Wang et al., Early stopping for deep image "
        "prior, TMLR 2023; Piana & Bertero, Projected Landweber method and preconditioning, Inverse Problems 13 (1997) 441."
    )
    params = (
        ITERATIONS(2000),
        POSITIVE,
        *DIP_STOP_PARAMS,
        input_noise_param(0.03),
        Param("precondition", float, 0.1, 0.0, 100.0,
              doc="ε of the gradient preconditioner (|Ĥ|²/max|Ĥ|² + ε)^(−1/2) for convolution operators: the frequencies "
                  "a blur attenuates are fitted sooner (0: off; no effect on other operators)"),
        Param("width", int, 16, 2, 256, doc="channels of the finest level (deeper levels: ×1, ×2, ×4)"),
        Param("depth", int, 4, 1, 7, doc="number of down/up-sampling levels"),
        Param("resolution", str, "full", choices=("full", "half"),
              doc="half: no convolution at full resolution (the network's coarser levels on a half-size input, an "
                  "upsampled smooth part and a sub-pixel residual): ≈ 0.5× the time per 2D iteration; at 256² +1.65 dB on a cell "
                  "blur, −0.68 dB on fine fluorescence filaments (RESULTS §4, dip7)"),
    )

    def build(self, problem: DIPProblem, width: int, depth: int, resolution: str = "full"
              ) -> tuple[nn.Module, tuple[int, ...]]:
        ndim, c = len(problem.shape), problem.out_channels
        if resolution == "half":
            # the full network's levels below full resolution (widths 16-32-64 for 16-16-32-64), 8 smooth maps mixed
            # at full resolution and 2^d sub-pixel maps per output channel
            inner = SkipNet(IN_CHANNELS, HalfResolution.maps(ndim, c, HALF_SMOOTH), ndim,
                            skip_widths(width, depth)[1:] or (width,), skip=4)
            net = HalfResolution(inner, problem.shape, c, smooth_channels=HALF_SMOOTH)
            return net, (IN_CHANNELS, *net.input_size())
        net = SkipNet(IN_CHANNELS, c, ndim, skip_widths(width, depth), skip=4)
        return net, (IN_CHANNELS, *problem.shape)


def skip_widths(width: int, depth: int) -> tuple[int, ...]:
    """Channel widths per level: ``width`` for the two finest levels, then doubling (cheap at full resolution)."""
    return tuple(width * (2 ** max(0, i - 1)) for i in range(depth))


class DeepDecoderMethod(_UntrainedNetwork):
    name = "deep_decoder"
    label = "Deep Decoder"
    description = (
        "x = G_θ(z) with an under-parameterized decoder (upsampling + 1×1 convolutions, fewer weights than pixels), "
        "θ by Adam on −log p(y | A G_θ(z)); stops by running variance or discrepancy."
    )
    reference = "Heckel & Hand, Deep Decoder: concise image representations from untrained non-convolutional networks, ICLR 2019."
    params = (
        ITERATIONS(2000),
        POSITIVE,
        *STOP_PARAMS,
        input_noise_param(0.0),  # its low-resolution input is the whole image: perturbing it blurs everything
        Param("channels", int, 64, 2, 512, doc="channels per layer"),
        Param("levels", int, 5, 1, 8, doc="number of ×2 upsampling layers"),
    )

    def build(self, problem: DIPProblem, channels: int, levels: int) -> tuple[nn.Module, tuple[int, ...]]:
        net = DeepDecoder(problem.shape, problem.out_channels, channels, levels)
        return net, net.input_shape()
