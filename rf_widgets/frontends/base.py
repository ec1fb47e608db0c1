"""The pieces every importer's walk repeats: rule dispatch, unknown operations, parameters counted once.

A frontend's builder walks its framework's graph and, for each operation that reads the image, makes a
call object (the argument of the rules) and asks :meth:`BaseBuilder.rule_for` for the operation's rule.
:meth:`BaseBuilder.run_rule` runs it: a rule returns an :class:`~rf_widgets.frontends.records.Act` (or a
dict of :class:`~rf_widgets.core.layers.Layer` fields, emitted as one layer); one that raises
:class:`~rf_widgets.rules.Unsupported` makes the operation an ``unknown`` layer with its reason; an
:class:`~rf_widgets.errors.RFError` (about the user's input) propagates; anything else is a bug of the
rule, raised as a :class:`~rf_widgets.errors.ModelImportError` naming the operation. An operation without
a rule is ``unknown`` too (:meth:`BaseCall.unknown`): a layer of kind ``"unknown"``, an ``unknown-op``
diagnostic, and one warning per import (:func:`~rf_widgets.frontends.reporting.warn_unknown`).

The ONNX and Keras importers are built on these; the torch importer keeps its own walk (fx nodes are
dispatched by module type, function and method, and a failing torch rule is reported as unknown).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

from rf_widgets.core.arithmetic import Diagnostic
from rf_widgets.core.layers import Layer
from rf_widgets.errors import ModelImportError, RFError
from rf_widgets.frontends.records import Act
from rf_widgets.frontends.reporting import warn_unknown
from rf_widgets.rules import RuleTable, Unsupported

__all__ = ["BaseBuilder", "BaseCall", "ParamCounter", "collect_acts", "unknown_diagnostic"]

Layout = Any
"""A frontend's layout (a tuple of roles, :mod:`rf_widgets.frontends.layout`)."""


def unknown_diagnostic(source: str, what: str, why: str) -> Diagnostic:
    """The ``unknown-op`` diagnostic of the layer ``source`` made for ``what`` (an op type, a class)."""
    return Diagnostic(
        source,
        "unknown-op",
        f"'{source}' ({what}) has no receptive-field rule: {why}; values after it assume it adds no "
        "context and are lower bounds",
    )


def collect_acts(value: Any) -> list[Act[Any]]:
    """Every :class:`Act` in ``value`` (nested tuples, lists and dict values), in order."""
    if isinstance(value, Act):
        return [value]
    items: Iterable[Any] = ()
    if isinstance(value, (tuple, list)):
        items = value
    elif isinstance(value, dict):
        items = value.values()
    return [act for item in items for act in collect_acts(item)]


class ParamCounter:
    """Parameters counted once per owner: a weight read by two nodes, a layer called twice."""

    def __init__(self) -> None:
        self._seen: set[Hashable] = set()

    def once(self, key: Hashable, count: int | Callable[[], int]) -> int:
        """``count`` (or ``count()``, called only then) the first time ``key`` is seen, 0 after."""
        if key in self._seen:
            return 0
        self._seen.add(key)
        return count() if callable(count) else count


class BaseBuilder:
    """What a frontend's builder holds while it walks: the layers, diagnostics and unknown operations.

    Attributes
    ----------
    frontend
        The frontend's name: its rules are ``table.operator(frontend, key, rule)``.
    chain
        The rule tables, first match wins (:func:`rf_widgets.rules.lookup_chain`).
    layers, diagnostics
        What the walk made so far.
    unknown
        How the warning names each operation made unknown (``"'conv1' (Conv)"``).
    params
        The :class:`ParamCounter` of the import.
    """

    frontend: str = ""

    def __init__(self, ndim: int, chain: tuple[RuleTable, ...]) -> None:
        self.ndim = ndim
        self.chain = chain
        self.layers: list[Layer] = []
        self.diagnostics: list[Diagnostic] = []
        self.unknown: list[str] = []
        self.params = ParamCounter()

    def rule_for(self, key: Any) -> Any:
        """The first rule for the operator ``key`` of this frontend in the chain (None: no rule)."""
        for table in self.chain:
            rule = table.for_operator(self.frontend, key)
            if rule is not None:
                return rule
        return None

    def run_rule(self, rule: Any, call: BaseCall, what: str, where: str) -> Any:
        """``rule(call)``: its value, a dict of layer fields emitted, or unknown with the reason it gave.

        ``what`` and ``where`` name the operation in the error a rule's bug raises (``"ONNX Conv"``,
        ``"node 'conv1'"``).
        """
        try:
            value = rule(call)
            return call.emit_fields(value) if isinstance(value, dict) else value
        except Unsupported as why:
            return call.unknown(str(why) or "the rule does not cover these arguments")
        except RFError:
            raise
        except Exception as err:
            raise ModelImportError(
                f"the rule for {what} failed at {where}: {type(err).__name__}: {err}"
            ) from err

    def report_unknown(self, source: str, what: str, why: str, entry: str) -> None:
        """Record the unknown layer ``source`` made for ``what``: its diagnostic, and ``entry`` for the
        warning."""
        self.unknown.append(entry)
        self.diagnostics.append(unknown_diagnostic(source, what, why))

    def warn_unknown(self, label: str, stacklevel: int = 2) -> None:
        """One warning naming the operations of the model ``label`` made unknown (none: no warning)."""
        warn_unknown(label, self.unknown, stacklevel + 1)


class BaseCall:
    """What the call objects of the ONNX and Keras frontends share (the argument of their rules).

    Attributes
    ----------
    builder
        The frontend's :class:`BaseBuilder`.
    acts
        Every activation among the inputs, in order; ``x`` is the first.
    """

    builder: BaseBuilder
    acts: list[Act[Any]]

    @property
    def x(self) -> Act[Any]:
        """The first activation among the inputs."""
        return self.acts[0]

    @property
    def ndim(self) -> int:
        """The number of spatial axes of the network input."""
        return self.builder.ndim

    @property
    def what(self) -> str:
        """The operation in diagnostics (``"ONNX Conv"``, a Keras class name)."""
        raise NotImplementedError

    def entry(self, source: str) -> str:
        """How the unknown-operation warning names the layer ``source`` made for this call."""
        return f"'{source}' ({self.what})"

    def emit(
        self,
        op: str | None = None,
        inputs: Iterable[Act[Any]] | None = None,
        layout: Layout = None,
        **fields: Any,
    ) -> Act[Any]:
        """Append one layer with the given :class:`~rf_widgets.core.layers.Layer` fields."""
        raise NotImplementedError

    def emit_fields(self, fields: dict[str, Any]) -> Act[Any]:
        """A rule's dict of :class:`~rf_widgets.core.layers.Layer` fields, emitted as one layer."""
        return self.emit(**fields)

    def pointwise(self, layout: Layout = None, **extra: Any) -> Act[Any]:
        """A layer that treats every position alone (activations, norms, merges along channels)."""
        return self.emit(layout=layout, **extra)

    def unknown(self, why: str, layout: Layout = None) -> Act[Any]:
        """A layer without a rule: status unknown, a diagnostic and a warning (never identity)."""
        act = self.emit(layout=self.unknown_layout() if layout is None else layout, kind="unknown", note=why)
        self.builder.report_unknown(act.source, self.what, why, self.entry(act.source))
        return act

    def unknown_layout(self) -> Layout:
        """The layout of an unknown operation's output when the caller gives none (None: the default)."""
        return None
