"""Controls shared by the dock widgets (one copy, used by all of them): forward model, noise, method parameters.

:class:`ForwardModelControls` builds an operator (Identity, Blur, Inpainting, Downsampling, Compressed
sensing) with its PSF (Gaussian, widefield Born–Wolf / Gibson–Lanni, or a measured bead layer) for a
given image shape; :class:`NoiseControls` builds a camera noise model. :func:`operator_from_metadata`
and :func:`noise_from_metadata` read what a simulated measurement carries in ``metadata["invimg"]``;
:class:`ParameterForm` turns a method's parameter schema into input widgets.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.ndimage as ndi
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox, Widget
from napari.layers import Image, Labels, Layer

from .. import operators, psf
from ..api import methods_for
from ..operators import noise as noise_models
from ..operators.base import Operator

__all__ = [
    "OPERATOR_KINDS",
    "ForwardModelControls",
    "NoiseControls",
    "layer_combo",
    "pixel_size_um",
    "psf_from_layer",
    "psf_from_array",
    "make_psf",
    "build_operator",
    "operator_from_metadata",
    "noise_from_metadata",
    "ordered_methods",
    "form_parameters",
    "preferred_methods",
    "is_measurement",
    "result_part",
    "preferred_layer",
    "device_choices",
    "ParameterForm",
]

#: (label, operator class name)
OPERATOR_KINDS = (
    ("Identity (denoise)", "Identity"),
    ("Blur (deconvolution)", "Blur"),
    ("Inpainting", "Inpainting"),
    ("Downsampling (super-resolution)", "Downsampling"),
    ("Compressed sensing", "CompressedSensing"),
)
_PSF_KINDS = (
    ("Gaussian", "gaussian"),
    ("Widefield (Born–Wolf)", "born_wolf"),
    ("Widefield (Richards–Wolf, vectorial)", "richards_wolf"),
    ("Widefield (Gibson–Lanni)", "gibson_lanni"),
    ("Measured bead (image layer)", "bead"),
)
_NO_PSF = ("None (pixel integration only)", "none")


def layer_combo(viewer, label: str, kinds: tuple[type[Layer], ...] = (Image,), optional: bool = False,
                tooltip: str = "", accept=None) -> ComboBox:
    """A combo box listing the viewer's layers of ``kinds`` (for which ``accept(layer)`` is true, when given),
    refreshed when layers are added or removed."""

    def choices(_widget=None) -> list:
        found = [(layer.name, layer) for layer in viewer.layers
                 if isinstance(layer, kinds) and (accept is None or accept(layer))]
        return ([("—", None)] if optional else []) + found

    combo = ComboBox(label=label, choices=choices, nullable=optional, tooltip=tooltip)
    for event in (viewer.layers.events.inserted, viewer.layers.events.removed, viewer.layers.events.moved):
        event.connect(lambda _e: combo.reset_choices())
    return combo


def pixel_size_um(layer: Layer | None, axis: int = -1) -> float | None:
    """The layer's pixel size along ``axis`` in µm: from its units when they are lengths, else its scale
    when it is not 1 (taken as µm), else ``None``."""
    if layer is None:
        return None
    scale = float(layer.scale[axis])
    units = getattr(layer, "units", None)
    if units:
        try:
            return float((scale * units[axis]).to("um").magnitude)
        except Exception:  # noqa: BLE001 — pint raises DimensionalityError for 'pixel'
            pass
    return scale if scale != 1.0 else None


def psf_from_array(data: np.ndarray, is_psf: bool = False, data_um: Sequence[float | None] | None = None,
                   pixel_um: Sequence[float] | None = None) -> np.ndarray:
    """A PSF from an image: one of our PSF layers (``is_psf``) as it is; a measured bead first resampled from
    its voxel size ``data_um`` to ``pixel_um`` (when both are known), then background-subtracted, centered
    and normalized (:func:`napari_invimg.psf.from_bead`)."""
    if is_psf:
        return np.asarray(data, dtype=np.float32)
    if pixel_um is not None and data_um is not None and all(b is not None for b in data_um):
        if len(pixel_um) == data.ndim == len(data_um):
            zoom = np.asarray(data_um, dtype=float) / np.asarray(pixel_um, dtype=float)
            if not np.allclose(zoom, 1.0, rtol=1e-3):
                data = ndi.zoom(data, zoom, order=1)
    return psf.from_bead(data)


def _psf_source(layer: Layer) -> dict[str, Any]:
    """What :func:`psf_from_array` needs from an image layer, read in the main thread."""
    from ._runner import image_data

    data = image_data(layer, "PSF")
    return {"data": data, "is_psf": bool(layer.metadata.get("invimg", {}).get("psf")),
            "data_um": [pixel_size_um(layer, ax) for ax in range(-data.ndim, 0)]}


def psf_from_layer(layer: Layer, pixel_um: Sequence[float] | None = None) -> np.ndarray:
    """:func:`psf_from_array` for an image layer (a PSF layer of ours, or a measured bead)."""
    return psf_from_array(**_psf_source(layer), pixel_um=pixel_um)


def _odd_at_most(n: int, limit: int) -> int:
    n = min(int(n), int(limit))
    return max(n - (1 - n % 2), 1)


def make_psf(settings: dict[str, Any], shape: Sequence[int]) -> np.ndarray | None:
    """The PSF that ``settings`` (from :meth:`ForwardModelControls.settings`) describe for an image of
    ``shape``; ``None`` when the operator has none."""
    kind, pk = settings["kind"], settings["psf_kind"]
    if kind not in ("Blur", "Downsampling") or pk == "none":
        return None
    shape = tuple(int(s) for s in shape)
    d = len(shape)
    pixel_um = (settings["z_step_um"], settings["pixel_um"], settings["pixel_um"])[-d:]
    if pk == "bead":
        bead = settings["bead"]
        if bead is None:
            raise ValueError("Choose the image layer of a measured bead, or another PSF.")
        if bead["data"].ndim != d:
            raise ValueError(f"The bead layer is {bead['data'].ndim}D but the image is {d}D.")
        return psf_from_array(**bead, pixel_um=pixel_um)
    lateral = min(_odd_at_most(settings["psf_size"], s) for s in shape[-2:])
    size = (lateral, lateral) if d == 2 else (_odd_at_most(settings["psf_size_z"], shape[0]), lateral, lateral)
    if pk == "gaussian":
        return psf.gaussian(size, sigma=settings["sigma"])
    return psf.widefield(size, wavelength_um=settings["wavelength_um"], na=settings["na"],
                         pixel_size_um=settings["pixel_um"], z_step_um=settings["z_step_um"] if d == 3 else None,
                         ni=settings["n_immersion"], ns=settings["n_sample"], model=pk)


def build_operator(settings: dict[str, Any], shape: Sequence[int]) -> Operator:
    """The operator that ``settings`` (from :meth:`ForwardModelControls.settings`) describe for an image of
    ``shape``: the one function every widget builds forward models with (safe in a worker thread)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"Images must be 2D or 3D; got shape {shape}.")
    kind = settings["kind"]
    if kind == "Identity":
        return operators.Identity(shape)
    if kind == "Blur":
        return operators.Blur(make_psf(settings, shape), shape, boundary=settings["boundary"])
    if kind == "Downsampling":
        return operators.Downsampling(shape, factor=settings["factor"], psf=make_psf(settings, shape),
                                      boundary=settings["boundary"])
    if kind == "Inpainting":
        mask = settings["mask"]
        if mask is None:
            return operators.Inpainting(operators.random_mask(shape, settings["fraction"], settings["pattern_seed"]))
        if mask.shape != shape:
            raise ValueError(f"The mask layer has shape {mask.shape}; the image has {shape}.")
        return operators.Inpainting(mask != 0)
    if kind == "CompressedSensing":
        return operators.CompressedSensing(shape, float(settings["fraction"]), seed=settings["pattern_seed"])
    raise ValueError(f"Unknown operator kind {kind!r}; choose one of {[k for _, k in OPERATOR_KINDS]}.")


class ForwardModelControls(Container):
    """The forward-model form: operator kind, its parameters and the PSF; :meth:`build` makes the operator."""

    def __init__(self, viewer, ndim: int = 2):
        self.viewer = viewer
        self.ndim = ndim
        self.kind = ComboBox(label="operator", choices=list(OPERATOR_KINDS), value="Blur")
        self.psf_kind = ComboBox(label="PSF", choices=list(_PSF_KINDS) + [_NO_PSF], value="born_wolf")
        self.psf_size = SpinBox(label="PSF size (px)", value=31, min=3, max=255, step=2,
                                tooltip="lateral size of the PSF array (odd)")
        self.psf_size_z = SpinBox(label="PSF size z (px)", value=15, min=1, max=255, step=2)
        self.sigma = FloatSpinBox(label="σ (px)", value=2.0, min=0.1, max=100.0, step=0.1,
                                  tooltip="Gaussian PSF standard deviation in pixels")
        self.wavelength = FloatSpinBox(label="wavelength (µm)", value=0.52, min=0.2, max=2.0, step=0.01,
                                       tooltip="emission wavelength of the fluorophore in µm (GFP ≈ 0.51, mCherry ≈ 0.61)")
        self.na = FloatSpinBox(label="NA", value=1.4, min=0.05, max=1.7, step=0.01,
                               tooltip="numerical aperture of the objective (engraved on it, e.g. 60×/1.40 oil)")
        self.n_immersion = FloatSpinBox(label="n immersion", value=1.515, min=1.0, max=2.0, step=0.001,
                                       tooltip="refractive index of the immersion medium: oil 1.515, water 1.333, "
                                               "glycerol 1.47, air 1.0")
        self.n_sample = FloatSpinBox(label="n sample", value=1.33, min=1.0, max=2.0, step=0.001,
                                    tooltip="refractive index of the sample (aqueous 1.33, cleared tissue ≈ 1.45); "
                                            "a mismatch with the immersion causes depth aberration (Gibson–Lanni)")
        self.pixel_size = FloatSpinBox(label="pixel (µm)", value=0.065, min=0.001, max=100.0, step=0.001,
                                       tooltip="lateral pixel size of the image; filled in from the layer's scale")
        self.z_step = FloatSpinBox(label="z step (µm)", value=0.2, min=0.001, max=100.0, step=0.001,
                                  tooltip="axial spacing of the stack's planes; filled in from the layer's scale")
        self.bead = layer_combo(viewer, "bead layer", optional=True,
                                tooltip="an image of one sub-resolution bead (background-subtracted, centered)")
        self.boundary = ComboBox(label="boundary", choices=list(operators.BOUNDARIES), value="reflect",
                                 tooltip="how the blur treats the image edge: reflect (mirror, fewest edge "
                                         "artifacts), circular (periodic, fastest), zero (dark outside)")
        self.mask_layer = layer_combo(viewer, "mask layer", (Labels, Image), optional=True,
                                      tooltip="True / non-zero = measured; empty: a random mask")
        self.fraction = FloatSpinBox(label="measured fraction", value=0.5, min=0.01, max=1.0, step=0.01)
        self.factor = SpinBox(label="factor", value=2, min=1, max=16)
        self.pattern_seed = SpinBox(label="pattern seed", value=0, min=0, max=2**31 - 1,
                                    tooltip="seed of the random mask / sensing pattern")
        super().__init__(widgets=[
            self.kind, self.psf_kind, self.psf_size, self.psf_size_z, self.sigma, self.wavelength, self.na,
            self.n_immersion, self.n_sample, self.pixel_size, self.z_step, self.bead, self.boundary,
            self.mask_layer, self.fraction, self.factor, self.pattern_seed,
        ])
        self.kind.changed.connect(self._update_visibility)
        self.psf_kind.changed.connect(self._update_visibility)
        self.mask_layer.changed.connect(self._update_visibility)
        self._update_visibility()

    # -- form state ---------------------------------------------------------------------------------
    def _update_visibility(self, *_: Any) -> None:
        kind, pk = self.kind.value, self.psf_kind.value
        uses_psf = kind in ("Blur", "Downsampling")
        if kind == "Blur" and pk == "none":
            self.psf_kind.value = pk = "born_wolf"
        has_psf = uses_psf and pk != "none"
        optical = has_psf and pk in ("born_wolf", "richards_wolf", "gibson_lanni")
        shown = {
            self.psf_kind: uses_psf,
            self.psf_size: has_psf and pk != "bead",
            self.psf_size_z: has_psf and pk != "bead" and self.ndim == 3,
            self.sigma: has_psf and pk == "gaussian",
            self.wavelength: optical, self.na: optical, self.n_immersion: optical,
            self.n_sample: has_psf and pk == "gibson_lanni",
            self.pixel_size: optical or (has_psf and pk == "bead"),
            self.z_step: (optical or (has_psf and pk == "bead")) and self.ndim == 3,
            self.bead: has_psf and pk == "bead",
            self.boundary: has_psf,
            self.mask_layer: kind == "Inpainting",
            self.fraction: kind in ("CompressedSensing",) or (kind == "Inpainting" and self.mask_layer.value is None),
            self.factor: kind == "Downsampling",
            self.pattern_seed: kind == "CompressedSensing" or (kind == "Inpainting" and self.mask_layer.value is None),
        }
        for widget, visible in shown.items():
            widget.visible = visible

    def set_reference(self, layer: Layer | None, data_layer: bool = False) -> None:
        """Take the image's dimensionality and pixel sizes from ``layer`` (a measurement when ``data_layer``:
        its pixels are ``factor`` times coarser for downsampling)."""
        if layer is None:
            return
        self.ndim = 3 if layer.ndim >= 3 else 2
        coarse = self.factor.value if (data_layer and self.kind.value == "Downsampling") else 1
        lateral = pixel_size_um(layer, -1)
        if lateral is not None:
            self.pixel_size.value = lateral / coarse
        if self.ndim == 3:
            axial = pixel_size_um(layer, -3)
            if axial is not None:
                self.z_step.value = axial / coarse
        self._update_visibility()

    def image_shape(self, data_shape: Sequence[int]) -> tuple[int, ...]:
        """Shape of the image that gives data of ``data_shape`` under this form's operator."""
        if self.kind.value == "CompressedSensing":
            raise ValueError("Compressed-sensing data do not tell the image's shape; reconstruct from the "
                             "measurement's metadata (made by Simulate measurement).")
        f = self.factor.value if self.kind.value == "Downsampling" else 1
        return tuple(int(s) * f for s in data_shape)

    # -- building -----------------------------------------------------------------------------------------
    def pixel_um(self, ndim: int) -> tuple[float, ...]:
        """Voxel size (µm) of the image grid: (z step,) pixel, pixel."""
        lateral = (self.pixel_size.value,) * 2
        return (self.z_step.value, *lateral) if ndim == 3 else lateral

    def settings(self) -> dict[str, Any]:
        """The form's values as plain data (layers read into arrays), for :func:`build_operator`."""
        kind, pk = self.kind.value, self.psf_kind.value
        bead = self.bead.value if kind in ("Blur", "Downsampling") and pk == "bead" else None
        mask = self.mask_layer.value if kind == "Inpainting" else None
        return {
            "kind": kind, "psf_kind": pk, "psf_size": self.psf_size.value, "psf_size_z": self.psf_size_z.value,
            "sigma": self.sigma.value, "wavelength_um": self.wavelength.value, "na": self.na.value,
            "n_immersion": self.n_immersion.value, "n_sample": self.n_sample.value,
            "pixel_um": self.pixel_size.value, "z_step_um": self.z_step.value, "boundary": self.boundary.value,
            "factor": self.factor.value, "fraction": self.fraction.value, "pattern_seed": self.pattern_seed.value,
            "bead": None if bead is None else _psf_source(bead),
            "mask": None if mask is None else np.asarray(mask.data),
        }

    def build(self, shape: Sequence[int]) -> Operator:
        """The operator for an image of ``shape`` (:func:`build_operator` on :meth:`settings`)."""
        return build_operator(self.settings(), shape)


class NoiseControls(Container):
    """Camera noise: Gaussian (read noise σ), Poisson (gain) or Poisson–Gaussian; optionally 'automatic'."""

    def __init__(self, automatic: bool = False):
        choices = [("Gaussian", "Gaussian"), ("Poisson", "Poisson"), ("Poisson–Gaussian", "PoissonGaussian")]
        if automatic:
            choices = [("from the layer / estimated", "auto")] + choices
        self.kind = ComboBox(label="noise", choices=choices, value=choices[-1][1] if not automatic else "auto",
                             tooltip="camera noise: Gaussian (read noise only), Poisson (photon counting) or "
                                     "both (sCMOS/EMCCD); 'from the layer / estimated' uses the layer's metadata "
                                     "or estimates a Gaussian σ from the data")
        self.gain = FloatSpinBox(label="gain", value=0.01, min=1e-6, max=1e6, step=0.001,
                                 tooltip="intensity units per detected photon")
        self.sigma = FloatSpinBox(label="read noise σ", value=0.01, min=0.0, max=1e6, step=0.001,
                                  tooltip="standard deviation of the Gaussian (read) noise, in the image's units")
        super().__init__(widgets=[self.kind, self.gain, self.sigma])
        self.kind.changed.connect(self._update_visibility)
        self._update_visibility()

    def _update_visibility(self, *_: Any) -> None:
        self.gain.visible = self.kind.value in ("Poisson", "PoissonGaussian")
        self.sigma.visible = self.kind.value in ("Gaussian", "PoissonGaussian")

    def build(self) -> noise_models.NoiseModel | None:
        """The noise model, or ``None`` for 'automatic'."""
        kind = self.kind.value
        if kind == "Gaussian":
            return noise_models.Gaussian(self.sigma.value)
        if kind == "Poisson":
            return noise_models.Poisson(self.gain.value)
        if kind == "PoissonGaussian":
            return noise_models.PoissonGaussian(self.gain.value, self.sigma.value)
        return None


def _invimg(layer: Layer | None) -> dict[str, Any]:
    return {} if layer is None else dict(layer.metadata.get("invimg", {}))


def operator_from_metadata(layer: Layer) -> Operator:
    """The operator recorded in ``layer.metadata["invimg"]["operator"]`` (by Simulate, sample data or a result)."""
    spec = _invimg(layer).get("operator")
    if spec is None:
        raise ValueError(f"The layer {layer.name!r} carries no forward model in its metadata; build one in the "
                         "widget or choose a PSF layer.")
    return operators.from_spec(spec)


def noise_from_metadata(layer: Layer) -> noise_models.NoiseModel | None:
    """The noise model recorded in ``layer.metadata["invimg"]["noise"]``, or ``None``."""
    spec = _invimg(layer).get("noise")
    return None if spec is None else noise_models.from_spec(spec)


def ordered_methods(operator: Operator | type[Operator] | str) -> list[str]:
    """The methods a dock lists for ``operator`` (an operator, its class or class name): exactly
    :func:`napari_invimg.api.methods_for` — the one list of every front end — with the ones that suit the operator
    first (:data:`PREFERRED_METHODS`)."""
    if isinstance(operator, str):
        kind = operator
    else:
        kind = operator.name if isinstance(operator, Operator) else operator.__name__
    return preferred_methods(methods_for(operator), kind)


#: the methods a form offers first for each forward model (then the rest alphabetically): RL for blur, not `adjoint`
PREFERRED_METHODS = {
    "Blur": ("richardson_lucy", "rl_tv", "tv", "wiener"),
    "Identity": ("tv", "wavelet", "hessian"),
    "Inpainting": ("tv", "wavelet"),
    "Downsampling": ("tv", "richardson_lucy", "rl_tv"),
    "CompressedSensing": ("tv", "tikhonov_cg"),
    "CartesianMRI": ("tv", "wavelet", "cg_sense"),
    "NonCartesianMRI": ("tv", "wavelet", "cg_sense"),
    "Interferometer": ("rml", "clean"),
    "Closures": ("rml",),
}


def form_parameters(parameters: Sequence[dict[str, Any]], operator_kind: str) -> list[dict[str, Any]]:
    """The parameters (:meth:`Param.describe` dicts) a form shows for a forward model of class ``operator_kind``:
    those that act on it (``operators`` empty or naming it), e.g. no MRI coil compression on a deconvolution."""
    return [p for p in parameters if not p.get("operators") or operator_kind in p["operators"]]


def preferred_methods(names: Sequence[str], operator_kind: str) -> list[str]:
    """``names`` with the methods that suit ``operator_kind`` first (:data:`PREFERRED_METHODS`), then the rest
    in their order; a method added to the registry appears without being named here."""
    first = [n for n in PREFERRED_METHODS.get(operator_kind, ()) if n in names]
    return first + [n for n in names if n not in first]


def result_part(layer: Layer | None) -> str | None:
    """``"mean"``, ``"std"``, ``"samples"``… for a layer made by a napari-invimg method, else ``None``."""
    meta = _invimg(layer)
    return str(meta.get("output")) if "method" in meta and meta.get("output") else None


def is_measurement(layer: Layer | None) -> bool:
    """Whether a layer's metadata say it is a measurement: a forward model recorded and no method (results
    carry one), or a k-space; never a layer named or marked as the truth."""
    if not isinstance(layer, Image):
        return False
    meta = _invimg(layer)
    if "truth" in layer.name.lower().split() or meta.get("role") == "truth":
        return False
    return ("operator" in meta or "kspace" in meta) and "method" not in meta


def preferred_layer(viewer, candidates: Sequence[Layer], want=is_measurement) -> Layer | None:
    """The layer a form should start with: the selected one if it is a candidate and ``want``s it, else the
    last candidate that ``want``s, else the selected candidate, else the first candidate that is not a
    truth, else the first candidate."""
    candidates = [c for c in candidates if c is not None]
    if not candidates:
        return None
    active = viewer.layers.selection.active
    names = [c.name for c in candidates]
    chosen = candidates[names.index(active.name)] if active is not None and active.name in names else None
    if chosen is not None and want(chosen):
        return chosen
    wanted = [c for c in candidates if want(c)]
    if wanted:
        return wanted[-1]
    if chosen is not None:
        return chosen
    not_truth = [c for c in candidates if "truth" not in c.name.lower()]
    return (not_truth or candidates)[0]


def device_choices() -> list[tuple[str, str | None]]:
    """``auto`` plus the devices torch can use here."""
    import torch

    out: list[tuple[str, str | None]] = [("auto", None), ("cpu", "cpu")]
    if torch.cuda.is_available():
        out += [(f"cuda:{i}", f"cuda:{i}") for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append(("mps", "mps"))
    return out


#: readable labels for the parameter names that are maths symbols or abbreviations (others: name with spaces)
PARAM_LABELS = {
    "lam": "weight λ", "tau": "discrepancy τ", "tol": "tolerance", "lr": "learning rate", "n_samples": "samples",
    "burn_in": "burn-in", "mu": "penalty μ", "rho": "penalty ρ", "eps": "ε", "epsilon": "smoothing ε",
    "sigma": "noise σ", "beta": "β", "alpha": "α", "gamma": "γ", "theta": "θ", "tv": "TV weight",
    "tsv": "TSV weight", "mem": "entropy weight", "l1": "L1 weight", "fwhm": "FWHM", "prior_fwhm_uas": "prior FWHM (µas)",
    "blur_uas": "blur (µas)", "ess": "ESS", "n_iter": "iterations", "offset": "background offset",
}


def param_label(name: str) -> str:
    """A readable label for a method parameter: a symbol where the name abbreviates one, else words."""
    return PARAM_LABELS.get(name, name.replace("_", " "))


def param_tooltip(p: dict[str, Any]) -> str:
    """A parameter's tooltip: its ``doc``, then its name, default and bounds (blank = automatic where so)."""
    low, high = p.get("bounds") or (None, None)
    parts = [p.get("doc") or ""]
    facts = [f"parameter '{p['name']}'"]
    if p.get("default") is None:
        facts.append("blank = chosen automatically")
    else:
        facts.append(f"default {p['default']!r}")
    if low is not None or high is not None:
        facts.append(f"range {'−∞' if low is None else low} … {'∞' if high is None else high}")
    parts.append("; ".join(facts))
    return "\n".join(x for x in parts if x)


def _float_step(default: float | None, low: float | None) -> float:
    ref = abs(default) if default else (abs(low) if low else 1.0)
    return 10.0 ** (math.floor(math.log10(ref)) - 1) if ref > 0 else 0.01


class ParameterForm(Container):
    """Input widgets generated from a method's parameter schema (:func:`napari_invimg.method_info`).

    ``bool`` → check box, choices → combo box, numbers → spin boxes within their bounds; a parameter
    whose default is ``None`` ("chosen automatically") is a text field left empty for automatic.
    """

    def __init__(self, parameters: list[dict[str, Any]] | None = None):
        super().__init__(widgets=[])
        self._schema: dict[str, dict[str, Any]] = {}
        self.set_schema(parameters or [])

    @staticmethod
    def _make_input(p: dict[str, Any]) -> Widget:
        name, kind, default, (low, high) = p["name"], p["type"], p["default"], p["bounds"]
        common = {"name": name, "label": param_label(name), "tooltip": param_tooltip(p)}
        if p.get("choices"):
            return ComboBox(choices=list(p["choices"]), value=default, **common)
        if kind == "bool":
            return CheckBox(value=bool(default), **common)
        if default is None or kind not in ("int", "float") or p.get("log_scale"):
            edit = LineEdit(value="" if default is None else repr(default) if kind != "str" else default, **common)
            if default is None:
                edit.native.setPlaceholderText("automatic")
            return edit
        if kind == "int":
            return SpinBox(value=int(default), min=int(low) if low is not None else -(2**31) + 1,
                           max=int(min(high, 2**31 - 1)) if high is not None else 2**31 - 1, **common)
        return FloatSpinBox(value=float(default), min=float(low) if low is not None else -1e12,
                            max=float(high) if high is not None else 1e12, step=_float_step(default, low), **common)

    def set_schema(self, parameters: list[dict[str, Any]]) -> None:
        self.clear()
        self._schema = {p["name"]: p for p in parameters}
        for p in parameters:
            self.append(self._make_input(p))

    def values(self) -> dict[str, Any]:
        """The parameters as typed values (an empty text field gives ``None`` = automatic)."""
        out: dict[str, Any] = {}
        for w in self:
            p = self._schema[w.name]
            v = w.value
            if isinstance(w, LineEdit):
                text = str(v).strip()
                if text == "" and p["type"] == "str" and p["default"] is not None:
                    v = p["default"]  # an empty text that is itself the default (e.g. weights "" = shipped)
                elif text in ("", "auto", "None"):
                    v = None
                elif p["type"] == "str":
                    v = text
                else:  # numbers, and any other type the method's Param coerces (e.g. a tuple written as one)
                    try:
                        v = ast.literal_eval(text)
                    except (ValueError, SyntaxError):
                        raise ValueError(f"Parameter {w.name!r} must be a {p['type']} (or empty for automatic); "
                                         f"got {text!r}.") from None
                    if p["type"] == "dict" and not isinstance(v, dict):
                        raise ValueError(f"Parameter {w.name!r} must be written as a dict, e.g. {{'wavelet': 'haar'}}, "
                                         "or left empty.")
            out[w.name] = v
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        for w in self:
            if w.name not in values:
                continue
            v = values[w.name]
            if isinstance(w, LineEdit):
                v = "" if v is None else v if isinstance(v, str) else repr(v)
            w.value = v
