"""Scores from attribution libraries (kronfluence, dattri, TRAK) through the torch adapter.

Each module computes one library's scores for a pacda task from its
:class:`~prover.tasks.torch_adapter.TorchAdapter` and returns them as a float64
``(Z, N)`` matrix in the libraries' common convention, the mask encoding
(coefficients of the 0/1 inclusion of each training item), on the library's
own scale and sign.  :mod:`prover.attribution.libraries.methods` turns them
into pacda methods (``--method kronfluence-ekfac``, ``dattri-if``,
``dattri-trak``, ``trak-library``) by calibrating scale and intercept on
retrainings; :mod:`prover.attribution.libraries.readers` reads the files the
libraries save themselves (``import-scores --format``).

The libraries are optional: a module imports its library when called and
says how to install it when it is missing.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from protocol.errors import InvalidArgument

__all__ = ["require"]

#: How to install each library beside the CPU build of torch.
INSTALL = {
    "kronfluence": "pip install --no-deps kronfluence==1.0.1 (and accelerate, einops, einconv, "
    "opt-einsum, safetensors: pip install 'pacda[libraries]')",
    "dattri": "pip install dattri==0.3.0",
    "trak": "pip install traker==0.3.2",
}


def require(name: str) -> ModuleType:
    """Import library ``name`` or raise :class:`InvalidArgument` saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        how = INSTALL.get(name, f"pip install {name}")
        raise InvalidArgument(f"the {name} library is not installed ({err}); {how}") from err
