"""One exception family for everything rf_widgets rejects.

Every message names the culprit (the layer, the parameter, the file or the call) so that a user can fix
the input without reading a traceback.
"""

from __future__ import annotations

__all__ = [
    "DataError",
    "GraphError",
    "LayerSpecError",
    "ModelImportError",
    "RFError",
    "ResolutionError",
    "StackFileError",
    "UnknownOperationWarning",
]


class RFError(ValueError):
    """Base class of every error rf_widgets raises on bad input."""


class LayerSpecError(RFError):
    """A layer parameter is invalid (kernel 0, negative stride, wrong number of axes, ...)."""


class GraphError(RFError):
    """The layer graph is invalid: an unknown input name, a duplicate name, a cycle, no layers."""


class ResolutionError(RFError):
    """The input resolution is not a positive integer per axis, or has the wrong number of axes."""


class ModelImportError(RFError):
    """A model could not be turned into a layer graph (untraceable, not a module, unknown spec)."""


class StackFileError(RFError):
    """A JSON/YAML layer-stack file could not be read or does not describe a valid stack."""


class UnknownOperationWarning(UserWarning):
    """An operation without a receptive-field rule was found; it is reported with status "unknown"."""


class DataError(RFError):
    """Data for a measurement is unusable: empty, the wrong image size or channel count, files missing."""
