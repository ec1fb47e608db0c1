"""Walk a Keras 3 graph (Functional, Sequential, models nested in either) and build the layers.

Every node of the graph is looked up in the rule chain (``lookup_chain(rules, frontend="keras")``): a
rule receives a :class:`~rf_widgets.keras_import.call.KerasCall`. A nested Functional or Sequential
model is walked in place, its layers named ``outer/inner``. Nothing is executed: layer configurations
and the static shapes of the symbolic Keras tensors are all the walk reads, so any backend works.
"""

from __future__ import annotations

from typing import Any

from rf_widgets.errors import ModelImportError
from rf_widgets.frontends.base import BaseBuilder
from rf_widgets.keras_import.call import CONST, KerasCall
from rf_widgets.rules import RuleTable

__all__ = ["KerasBuilder", "graph_of"]


class KerasBuilder(BaseBuilder):
    """Turns the nodes of one Keras model into layers, in graph order."""

    frontend = "keras"

    def __init__(self, ndim: int, data_format: str, chain: tuple[RuleTable, ...]) -> None:
        super().__init__(ndim, chain)
        self.data_format = data_format
        self._used: dict[str, int] = {}

    # -- driver ---------------------------------------------------------------------------------------

    def walk(self, model: Any, inputs: list[Any], prefix: str = "") -> list[Any]:
        """Import the graph of ``model`` with its input tensors bound to ``inputs``; its outputs."""
        graph = graph_of(model)
        if graph is None:
            raise ModelImportError(
                f"the Sequential model '{model.name}' is not built: call it on an input or give it a "
                "keras.Input first, so that its input shape is known"
            )
        values: dict[int, Any] = {id(t): v for t, v in zip(graph.inputs, inputs, strict=False)}
        for depth in sorted(graph._nodes_by_depth, reverse=True):
            for node in graph._nodes_by_depth[depth]:
                if node.operation is None or node.is_input:
                    continue
                if any(id(t) not in values for t in node.input_tensors):
                    continue  # not reachable from this graph's inputs
                args, kwargs = node.arguments.convert(lambda t: values.get(id(t), t) if _is_tensor(t) else t)
                outputs = self._visit(node, tuple(args), dict(kwargs), prefix)
                flat = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs] * len(node.outputs)
                for tensor, value in zip(node.outputs, flat, strict=False):
                    values[id(tensor)] = value
        return [values.get(id(t), CONST) for t in graph.outputs]

    def _visit(self, node: Any, args: tuple[Any, ...], kwargs: dict[str, Any], prefix: str) -> Any:
        operation = node.operation
        name = prefix + operation.name
        probe = KerasCall(self, node, args, kwargs, name, self.data_format)
        if not probe.acts:
            return CONST  # computed from non-image inputs alone
        rule = self.rule_for(type(operation))
        if graph_of(operation) is not None and rule is None:
            inner_inputs = _flatten(args)
            outputs = self.walk(operation, inner_inputs, prefix=f"{name}/")
            return outputs if len(outputs) > 1 else outputs[0]
        call = KerasCall(self, node, args, kwargs, self._unique(name), self.data_format)
        if rule is None:
            return call.unknown(_no_rule(operation))
        return self.run_rule(rule, call, call.op, f"Keras layer '{name}'")

    def _unique(self, name: str) -> str:
        count = self._used.get(name, 0) + 1
        self._used[name] = count
        return name if count == 1 else f"{name}:{count}"


def graph_of(model: Any) -> Any:
    """The Functional graph of a Functional or built Sequential model (None for anything else)."""
    if hasattr(model, "_nodes_by_depth") and hasattr(model, "inputs") and hasattr(model, "outputs"):
        try:
            if model.inputs is not None and model.outputs is not None:
                return model
        except (AttributeError, ValueError):
            return None
    inner = getattr(model, "_functional", None)
    if inner is not None and hasattr(inner, "_nodes_by_depth"):
        return inner
    return None


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, (tuple, list)):
        return [item for v in value for item in _flatten(v)]
    if isinstance(value, dict):
        return [item for v in value.values() for item in _flatten(v)]
    return [value]


def _is_tensor(value: Any) -> bool:
    return type(value).__name__ == "KerasTensor"


def _no_rule(operation: Any) -> str:
    cls = type(operation)
    hint = "(add one with rf_widgets.RuleTable().operator('keras', ...): see docs/keras.md)"
    if cls.__name__ == "Lambda":
        return f"a Lambda layer runs arbitrary Python code {hint}"
    if any(c.__name__ == "Model" and c.__module__.startswith("keras") for c in cls.__mro__):
        return f"the subclassed model {cls.__module__}.{cls.__qualname__} has no graph to read {hint}"
    return f"the Keras class {cls.__module__}.{cls.__qualname__} has no rule {hint}"
