"""What a frontend tells the user about operations it has no rule for (one warning per import)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from rf_widgets.errors import UnknownOperationWarning

__all__ = ["warn_unknown"]

SHOWN = 8
"""How many unknown operations the warning names (the rest are counted)."""


def warn_unknown(label: str, shown: Sequence[str], stacklevel: int = 2) -> None:
    """One :class:`UnknownOperationWarning` naming the first operations without a rule (none: no warning).

    ``shown`` holds one description per unknown operation (``"'reshape'"``, ``"'n3' (Foo)"``);
    ``stacklevel`` counts from the caller, as for :func:`warnings.warn`.
    """
    if not shown:
        return
    listed = ", ".join(shown[:SHOWN]) + (f" and {len(shown) - SHOWN} more" if len(shown) > SHOWN else "")
    warnings.warn(
        f"{label}: no receptive-field rule for {listed}; they are reported as unknown",
        UnknownOperationWarning,
        stacklevel=stacklevel + 1,
    )
