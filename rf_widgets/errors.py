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
    "RuleFailureWarning",
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


class RuleFailureWarning(UnknownOperationWarning):
    """A rule raised an exception (a bug of the rule) and the node it failed at is reported as unknown."""


class DataError(RFError):
    """Data for a measurement is unusable: empty, the wrong image size or channel count, files missing."""


def shown(value: object, limit: int = 80) -> str:
    """A short ``repr`` for messages: an integer too long to print by its size, long texts and lists cut.

    ``repr(10**5000)`` raises ValueError (Python's digit limit) and a million-character name would make
    a message of a million characters; every message that shows a user's value goes through this.
    """
    import reprlib

    class _Short(reprlib.Repr):
        def repr_int(self, x: int, level: int) -> str:
            if x.bit_length() <= 128:
                return repr(x)
            digits = int(x.bit_length() * 0.30102999566398120) + 1
            if abs(x) < 10 ** (digits - 1):
                digits -= 1
            return f"an integer of {digits} digits"

    short = _Short()
    short.maxstring = short.maxother = limit
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 8
    try:
        text = short.repr(value)
    except Exception:  # a user object whose repr fails
        text = f"<a {type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= 2 * limit else text[:limit] + "..." + text[-limit // 2 :]
