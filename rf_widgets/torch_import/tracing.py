"""Getting a torch.fx graph out of a model without running it on data, and without changing it."""

from __future__ import annotations

import copy
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.fx as fx

from rf_widgets.errors import ModelImportError
from rf_widgets.rules import RuleTable

__all__ = ["preserved", "trace"]

MAX_FALLBACK_LEAVES = 64


class _Tracer(fx.Tracer):
    """The default tracer plus extra leaf modules (by identity) and extra leaf types."""

    def __init__(self, leaves: set[int] | None = None, leaf_types: tuple[type, ...] = ()) -> None:
        # Defaults, because a pickled GraphModule is re-traced on loading with ``tracer_cls()``.
        super().__init__()
        self.leaves = leaves if leaves is not None else set()
        self.leaf_types = leaf_types

    def is_leaf_module(self, m: torch.nn.Module, module_qualified_name: str) -> bool:
        if id(m) in self.leaves or (self.leaf_types and isinstance(m, self.leaf_types)):
            return True
        return super().is_leaf_module(m, module_qualified_name)


def trace(
    model: torch.nn.Module,
    leaf_types: tuple[type, ...] = (),
    *,
    example: torch.Tensor | None = None,
    chain: tuple[RuleTable, ...] = (),
) -> tuple[fx.GraphModule, str, tuple[str, ...]]:
    """Trace ``model`` symbolically; when torch.fx cannot, export it; else make submodules opaque leaves.

    With an ``example`` input, a model torch.fx cannot trace is read through ``torch.export`` on that
    input (:mod:`rf_widgets.torch_import.exporting`; ``chain`` is the rule chain the operators are
    mapped for). When that fails too, or without an example, the submodule whose code fails becomes an
    opaque leaf and the trace is retried. Returns the graph module, a sentence saying how the graph was
    obtained (it starts with "torch.export" when export made the graph) and the names of the modules
    that had to be treated as opaque leaves.
    """
    own = _own_graph(model, leaf_types)
    if own is not None:
        _check_single_input(model, own.graph)
        return own, "its own torch.fx graph (a GraphModule)", ()
    try:
        module = _fx_trace(model, set(), leaf_types)
    except ModelImportError:
        raise
    except Exception as err:  # tracing runs arbitrary user code: any failure is possible
        fx_error = err
    else:
        return module, "torch.fx symbolic trace", ()
    fx_reason = f"torch.fx could not trace {type(model).__name__}: {_failing_call(fx_error)}"
    export_reason = "torch.export was not tried"
    if example is not None:
        try:
            module = _export(model, example, leaf_types, chain)
        except ModelImportError:
            raise
        except Exception as err:  # exporting runs arbitrary user code too
            export_reason = f"torch.export failed too: {_failing_call(err, skip='torch/')}"
        else:
            size = "x".join(str(n) for n in example.shape[2:])
            return module, f"torch.export at {size} ({fx_reason})", ()
    module, opaque = _with_opaque_leaves(model, leaf_types, fx_error, f"{fx_reason}; {export_reason}")
    how = (
        "torch.fx symbolic trace with the untraceable submodules "
        + ", ".join(f"'{n}'" for n in opaque)
        + f" kept as opaque leaves ({export_reason})"
    )
    return module, how, opaque


def _fx_trace(model: torch.nn.Module, leaves: set[int], leaf_types: tuple[type, ...]) -> fx.GraphModule:
    tracer = _Tracer(leaves, leaf_types)
    graph = tracer.trace(model)
    _check_single_input(model, graph)
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


def _export(
    model: torch.nn.Module, example: torch.Tensor, leaf_types: tuple[type, ...], chain: tuple[RuleTable, ...]
) -> fx.GraphModule:
    from rf_widgets.torch_import.exporting import export_graph

    tracer = _Tracer(set(), leaf_types)
    module = export_graph(model, example, tracer.is_leaf_module, chain)
    _check_single_input(model, module.graph)
    return module


def _with_opaque_leaves(
    model: torch.nn.Module, leaf_types: tuple[type, ...], first: BaseException, reasons: str
) -> tuple[fx.GraphModule, tuple[str, ...]]:
    """Retry torch.fx with each submodule whose code fails made an opaque leaf."""
    names = {id(m): name for name, m in model.named_modules()}
    leaves: set[int] = set()
    opaque: list[str] = []
    err: BaseException = first
    while True:
        culprit = _failing_submodule(err, names, leaves, id(model))
        if culprit is None or len(opaque) >= MAX_FALLBACK_LEAVES:
            raise ModelImportError(reasons) from first
        leaves.add(culprit)
        opaque.append(names[culprit])
        try:
            return _fx_trace(model, leaves, leaf_types), tuple(opaque)
        except ModelImportError:
            raise
        except Exception as again:  # tracing runs arbitrary user code: any failure is possible
            err = again


def _check_single_input(model: torch.nn.Module, graph: fx.Graph) -> None:
    """Refuse a model whose forward reads more than one input without a default.

    The analysis follows the receptive field from one input image; a second input (a second image, a
    mask) would otherwise be dropped without a word.
    """
    inputs = [
        str(node.target)
        for node in graph.nodes
        if node.op == "placeholder" and not node.args and node.users and not str(node.target).startswith("*")
    ]
    if len(inputs) > 1:
        names = ", ".join(f"'{name}'" for name in inputs)
        raise ModelImportError(
            f"{type(model).__name__}.forward reads {len(inputs)} inputs ({names}); rf_widgets follows the "
            "receptive field from one input image, so it does not analyse this model. Wrap it in a module "
            "whose forward takes one tensor (fixing the others), or analyse each branch on its own"
        )


def _own_graph(model: torch.nn.Module, leaf_types: tuple[type, ...]) -> fx.GraphModule | None:
    """A GraphModule whose graph calls only leaf modules is read as it is, not traced again.

    That keeps the module scopes of its nodes (the names of function layers, e.g. 'layer1.0.add'), which
    a new trace of the generated code would lose. The graph is copied, so the model is not changed.
    """
    if not isinstance(model, fx.GraphModule):
        return None
    tracer = _Tracer(set(), leaf_types)
    for node in model.graph.nodes:
        if node.op == "call_module":
            target = str(node.target)
            if not tracer.is_leaf_module(model.get_submodule(target), target):
                return None
    return fx.GraphModule(model, copy.deepcopy(model.graph), type(model).__name__)


def _failing_submodule(err: BaseException, names: dict[int, str], leaves: set[int], root: int) -> int | None:
    """The deepest submodule (not the root, not already a leaf) whose forward was running."""
    found = None
    tb = err.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if (
            isinstance(owner, torch.nn.Module)
            and id(owner) in names
            and id(owner) != root
            and id(owner) not in leaves
        ):
            found = id(owner)
        tb = tb.tb_next
    return found


def _failing_call(err: BaseException, skip: str = "torch/fx") -> str:
    """The error's first line and the last frame of the model's code (not under ``skip``) it came from."""
    frames = traceback.extract_tb(err.__traceback__)
    user = [f for f in frames if skip not in f.filename.replace("\\", "/")]
    where = user[-1] if user else (frames[-1] if frames else None)
    message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if where is None:
        return message
    return f"{message} (in {where.name}, {where.filename}:{where.lineno}: {where.line})"


_HOOKS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)
"""The hook dictionaries of a module (and, with ``_global`` in front, of every module) that a call runs."""


@contextmanager
def preserved(model: torch.nn.Module) -> Iterator[None]:
    """Restore every training flag and every buffer afterwards, and run none of the user's hooks inside.

    Tracing runs the Python of each ``forward`` once: code that updates a buffer in place (timm's
    ``BatchNormAct2d`` increments ``num_batches_tracked`` in training mode) would change the model, and
    a forward pass through a graph traced in training mode updates running statistics. Buffers are
    small next to the parameters, so each is copied and written back if it changed (compared by value:
    batch norm's running statistics change without moving the tensor's version counter). Parameters
    are proxies during tracing and only read by the forward passes, which run without grad.

    The hooks of every submodule, and the global module hooks, are detached for the duration (a hook
    would see tracing placeholders, and its side effects are the user's business, not the analysis'):
    each hook dictionary is swapped for an empty one and the very same dictionary is put back in a
    ``finally``, so the user's handles keep working.
    """
    flags = [(m, m.training) for m in model.modules()]
    # Meta tensors (rf_widgets.zoo builds models there) hold no values that could change.
    buffers = [(b, b.detach().clone()) for b in model.buffers() if not b.is_meta]
    hooks = _detach_hooks(model)
    try:
        yield
    finally:
        _attach_hooks(hooks)
        for m, flag in flags:
            m.training = flag
        with torch.no_grad():
            for buffer, saved in buffers:
                if not torch.equal(buffer, saved):
                    buffer.copy_(saved)


def _detach_hooks(model: torch.nn.Module) -> list[tuple[Any, str, Any]]:
    """Empty every hook dictionary that a call of ``model`` would consult; what to put back."""
    import torch.nn.modules.module as module_globals

    saved: list[tuple[Any, str, Any]] = []
    for owner, prefix in [(module_globals, "_global")] + [(m, "") for m in model.modules()]:
        for name in _HOOKS:
            name = prefix + name
            hooks = owner.__dict__.get(name) if owner is module_globals else getattr(owner, name, None)
            if isinstance(hooks, dict) and hooks:
                saved.append((owner, name, hooks))
                setattr(owner, name, type(hooks)())
    return saved


def _attach_hooks(saved: list[tuple[Any, str, Any]]) -> None:
    for owner, name, hooks in reversed(saved):
        setattr(owner, name, hooks)


def fetch_attr(module: torch.nn.Module, target: str) -> Any:
    """The object a ``get_attr`` node refers to."""
    obj: Any = module
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj
