"""The rule table: one registry for modules, functions and tensor methods, built-in and user rules alike.

A *rule* is a callable ``rule(call) -> value`` that receives a :class:`~rf_widgets.torch_import.call.Call`
(the fx node, its arguments with activations marked, the module for a module call, and helpers that emit
layers) and returns what the node evaluates to: usually the activation of the layer it emitted. A rule
may also return a dict of :class:`~rf_widgets.core.layers.Layer` fields (``kind``, ``kernel``,
``stride``, ``dilation``, ``padding``, ...), which is emitted as one layer.

Rules are looked up in this order: the table passed to ``analyze(..., rules=table)``, the tables made
active with ``with table:`` (innermost first), then the built-in table. A module rule matches a module
type or any subclass of it (the nearest class in the MRO wins within one table); a function rule matches
the function object, or its ``"module.qualname"`` string (functions wrapped for torch.fx, whose module
need not be imported); a method rule matches the method name. A rule that cannot handle the arguments it
got raises :class:`Unsupported`: the node then becomes an ``unknown`` layer with that reason. Any other
exception from a rule is an importer bug and is raised as a ModelImportError naming the node.

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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rf_widgets.torch_import.call import Call

__all__ = ["Rule", "RuleTable", "Unsupported", "active_tables", "builtin_rules", "lookup_chain"]

Rule = Callable[["Call"], Any]


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
        return key in self._modules or key in self._methods or _safe_in(key, self._functions)

    def __len__(self) -> int:
        return len(self._modules) + len(self._functions) + len(self._methods)

    def __repr__(self) -> str:
        return (
            f"RuleTable({self.name!r}: {len(self._modules)} modules, {len(self._functions)} functions, "
            f"{len(self._methods)} methods)"
        )

    # -- scope ----------------------------------------------------------------------------------------

    def __enter__(self) -> RuleTable:
        self._tokens.append(_ACTIVE.set((self, *_ACTIVE.get())))
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.reset(self._tokens.pop())


_ACTIVE: ContextVar[tuple[RuleTable, ...]] = ContextVar("rf_widgets_rule_tables", default=())
_BUILTIN: list[RuleTable] = []


def active_tables() -> tuple[RuleTable, ...]:
    """The tables made active with ``with table:``, innermost first."""
    return _ACTIVE.get()


def builtin_rules() -> RuleTable:
    """The table of built-in rules (built on first use)."""
    if not _BUILTIN:
        from rf_widgets.torch_import import ops_layers, ops_layout, ops_merge, ops_windows

        table = RuleTable("built-in rules")
        for part in (ops_layers, ops_layout, ops_merge, ops_windows):
            part.register(table)
        _BUILTIN.append(table)
    return _BUILTIN[0]


def lookup_chain(explicit: RuleTable | None = None) -> tuple[RuleTable, ...]:
    """The tables an import consults, first match wins."""
    if explicit is not None and not isinstance(explicit, RuleTable):
        raise TypeError(f"rules must be a RuleTable, got {type(explicit).__name__}")
    head = (explicit,) if explicit is not None else ()
    return (*head, *active_tables(), builtin_rules())


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


def _safe_in(key: object, table: dict[Any, Any]) -> bool:
    try:
        return key in table
    except TypeError:
        return False
