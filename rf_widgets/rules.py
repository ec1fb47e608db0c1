"""The rule table: one registry for modules, functions, tensor methods and the operators of other
frontends (ONNX, Keras), built-in and user rules alike. Importing this module does not import torch.

A *rule* is a callable ``rule(call) -> value`` that receives a :class:`~rf_widgets.torch_import.call.Call`
(the fx node, its arguments with activations marked, the module for a module call, and helpers that emit
layers) and returns what the node evaluates to: usually the activation of the layer it emitted. A rule
may also return a dict of :class:`~rf_widgets.core.layers.Layer` fields (``kind``, ``kernel``,
``stride``, ``dilation``, ``padding``, ...), which is emitted as one layer.

Rules are looked up in this order: the table passed to ``analyze(..., rules=table)``, the tables made
active with ``with table:`` (innermost first), then the built-in table. A module rule matches a module
type or any subclass of it (the nearest class in the MRO wins within one table); a function rule matches
the function object, or its ``"module.qualname"`` string (functions wrapped for torch.fx, whose module
need not be imported); a method rule matches the method name. An operator rule belongs to a named
frontend (``"onnx"``: keyed by the ONNX op type; ``"keras"``: keyed by the layer class or its
``"module.qualname"``) and receives that frontend's call object; each frontend has its own built-in
table (:func:`builtin_rules` with its name; frontends are registered in
:mod:`rf_widgets.frontends.registry`) after the user tables. A rule that cannot handle the arguments it
got raises :class:`Unsupported`: the node then becomes an ``unknown`` layer with that reason. Any other
exception from a rule (but an RFError, which is about the user's input and propagates) is a bug of the
rule: the node becomes ``unknown`` with the error as its reason and a RuleFailureWarning names the rule.

Examples
--------
>>> import torch.nn as nn
>>> class Blur(nn.Module):
...     def forward(self, x):
...         return x
>>> table = RuleTable()
>>> table.module(Blur, lambda call: call.window(kernel=5, padding=2))
>>> import rf_widgets as rfw
>>> rfw.analyze(nn.Sequential(nn.Conv2d(3, 3, 3), Blur()), 32, rules=table).layer("1").r_max
(7, 7)
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

__all__ = [
    "Rule",
    "RuleTable",
    "Unsupported",
    "active_tables",
    "builtin_rules",
    "lookup_chain",
    "register_frontend",
]

Rule = Callable[[Any], Any]
"""A rule takes its frontend's call object (torch's :class:`~rf_widgets.torch_import.call.Call`, ONNX's
``OnnxCall``, Keras' ``KerasCall``) and returns the value of the node."""


class Unsupported(Exception):
    """Raised by a rule that has no exact answer for the arguments it got; the node becomes unknown."""


class RuleTable:
    """Rules for module types, functions and tensor methods.

    A table is a context manager: inside ``with table:`` every import uses its rules before the
    built-in ones, and nothing is left behind when the block ends. ``analyze(model, size, rules=table)``
    does the same for one call.

    Examples
    --------
    >>> table = RuleTable()
    >>> table.method("my_blur", lambda call: call.window(kernel=3, padding=1))
    >>> "my_blur" in table
    True
    """

    def __init__(self, name: str = "user rules") -> None:
        self.name = name
        self._modules: dict[type | str, Rule] = {}
        self._functions: dict[Any, Rule] = {}
        self._methods: dict[str, Rule] = {}
        self._operators: dict[tuple[str, Any], Rule] = {}
        # module type -> rule after the MRO walk; weak, so that classes made in a test can go
        self._resolved: weakref.WeakKeyDictionary[type, Rule | None] = weakref.WeakKeyDictionary()
        self._tokens: list[Any] = []

    # -- registration ---------------------------------------------------------------------------------

    def module(self, module_type: type | str, rule: Rule) -> None:
        """Use ``rule`` for calls of modules of ``module_type`` (and its subclasses).

        ``module_type`` is a class, or its ``"module.qualname"`` string (for classes of packages that
        need not be imported, such as torchvision's). Modules with a rule are leaves of the trace:
        their ``forward`` is not looked into.
        """
        if not isinstance(module_type, type) and not (isinstance(module_type, str) and "." in module_type):
            raise TypeError(f"RuleTable.module needs a module class or 'module.Class', got {module_type!r}")
        self._modules[module_type] = _checked(rule, module_type)
        self._resolved.clear()

    def function(self, function: Any, rule: Rule) -> None:
        """Use ``rule`` for calls of ``function`` (the object, or its ``"module.qualname"`` string)."""
        self._functions[function] = _checked(rule, function)

    def method(self, name: str, rule: Rule) -> None:
        """Use ``rule`` for calls of the tensor method ``name`` (``x.name(...)``)."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"RuleTable.method needs a method name, got {name!r}")
        self._methods[name] = _checked(rule, name)

    def operator(self, frontend: str, key: Any, rule: Rule) -> None:
        """Use ``rule`` for the operator ``key`` of another frontend.

        ``frontend`` names the importer (``"onnx"``, ``"keras"``); ``key`` is what that importer looks
        up (an ONNX op type such as ``"Conv"``, a Keras layer class or its ``"module.qualname"``). The
        rule receives that importer's call object (see docs/rules.md).

        Examples
        --------
        >>> table = RuleTable()
        >>> table.operator("onnx", "MyBlur", lambda call: call.window(kernel=3, padding=1))
        >>> table.for_operator("onnx", "MyBlur") is not None
        True
        """
        if not isinstance(frontend, str) or not frontend:
            raise TypeError(f"RuleTable.operator needs a frontend name such as 'onnx', got {frontend!r}")
        self._operators[(frontend, key)] = _checked(rule, key)

    # -- lookup ---------------------------------------------------------------------------------------

    def for_module(self, module_type: type) -> Rule | None:
        if module_type in self._resolved:
            return self._resolved[module_type]
        found = None
        for klass in module_type.__mro__:
            found = self._modules.get(klass) or self._modules.get(_qualified(klass) or "")
            if found is not None:
                break
        self._resolved[module_type] = found
        return found

    def for_function(self, function: Any) -> Rule | None:
        try:
            rule = self._functions.get(function)
        except TypeError:  # an unhashable target
            rule = None
        if rule is None:
            rule = self._functions.get(_qualified(function))
        return rule

    def for_method(self, name: str) -> Rule | None:
        return self._methods.get(name)

    def for_operator(self, frontend: str, key: Any) -> Rule | None:
        """The rule for ``key`` of ``frontend``; a class key also matches through its MRO."""
        if isinstance(key, type):
            for klass in key.__mro__:
                rule = self._operators.get((frontend, klass)) or self._operators.get(
                    (frontend, _qualified(klass))
                )
                if rule is not None:
                    return rule
            return None
        return _safe_get(self._operators, (frontend, key))

    def module_types(self) -> tuple[type, ...]:
        """The classes with a rule; classes named by a string count once their module is imported."""
        found = []
        for key in self._modules:
            if isinstance(key, type):
                found.append(key)
                continue
            module, _, name = key.rpartition(".")
            cls = getattr(sys.modules.get(module), name, None)
            if isinstance(cls, type):
                found.append(cls)
        return tuple(found)

    def __contains__(self, key: object) -> bool:
        return (
            key in self._modules
            or key in self._methods
            or _safe_in(key, self._functions)
            or _safe_in(key, self._operators)
        )

    def __len__(self) -> int:
        return len(self._modules) + len(self._functions) + len(self._methods) + len(self._operators)

    def __repr__(self) -> str:
        extra = f", {len(self._operators)} operators" if self._operators else ""
        return (
            f"RuleTable({self.name!r}: {len(self._modules)} modules, {len(self._functions)} functions, "
            f"{len(self._methods)} methods{extra})"
        )

    # -- scope ----------------------------------------------------------------------------------------

    def __enter__(self) -> RuleTable:
        self._tokens.append(_ACTIVE.set((self, *_ACTIVE.get())))
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.reset(self._tokens.pop())


_ACTIVE: ContextVar[tuple[RuleTable, ...]] = ContextVar("rf_widgets_rule_tables", default=())
_BUILTIN: dict[str, RuleTable] = {}
_FILLERS: dict[str, Callable[[RuleTable], None]] = {}
"""frontend -> what fills its built-in table; set by :mod:`rf_widgets.frontends.registry` for every
frontend it registers (the built-in three when ``rf_widgets`` is imported, which importing this module
does first)."""


def active_tables() -> tuple[RuleTable, ...]:
    """The tables made active with ``with table:``, innermost first."""
    return _ACTIVE.get()


def builtin_rules(frontend: str = "torch") -> RuleTable:
    """The table of built-in rules of ``frontend`` (built on first use).

    The registered frontend of that name (:mod:`rf_widgets.frontends.registry`) fills it with its
    ``register_rules(table)``.
    """
    if frontend not in _BUILTIN:
        if frontend not in _FILLERS:
            known = ", ".join(_FILLERS)
            raise KeyError(f"no frontend is registered as {frontend!r} (known: {known})")
        table = RuleTable(f"built-in {frontend} rules" if frontend != "torch" else "built-in rules")
        _FILLERS[frontend](table)
        _BUILTIN[frontend] = table
    return _BUILTIN[frontend]


def register_frontend(frontend: str, fill: Callable[[RuleTable], None]) -> None:
    """Use ``fill(table)`` to make the built-in table of ``frontend`` (called by
    :func:`rf_widgets.frontends.register`; a table made before is dropped)."""
    _FILLERS[frontend] = fill
    _BUILTIN.pop(frontend, None)


def lookup_chain(explicit: RuleTable | None = None, frontend: str = "torch") -> tuple[RuleTable, ...]:
    """The tables an import consults, first match wins."""
    if explicit is not None and not isinstance(explicit, RuleTable):
        raise TypeError(f"rules must be a RuleTable, got {type(explicit).__name__}")
    head = (explicit,) if explicit is not None else ()
    return (*head, *active_tables(), builtin_rules(frontend))


def iter_module_types(chain: tuple[RuleTable, ...]) -> Iterator[type]:
    for table in chain:
        yield from table.module_types()


def _checked(rule: Any, key: object) -> Rule:
    if not callable(rule):
        raise TypeError(f"the rule for {key!r} must be callable, got {type(rule).__name__}")
    return rule  # type: ignore[no-any-return]


def _qualified(function: Any) -> str | None:
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None)
    return f"{module}.{name}" if module and name else None


def _safe_get(table: dict[Any, Rule], key: Any) -> Rule | None:
    try:
        return table.get(key)
    except TypeError:
        return None


def _safe_in(key: object, table: dict[Any, Any]) -> bool:
    try:
        return key in table
    except TypeError:
        return False
