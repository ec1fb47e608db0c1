"""Which importer reads a model: the frontends, registered in one place, and :func:`resolve`.

A frontend implements :class:`Frontend`: a ``name`` (the key of its operator rules in a
:class:`~rf_widgets.rules.RuleTable` and the stack's ``metadata["frontend"]``), ``register_rules(table)``
that fills its built-in rule table, ``accepts(model)`` and ``load(model, name=, rules=)``.
``accepts`` never imports a framework: a model of a framework nobody imported cannot exist, so it looks
in ``sys.modules``. Nothing here imports torch, onnx or keras; ``load`` imports its importer when called.

:func:`resolve` answers "what is this model" for :func:`rf_widgets.analyze`, the Explorer, ``suggest``,
``search`` and the zoo: a :class:`Resolved` naming the frontend that imports it (None for a model that
already is a layer graph) and the object it imports (a spec string loaded once). A stack is
size-independent: a frontend imports the graph once and the core analyses it at any input size (the
ONNX frontend picks a reference size of its own where it needs shapes).

Examples
--------
>>> import rf_widgets as rfw
>>> found = resolve([rfw.conv("c1", 3)])
>>> found.frontend is None, found.stack().names
(True, ('c1',))
>>> [f.name for f in frontends()]
['keras', 'onnx', 'torch']
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import Layer
from rf_widgets.errors import ModelImportError
from rf_widgets.rules import RuleTable, register_frontend

__all__ = ["Frontend", "Resolved", "frontend", "frontends", "register", "resolve"]


@runtime_checkable
class Frontend(Protocol):
    """What an importer implements to be found by :func:`resolve` (see docs/frontends.md)."""

    name: str
    """The frontend's name: ``RuleTable.operator(name, key, rule)`` and ``stack.metadata["frontend"]``."""

    def register_rules(self, table: RuleTable) -> None:
        """Add the built-in rules to ``table`` (called once, on the first import; see
        :func:`rf_widgets.rules.builtin_rules`)."""
        ...

    def accepts(self, model: object) -> bool:
        """Whether this frontend imports ``model`` (without importing any framework)."""
        ...

    def load(self, model: Any, *, name: str | None = None, rules: RuleTable | None = None) -> Stack:
        """The layer graph of ``model``; ``rules`` is consulted before the active and built-in rules."""
        ...


class _BuiltIn:
    """A frontend of this package: its built-in rules are ``register(table)`` of ``rules_module``."""

    name = ""
    rules_module = ""

    def register_rules(self, table: RuleTable) -> None:
        importlib.import_module(self.rules_module).register(table)


class _Keras(_BuiltIn):
    name = "keras"
    rules_module = "rf_widgets.keras_import.ops"

    def accepts(self, model: object) -> bool:
        keras = sys.modules.get("keras")
        return keras is not None and isinstance(model, keras.layers.Layer)

    def load(self, model: Any, *, name: str | None = None, rules: RuleTable | None = None) -> Stack:
        from rf_widgets.keras_import import import_model

        return import_model(model, name=name, rules=rules)


class _Onnx(_BuiltIn):
    name = "onnx"
    rules_module = "rf_widgets.onnx_import.ops"

    def accepts(self, model: object) -> bool:
        """An ``onnx.ModelProto`` or the path of a ``.onnx`` file."""
        onnx = sys.modules.get("onnx")
        if onnx is not None and isinstance(model, onnx.ModelProto):
            return True
        if isinstance(model, os.PathLike):
            model = os.fspath(model)
        return isinstance(model, str) and model.strip().lower().endswith(".onnx")

    def load(self, model: Any, *, name: str | None = None, rules: RuleTable | None = None) -> Stack:
        from rf_widgets.onnx_import import import_onnx

        return import_onnx(model, name=name, rules=rules)


class _Torch(_BuiltIn):
    name = "torch"
    rules_module = "rf_widgets.torch_import.ops"

    def accepts(self, model: object) -> bool:
        # Keras layers on the torch backend are torch modules too: the Keras frontend, ahead, takes them
        torch = sys.modules.get("torch")
        return torch is not None and isinstance(model, torch.nn.Module)

    def load(self, model: Any, *, name: str | None = None, rules: RuleTable | None = None) -> Stack:
        from rf_widgets.torch_import import import_model

        return import_model(model, name=name, rules=rules)


_REGISTERED: list[Frontend] = [_Keras(), _Onnx(), _Torch()]
"""In the order :func:`resolve` asks them (Keras before torch: see :class:`_Torch`)."""

for _builtin in _REGISTERED:
    register_frontend(_builtin.name, _builtin.register_rules)  # the rule module loads on first use


def frontends() -> tuple[Frontend, ...]:
    """The registered frontends, in the order :func:`resolve` asks them."""
    return tuple(_REGISTERED)


def frontend(name: str) -> Frontend:
    """The registered frontend called ``name``; KeyError naming the known ones when there is none."""
    for found in _REGISTERED:
        if found.name == name:
            return found
    known = ", ".join(f.name for f in _REGISTERED)
    raise KeyError(f"no frontend is registered as {name!r} (known: {known})")


def register(added: Frontend) -> None:
    """Add a frontend, asked before the registered ones; one of the same name is replaced."""
    if not isinstance(added, Frontend):
        raise TypeError(
            f"a frontend needs name, register_rules(table), accepts(model) and load(model, name=, rules=); "
            f"got {type(added).__name__}"
        )
    _REGISTERED[:] = [added, *(f for f in _REGISTERED if f.name != added.name)]
    register_frontend(added.name, added.register_rules)


@dataclass(frozen=True)
class Resolved:
    """What a model is: the object to import and the frontend that imports it.

    Attributes
    ----------
    model
        What the user gave, or what a spec string or stack file loaded (a module, a :class:`Stack`).
    frontend
        The frontend that imports ``model``; None when ``model`` already is a :class:`Stack`.
    name
        The name the input itself gives (a spec string names its model), else None.
    """

    model: Any
    frontend: Frontend | None
    name: str | None = None

    @property
    def kind(self) -> str:
        """The frontend's name, or ``"stack"`` for a layer graph given as such."""
        return "stack" if self.frontend is None else self.frontend.name

    def stack(self, *, name: str | None = None, rules: RuleTable | None = None) -> Stack:
        """The layer graph (imported by the frontend; a given stack as it is)."""
        if self.frontend is None:
            stack: Stack = self.model
            return stack
        return self.frontend.load(self.model, name=name or self.name, rules=rules)


def resolve(model: Any, *, allow_code: bool = True) -> Resolved:
    """What ``model`` is (see :func:`rf_widgets.analyze` for what it may be).

    A spec string is loaded here, once (``allow_code=False`` refuses ``package.module:factory`` specs,
    see :mod:`rf_widgets.specs`); a stack file is read, a list of layers becomes a :class:`Stack`.
    """
    if isinstance(model, Resolved):
        return model
    if isinstance(model, Stack):
        return Resolved(model, None)
    if isinstance(model, os.PathLike) and not isinstance(os.fspath(model), str):
        raise ModelImportError(f"a path to a model must be text, got {type(os.fspath(model)).__name__}")
    for found in _REGISTERED:
        if found.accepts(model):
            return Resolved(model, found)
    if isinstance(model, os.PathLike):
        from rf_widgets.stackfile import read_stack

        return Resolved(read_stack(os.fspath(model)), None)
    if isinstance(model, str):
        from rf_widgets.specs import load_model_spec

        loaded = load_model_spec(model, allow_code=allow_code)
        if isinstance(loaded, Stack):
            return Resolved(loaded, None)
        return Resolved(loaded, _torch_or_fail(loaded, model), model)
    if isinstance(model, Sequence) and model and all(isinstance(layer, Layer) for layer in model):
        return Resolved(Stack(model), None)
    raise ModelImportError(
        "analyze() takes a torch.nn.Module, a Keras model, a Stack, a list of layers or a model spec string "
        f"such as 'torchvision:resnet18', got {type(model).__name__}"
    )


def _torch_or_fail(loaded: Any, spec: str) -> Frontend:
    """The frontend of what a spec string built (a torch module: specs build nothing else)."""
    for found in _REGISTERED:
        if found.accepts(loaded):
            return found
    raise ModelImportError(f"'{spec}' gave {type(loaded).__name__}, which no frontend imports")
