"""Forward operators ``y = A(x)`` (floor 1: pure torch/numpy)."""

from .base import LinearOperator, Operator, from_spec, operator_types
from .blur import BOUNDARIES, Blur, Identity
from .data_term import DataTerm
from .sampling import CompressedSensing, Downsampling, Inpainting, random_mask

__all__ = [
    "Operator",
    "LinearOperator",
    "from_spec",
    "operator_types",
    "Identity",
    "Blur",
    "BOUNDARIES",
    "DataTerm",
    "Inpainting",
    "Downsampling",
    "CompressedSensing",
    "random_mask",
]
