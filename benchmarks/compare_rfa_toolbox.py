#!/usr/bin/env python3
"""Benchmark rf_widgets against the reference toolbox rfa-toolbox 1.7.0 on torchvision's classifiers.

Setup and usage (from the repository root; see BENCHMARKS.md for a measured run)::

    .venv/bin/pip install --no-deps --ignore-requires-python rfa-toolbox==1.7.0 attrs graphviz
    .venv/bin/python benchmarks/compare_rfa_toolbox.py                 # all 80 torchvision classifiers
    .venv/bin/python benchmarks/compare_rfa_toolbox.py --quick         # 15 representative models
    .venv/bin/python benchmarks/compare_rfa_toolbox.py --models resnet18,densenet121 --repeat 5

For every model (built once with ``weights=None`` in eval mode) the script measures, in one process:

* ``ours``: ``rfw.analyze(model, R)`` end to end (torch.fx import, fields, verdicts and the feasible
  resolution range), plus reading ``unproductive_layers`` and ``border_layer``.
* ``rfa``: ``create_graph_from_pytorch_model(model, input_res=(1, 3, R, R))`` (a ``torch.jit.trace`` at
  R x R and the toolbox's graph) plus ``obtain_border_layers(graph, input_resolution=R, filter_dense=True)``.
* ``at()``: ``analysis.at(R2)`` (plus ``unproductive_layers`` and ``border_layer``) for a few other
  resolutions, without re-tracing.

Each timing is the median of ``--repeat`` runs; ours and rfa runs are interleaved so that load from other
processes hits both alike. Before anything is timed both tools analyse resnet18 once, untimed (the first
call of either pays one-off import and JIT costs).

Then it compares the numbers. The toolbox keeps one node per ``torch.nn`` module call (``layer1.0.conv1``),
collapses ``SqueezeExcitation`` modules into one node, and turns runs of tensor functions into one node
labelled with the function names. Layers are paired by module path and call order (``layer1.0.relu`` is
called twice in a BasicBlock: first call with first call), a collapsed toolbox module with the last
rf_widgets layer inside it, and single-function toolbox nodes (``add``, ``cat``, ``mean``...) with the
rf_widgets function layers of the same name in the same module, in call order, when both tools have the
same number of them there. For each pair ``r_min`` and
``r_max`` are compared per axis (the toolbox gives per-axis tuples after a convolution with a tuple kernel,
scalars otherwise, and ``inf`` after adaptive pooling and flatten). Unproductive layers (what
``obtain_border_layers`` returns) are compared on the paired layers at R and at ``--verdict-resolutions``.

Every disagreement is traced to its root: the first paired layer on its paths whose paired inputs agree.
The root is then classified by looking at that concrete layer (dilation, SqueezeExcitation, ``mean``,
attention, adaptive pooling, feature-map sizes ...). What fits no rule is printed as "unexplained".

The toolbox may crash on a model; that is caught and reported per model, the run goes on.
"""

from __future__ import annotations

# rfa-toolbox 1.7.0 does ``from collections import Sequence``, removed in Python 3.10.
import collections
import collections.abc
import os

collections.Sequence = collections.abc.Sequence  # type: ignore[attr-defined]

# Without this, torch's OpenMP workers busy-wait after every forward pass of the toolbox's jit.trace and,
# on a loaded 2-core machine, take CPU from the next runs in the process (measured here: the toolbox's
# own graph of mobilenet_v2 took 16.6 s with the default policy, 4.7 s with this one). Set before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402

import rf_widgets as rfw  # noqa: E402

try:
    import rfa_toolbox
    from rfa_toolbox import create_graph_from_pytorch_model
    from rfa_toolbox.encodings.pytorch.intermediate_graph import Digraph
    from rfa_toolbox.utils.graph_utils import obtain_border_layers
except ImportError as err:  # pragma: no cover - depends on the environment
    sys.exit(
        f"rfa-toolbox is not importable ({err}). Install it with\n"
        "  .venv/bin/pip install --no-deps --ignore-requires-python rfa-toolbox==1.7.0 attrs graphviz"
    )

INF = math.inf
QUICK = (
    "alexnet,vgg16,resnet18,resnet50,densenet121,inception_v3,googlenet,squeezenet1_0,"
    "shufflenet_v2_x1_0,mnasnet1_0,mobilenet_v3_large,efficientnet_b0,regnet_y_400mf,convnext_tiny,"
    "vit_b_16"
)
# Not in torchvision's list, added with --extra: the segmentation-backbone configuration of ResNet-50,
# the only way to get dilated convolutions out of torchvision's classifiers.
EXTRA_MODELS = {
    "resnet50_dilated": lambda: torchvision.models.resnet50(
        weights=None, replace_stride_with_dilation=[False, True, True]
    ),
}
SUBSTITUTED = (r"\d", r"inp_\d+", r"out_\d+")  # rfa_toolbox.encodings.pytorch.substitutors
MODULE_LABEL = re.compile(r"^(\S+) \(([^()]*)\)$")
ATTENTION_OPS = {
    "MultiheadAttention",
    "matmul",
    "bmm",
    "baddbmm",
    "einsum",
    "scaled_dot_product_attention",
    "softmax",
}
# toolbox function labels (aten names) that rf_widgets names differently
OP_ALIASES = {"cat": "concat"}
GLOBAL_POOL_OPS = {"AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d"}


# ------------------------------------------------------------------------------------------------------
# The toolbox: record what its graph nodes stand for
# ------------------------------------------------------------------------------------------------------


class RfaRecorder:
    """Records the label of every toolbox graph node (``"layer1.0.conv1 (Conv2d)"``, ``"add"``).

    The toolbox keeps only ids such as ``"layer1.0..15"`` in its nodes; the label with the module path is
    passed to ``Digraph.node`` and dropped. Wrapping that method (one dict store per node, negligible next
    to the trace) recovers it. It also counts the nodes the toolbox resolves, to detect a partial graph
    (``Digraph.to_graph`` stops silently when it cannot resolve a node).
    """

    def __init__(self) -> None:
        self.labels: dict[str, str] = {}
        self.defined = 0
        self.created = 0
        self.nodes: list[Any] = []
        original_node = Digraph.node
        original_create = Digraph.create_enriched_node
        recorder = self

        def node(self_: Any, name: str, label: str | None = None, *args: Any, **kwargs: Any) -> None:
            if name not in recorder.labels:
                recorder.defined += 1
            recorder.labels[name] = name if label is None else label
            return original_node(self_, name, label, *args, **kwargs)

        def create_enriched_node(self_: Any, *args: Any, **kwargs: Any) -> Any:
            recorder.created += 1
            node = original_create(self_, *args, **kwargs)
            recorder.nodes.append(node)
            return node

        Digraph.node = node
        Digraph.create_enriched_node = create_enriched_node

    def reset(self) -> None:
        self.labels = {}
        self.defined = 0
        self.created = 0
        self.nodes = []

    def dropped(self, graph: Any) -> int:
        """Nodes the toolbox built but left out of ``graph.all_layers`` (the list it analyses).

        ``all_layers`` is shared through ``predecessors[0]``: a node without predecessors starts a new list,
        so a second source (a module reading only a buffer) splits the graph and the output node's list
        misses the rest. Nodes its substitutors remove on purpose (names ``inp_N``, ``out_N``, digits)
        are not counted.
        """
        kept = {id(n) for n in graph.all_layers}
        return sum(
            1
            for n in self.nodes
            if id(n) not in kept and not any(re.match(p, n.layer_info.name) for p in SUBSTITUTED)
        )


RECORDER = RfaRecorder()


class Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise Timeout()


def count_module_classes() -> int:
    """How many subclasses of ``torch.nn.Module`` exist (directly or not) in this process."""
    seen: set[type] = set()
    todo: list[type] = [torch.nn.Module]
    while todo:
        for sub in type.__subclasses__(todo.pop()):
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return len(seen)


def reset_torchscript_cache() -> None:
    """Forget the classes ``torch.jit.trace`` leaves behind (called after every toolbox run, untimed).

    Each trace defines a new ``nn.Module`` subclass per submodule (``TracedModule``'s ``QualnameWrapper``)
    and TorchScript's concrete-type store keeps them for good: 675 for one trace of efficientnet_b0. Every
    ``setattr`` on ``nn.Module`` then walks all subclasses, and torch.fx patches ``nn.Module`` while
    tracing, so without this reset rf_widgets' import (and the toolbox's own later traces) slow down as
    the run goes on (measured: resnet18 from about 25 ms to 130 ms after six toolbox models, 0.9 s as the
    48th model of a full run). Clearing the store lets the classes be collected; no traced module is
    alive at that point.
    """
    from torch.jit import _recursive

    _recursive.concrete_type_store.type_store.clear()
    _recursive.concrete_type_store.methods_compiled.clear()
    gc.collect()


def run_rfa(model: torch.nn.Module, resolution: int) -> tuple[Any, list, float]:
    RECORDER.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        graph = create_graph_from_pytorch_model(model, input_res=(1, 3, resolution, resolution))
        border = obtain_border_layers(graph, input_resolution=resolution, filter_dense=True)
        elapsed = time.perf_counter() - t0
    return graph, border, elapsed


def run_ours(model: torch.nn.Module, resolution: int) -> tuple[Any, float, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        analysis = rfw.analyze(model, resolution)
        analysis.unproductive_layers  # noqa: B018 - part of the timed work
        analysis.border_layer  # noqa: B018
        elapsed = time.perf_counter() - t0
    messages = [str(w.message) for w in caught if "rf_widgets" in type(w.message).__module__]
    return analysis, elapsed, messages


def time_at(analysis: Any, resolution: int) -> float:
    t0 = time.perf_counter()
    other = analysis.at(resolution)
    other.unproductive_layers  # noqa: B018
    other.border_layer  # noqa: B018
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------------
# Pairing layers
# ------------------------------------------------------------------------------------------------------


def per_axis(value: Any, ndim: int = 2) -> tuple:
    """A toolbox value (scalar, tuple, numpy scalar, inf) as one plain number per axis."""
    values = list(value) if isinstance(value, (tuple, list, np.ndarray)) else [value] * ndim
    out = []
    for v in values:
        v = float(v)
        out.append(INF if math.isinf(v) else (int(v) if v == int(v) else v))
    return tuple(out)


def show(values: Any) -> str:
    if values is None:
        return "-"
    if not isinstance(values, (tuple, list)):
        values = (values,)
    shown = [
        "inf" if (isinstance(v, float) and math.isinf(v)) else f"{v:g}" if isinstance(v, float) else str(v)
        for v in values
    ]
    return shown[0] if len(set(shown)) == 1 else "x".join(shown)


def scope_of(name: str, module_paths: list[str]) -> str | None:
    """The module a toolbox function node was created in: the longest module path prefixing its id.

    Ids are ``<scope>.<value>`` for functions feeding a node inside the module and ``inp_<scope>.out_<i>``
    for functions feeding the module's output. ``inp_<child scope>.inp_<value>`` (functions feeding a
    submodule) belongs to the caller, whose path the id does not give: None.
    """
    boundary = re.match(r"^inp_(.*?)\.?out_\d+$", name)
    if boundary:
        return boundary.group(1)
    if name.startswith("inp_"):
        return None
    for path in module_paths:  # longest first
        if name.startswith(path + "."):
            return path
    return ""


def our_scope(name: str) -> str:
    base = name.split(":")[0]
    return base.rsplit(".", 1)[0] if "." in base else ""


def rfa_nodes(graph: Any, labels: dict[str, str], module_paths: list[str]) -> list[dict]:
    out = []
    for order, node in enumerate(graph.all_layers):
        label = labels.get(node.name, node.name)
        match = MODULE_LABEL.match(label)
        entry = {"node": node, "order": order, "label": " ".join(label.split())}
        if match:
            entry.update(kind="module", path=match.group(1), type=match.group(2))
        else:
            entry.update(kind="op", ops=label.split(), scope=scope_of(node.name, module_paths))
        out.append(entry)
    return out


def pair_layers(layers: tuple, entries: list[dict]) -> list[tuple[int, int, str]]:
    """(our index, toolbox index, how) for every pair; each side used at most once."""
    pairs: list[tuple[int, int, str]] = []
    used_ours: set[int] = set()
    used_rfa: set[int] = set()

    ours_by_module: dict[str, list[int]] = {}
    for i, layer in enumerate(layers):
        if layer.module is not None:
            ours_by_module.setdefault(layer.module, []).append(i)
    rfa_by_module: dict[str, list[int]] = {}
    for j, e in enumerate(entries):
        if e["kind"] == "module":
            rfa_by_module.setdefault(e["path"], []).append(j)

    # 1. same module path, k-th call with k-th call
    for path, js in rfa_by_module.items():
        for i, j in zip(ours_by_module.get(path, []), js, strict=False):
            pairs.append((i, j, "module"))
            used_ours.add(i)
            used_rfa.add(j)

    # 2. a module the toolbox keeps as one node (SqueezeExcitation) against our last layer inside it
    for path, js in rfa_by_module.items():
        if path in ours_by_module or len(js) != 1:
            continue
        inside = [i for i, layer in enumerate(layers) if layer.name.startswith(path + ".")]
        if inside and inside[-1] not in used_ours:
            pairs.append((inside[-1], js[0], "collapsed"))
            used_ours.add(inside[-1])
            used_rfa.add(js[0])

    # 3. single-function toolbox nodes against our function layers of the same op in the same module
    ours_fn: dict[tuple[str, str], list[int]] = {}
    for i, layer in enumerate(layers):
        if layer.module is None and i not in used_ours:
            ours_fn.setdefault((our_scope(layer.name), layer.op), []).append(i)
    rfa_fn: dict[tuple[str, str], list[int]] = {}
    for j, e in enumerate(entries):
        if e["kind"] == "op" and len(e["ops"]) == 1 and e["scope"] is not None and j not in used_rfa:
            op = e["ops"][0]
            rfa_fn.setdefault((e["scope"], OP_ALIASES.get(op, op)), []).append(j)
    for key, js in rfa_fn.items():
        ours_js = ours_fn.get(key, [])
        if len(ours_js) != len(js):
            # the toolbox merges chained functions into one node (Inception-E: two inner cats and the
            # outer cat become one "cat" node): the k-th call is not the k-th node, leave them unpaired
            continue
        for i, j in zip(ours_js, js, strict=True):
            pairs.append((i, j, "function"))
            used_ours.add(i)
            used_rfa.add(j)
    pairs.sort()
    return pairs


# ------------------------------------------------------------------------------------------------------
# Explaining disagreements
# ------------------------------------------------------------------------------------------------------

CATEGORY_TEXT = {
    "dilation": "dilation ignored by rfa-toolbox (it grows r by (k-1)*J, rf_widgets by d*(k-1)*J)",
    "squeeze-excitation": "torchvision SqueezeExcitation is one k=1 node in rfa-toolbox; rf_widgets sees its "
    "global branch (r_max = inf downstream, r_min and r_max_local equal the toolbox's values)",
    "mean": "x.mean over the spatial axes is elementwise (k=1) in rfa-toolbox, global in rf_widgets",
    "attention": "attention / matmul over positions is elementwise (k=1) in rfa-toolbox, global in "
    "rf_widgets",
    "adaptive-pool-not-global": "rfa-toolbox treats every adaptive pool as global (r = inf); rf_widgets "
    "computes the window at the given size (identity when input and output sizes match)",
    "global-other": "rf_widgets finds a global operation that rfa-toolbox treats as local",
    "kernel-or-stride": "rfa-toolbox reads another kernel or stride for this layer",
    "feature-map": "rule B differs because rfa-toolbox uses n // J as feature-map size, rf_widgets the real "
    "conv/pool arithmetic",
    "per-axis-rules": "rf_widgets judges each axis on its own and flags a layer when every axis is "
    "unproductive, by rule A on some axes and rule B on others (SPEC section 6: per axis, flagged only if "
    "all axes agree); rfa-toolbox needs rule A on all axes or rule B on all axes. Shows with 7x1 and 1x7 "
    "kernels",
    "rule-b-kernel": "rule B differs because rf_widgets compares the map with the dilated kernel k_eff",
    "constant-source": "rfa-toolbox starts a path with r = 1 at a node that has no predecessor because it "
    "reads only a buffer (swin_v2's cpb_mlp on its constant coordinate table); rf_widgets counts only paths "
    "from the image, so the toolbox's r_min is smaller",
    "global-filter": "the layer is global (r_min = inf) on one side: rf_widgets never flags global layers, "
    "rfa-toolbox drops them with filter_dense",
    "pointwise": "SPEC section 6 version 2: rules A and B judge spatial layers only (k_eff > 1 on some "
    "axis); "
    "a pointwise layer (batch norm, activation, 1x1 convolution, add, LayerNorm) is unproductive exactly "
    "when its non-global inputs are. rfa-toolbox applies rules A and B to every node",
    "unexplained": "not explained by any rule of this script",
}


def _walk_back_unpaired(layers: tuple, index: dict[str, int], i: int, paired: set[int]) -> list[int]:
    """Our layers between ``i`` and its nearest paired ancestors (unpaired ones only)."""
    seen: set[int] = set()
    stack = [index[n] for n in layers[i].inputs if n in index]
    out = []
    while stack:
        k = stack.pop()
        if k in seen or k in paired:
            continue
        seen.add(k)
        out.append(k)
        stack.extend(index[n] for n in layers[k].inputs if n in index)
    return out


def _constant_sources(node: Any) -> list[Any]:
    """Toolbox ancestors of ``node`` that have no predecessor and still ``r = 1`` (not the image input).

    The toolbox starts every node without predecessors at ``r = 1``; a module that reads only a buffer
    (swin_v2's ``cpb_mlp`` on its constant coordinate table) becomes such a source. The network's first
    layer is one too, but its ``r`` is its kernel size, above 1.
    """
    seen: set[int] = set()
    todo = [node]
    out = []
    while todo:
        n = todo.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if not n.predecessors and max(per_axis(n.receptive_field_max)) == 1:
            out.append(n)
        todo.extend(n.predecessors)
    return out


def classify_root(
    model: str,
    layers: tuple,
    index: dict[str, int],
    i: int,
    entry: dict,
    how: str,
    paired: set[int],
    field: str,
    labels: dict[str, str],
) -> tuple[str, str]:
    """Category and evidence for a root disagreement on ``field`` at our layer ``i`` (toolbox ``entry``)."""
    layer = layers[i]
    node = entry["node"]
    r_min, r_max = per_axis(node.receptive_field_min), per_axis(node.receptive_field_max)
    ours = tuple(getattr(layer, field))
    theirs = r_min if field == "r_min" else r_max
    between = [layers[k] for k in _walk_back_unpaired(layers, index, i, paired)]
    here = [layer, *between]
    shown_between = ", ".join(x.name for x in between[:6]) + (" ..." if len(between) > 6 else "")
    evidence = (
        f"{model} {layer.name} ({layer.op}), {field} differs: rf_widgets r_min/r_max "
        f"{show(layer.r_min)}/{show(layer.r_max)}, rfa-toolbox {show(r_min)}/{show(r_max)}"
    )
    ours_global = math.isinf(ours[0]) and not math.isinf(theirs[0])
    rfa_global = math.isinf(theirs[0]) and not math.isinf(ours[0])

    if how == "collapsed" and entry.get("type") == "SqueezeExcitation" and field == "r_max":
        local = layer.r_max_local
        ok = local is not None and tuple(local) == r_max
        return "squeeze-excitation", (
            f"{evidence}; rf_widgets r_max_local {show(local)} "
            f"{'equals' if ok else 'DIFFERS FROM'} the toolbox r_max"
        )
    dilated = [x for x in here if x.dilation is not None and any(d != 1 for d in x.dilation)]
    if dilated and not ours_global and not rfa_global:
        x = dilated[0]
        kernel = per_axis(node.layer_info.kernel_size) if x is layer else None
        return "dilation", (
            f"{evidence}; {x.name} has kernel {show(x.kernel)} dilation {show(x.dilation)}"
            + (f", the toolbox uses kernel {show(kernel)}" if kernel else "")
        )
    if ours_global:
        ops = [x.op for x in here if math.isinf(getattr(x, field)[0])]
        if "mean" in ops:
            return "mean", f"{evidence}; global op on the path: mean"
        att = [op for op in ops if op in ATTENTION_OPS]
        if att:
            return "attention", f"{evidence}; global op on the path: {att[0]}"
        return "global-other", f"{evidence}; global ops on the path: {', '.join(dict.fromkeys(ops))}"
    if rfa_global:
        if layer.op in GLOBAL_POOL_OPS:
            k = index_of_input(layers, index, i)
            size_in = layers[k].feature_map if k is not None else None
            return "adaptive-pool-not-global", (
                f"{evidence}; input map {show(size_in)} -> output map {show(layer.feature_map)}, "
                f"toolbox node '{entry['label']}' has kernel {node.layer_info.kernel_size}"
            )
        return "global-other", f"{evidence}; the toolbox node '{entry['label']}' is global"
    if field == "r_min" and theirs < ours:
        sources = _constant_sources(node)
        if sources:
            names = [" ".join(labels.get(n.name, n.name).split()) for n in sources]
            return "constant-source", (
                f"{evidence}; toolbox sources with r = 1 and no predecessor upstream: "
                f"{', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
            )
    kernel = node.layer_info.kernel_size
    stride = node.layer_info.stride_size
    if layer.kernel is not None and (
        per_axis(kernel) != tuple(layer.kernel) or per_axis(stride) != tuple(layer.stride)
    ):
        return "kernel-or-stride", (
            f"{evidence}; rf_widgets kernel/stride {show(layer.kernel)}/"
            f"{show(layer.stride)}, toolbox {show(per_axis(kernel))}/"
            f"{show(per_axis(stride))}"
        )
    return "unexplained", (
        f"{evidence}; toolbox node '{entry['label']}' kernel {kernel} stride {stride}, "
        f"unpaired layers in between: {shown_between or 'none'}"
    )


def index_of_input(layers: tuple, index: dict[str, int], i: int) -> int | None:
    names = [n for n in layers[i].inputs if n in index]
    return index[names[0]] if names else None


def rfa_rule_b(node: Any, resolution: int) -> tuple[bool, list]:
    """The toolbox's rule B for ``node`` and the n // J map sizes it uses for its inputs."""
    kernel = node.layer_info.kernel_size
    maps = [per_axis(p.compute_feature_map_size(resolution)) for p in node.predecessors]
    if kernel == np.inf or not node.predecessors:
        return False, maps
    k = per_axis(kernel)
    return all(all(m <= kk for m, kk in zip(mp, k, strict=False)) for mp in maps), maps


def classify_verdict(
    model: str,
    layers: tuple,
    index: dict[str, int],
    i: int,
    entry: dict,
    resolution: int,
    ours_flag: bool,
    r_roots: dict[tuple[str, int], str],
    root_of: dict[tuple[str, int], set[tuple[str, int]]],
    sub_layers: tuple,
) -> tuple[str, str]:
    """Why rf_widgets and the toolbox disagree on whether our layer ``i`` is unproductive."""
    layer = sub_layers[i]
    node = entry["node"]
    side = "rf_widgets only" if ours_flag else "rfa-toolbox only"
    head = (
        f"{model}@{resolution} {layer.name} ({layer.op}) unproductive for {side}: rf_widgets status "
        f"{layer.status}{' (' + layer.reason + ')' if layer.reason else ''}"
    )
    if math.isinf(layer.r_min[0]) != math.isinf(per_axis(node.receptive_field_min)[0]):
        # the layer is global on one side only: its root cause is the r disagreement
        roots = root_of.get(("r_min", i), set())
        cats = sorted({r_roots[r] for r in roots})
        return "global-filter", (
            f"{head}; r_min rf_widgets {show(layer.r_min)} vs toolbox "
            f"{show(per_axis(node.receptive_field_min))} (root cause: "
            f"{', '.join(cats) or 'this layer'})"
        )
    if not layer.spatial:
        # SPEC section 6 version 2: rules A and B judge spatial layers only; a pointwise layer follows
        # its inputs. The toolbox applies the rules to every node.
        read = [f"{n}: {sub_layers[index[n]].status}" for n in layer.inputs if n in index]
        return "pointwise", (
            f"{head}; a pointwise layer (k_eff 1 on every axis) follows its inputs in rf_widgets "
            f"({', '.join(read) or 'the image'}); the toolbox applies rules A and B to it"
        )
    # r disagreement on the layer or its inputs decides rule A: report the r root cause
    inputs = [index[n] for n in layer.inputs if n in index]
    # rule A reads r_min of the layer and of its inputs
    related = set(root_of.get(("r_min", i), set()))
    for k in inputs:
        related |= root_of.get(("r_min", k), set())
    rule_b, rfa_maps = rfa_rule_b(node, resolution)
    our_maps = [sub_layers[k].feature_map for k in inputs] or [tuple(resolution for _ in layer.r_min)]
    k_eff = None
    if layer.kernel is not None:
        dilation = layer.dilation or (1,) * len(layer.kernel)
        k_eff = tuple(d * (k - 1) + 1 for k, d in zip(layer.kernel, dilation, strict=True))
    axes = range(len(layer.r_min))
    # SPEC section 6 per axis: rule A and rule B as rf_widgets reads them, on each axis
    rule_a_axis = [
        all(sub_layers[k].r_min[ax] >= resolution for k in inputs) and layer.r_min[ax] > resolution
        for ax in axes
    ]
    rule_b_axis = [
        k_eff is not None and bool(inputs) and all(sub_layers[k].feature_map[ax] <= k_eff[ax] for k in inputs)
        for ax in axes
    ]
    our_rule_b = all(rule_b_axis)
    if (
        ours_flag
        and not all(rule_a_axis)
        and not our_rule_b
        and all(a or b for a, b in zip(rule_a_axis, rule_b_axis, strict=True))
    ):
        per_axis_text = ", ".join(
            f"axis {ax}: {'A' if rule_a_axis[ax] else 'B'} (input r_min "
            f"{'/'.join(str(sub_layers[k].r_min[ax]) for k in inputs)}, map "
            f"{'/'.join(str(sub_layers[k].feature_map[ax]) for k in inputs)}, "
            f"k_eff {k_eff[ax] if k_eff else '-'})"
            for ax in axes
        )
        return "per-axis-rules", (
            f"{head}; rule A holds on some axes, rule B on the others: {per_axis_text}; toolbox rule B "
            f"{rule_b} (n // J maps {', '.join(show(m) for m in rfa_maps)}, kernel "
            f"{show(per_axis(node.layer_info.kernel_size))})"
        )
    if rule_b != our_rule_b:
        detail = (
            f"; rule B rf_widgets {our_rule_b} (input maps {', '.join(show(m) for m in our_maps)}, "
            f"k_eff {show(k_eff)}), toolbox {rule_b} (n // J maps "
            f"{', '.join(show(m) for m in rfa_maps)}, kernel "
            f"{show(per_axis(node.layer_info.kernel_size))})"
        )
        if sorted(map(tuple, our_maps)) != sorted(map(tuple, rfa_maps)) and len(our_maps) == len(rfa_maps):
            return "feature-map", head + detail
        if k_eff is not None and k_eff != per_axis(node.layer_info.kernel_size):
            return "rule-b-kernel", head + detail
        if related:
            cats = sorted({r_roots[r] for r in related})
            return cats[0], head + detail + f" (r root cause: {', '.join(cats)})"
        return "unexplained", head + detail
    if related:
        cats = sorted({r_roots[r] for r in related})
        return cats[0], (
            f"{head}; r_min rf_widgets {show(layer.r_min)} vs toolbox "
            f"{show(per_axis(node.receptive_field_min))} (rule A decided by an r difference "
            f"upstream: {', '.join(cats)})"
        )
    return "unexplained", (
        f"{head}; r_min {show(layer.r_min)} both; toolbox preds "
        f"{[p.name for p in node.predecessors]}, our inputs {list(layer.inputs)}"
    )


# ------------------------------------------------------------------------------------------------------
# One model
# ------------------------------------------------------------------------------------------------------


def compare(
    model_name: str,
    model: torch.nn.Module,
    analysis: Any,
    graph: Any,
    border: list,
    labels: dict[str, str],
    resolutions: list[int],
) -> dict:
    layers = analysis.layers
    index = {layer.name: i for i, layer in enumerate(layers)}
    module_paths = sorted((n for n, _ in model.named_modules() if n), key=len, reverse=True)
    entries = rfa_nodes(graph, labels, module_paths)
    pairs = pair_layers(layers, entries)
    paired = {i for i, _, _ in pairs}
    entry_of = {i: (entries[j], how) for i, j, how in pairs}

    agree = 0
    disagree: dict[str, set[int]] = {"r_min": set(), "r_max": set()}
    for i, j, _ in pairs:
        node = entries[j]["node"]
        bad_min = tuple(layers[i].r_min) != per_axis(node.receptive_field_min)
        bad_max = tuple(layers[i].r_max) != per_axis(node.receptive_field_max)
        if bad_min:
            disagree["r_min"].add(i)
        if bad_max:
            disagree["r_max"].add(i)
        if not bad_min and not bad_max:
            agree += 1

    # per field, roots: disagreeing paired layers whose nearest paired ancestors all agree on that field
    r_roots: dict[tuple[str, int], str] = {}
    evidence: dict[str, list[str]] = {}
    root_of: dict[tuple[str, int], set[tuple[str, int]]] = {}
    for field, bad in disagree.items():
        taint: list[set[tuple[str, int]]] = []
        for i, layer in enumerate(layers):
            t: set[tuple[str, int]] = set()
            for n in layer.inputs:
                if n in index:
                    t |= taint[index[n]]
            if i in paired and i not in bad:
                t = set()
            elif i in bad:
                if not t:
                    entry, how = entry_of[i]
                    cat, ev = classify_root(model_name, layers, index, i, entry, how, paired, field, labels)
                    r_roots[(field, i)] = cat
                    evidence.setdefault(f"{cat} ({field})", []).append(ev)
                    t = {(field, i)}
                root_of[(field, i)] = set(t)
            taint.append(t)
    r_categories: dict[str, int] = {}
    for field, bad in disagree.items():
        for i in bad:
            for cat in {r_roots[r] for r in root_of[(field, i)]}:
                key = f"{cat} ({field})"
                r_categories[key] = r_categories.get(key, 0) + 1

    # verdicts on the paired layers, at each resolution
    verdicts = []
    border_ids = {id(n) for n in border}
    for resolution in resolutions:
        sub = analysis if resolution == analysis.input_size[0] else analysis.at(resolution)
        sub_layers = sub.layers
        if resolution == analysis.input_size[0]:
            rfa_flag = border_ids
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rfa_flag = {
                    id(n) for n in obtain_border_layers(graph, input_resolution=resolution, filter_dense=True)
                }
        only_ours, only_rfa, both = [], [], []
        v_categories: dict[str, int] = {}
        for i, j, _ in pairs:
            ours_flag = sub_layers[i].status == "unproductive"
            theirs = id(entries[j]["node"]) in rfa_flag
            if ours_flag and theirs:
                both.append(sub_layers[i].name)
            elif ours_flag != theirs:
                (only_ours if ours_flag else only_rfa).append(sub_layers[i].name)
                cat, ev = classify_verdict(
                    model_name,
                    sub_layers,
                    index,
                    i,
                    entries[j],
                    resolution,
                    ours_flag,
                    r_roots,
                    root_of,
                    sub_layers,
                )
                v_categories[cat] = v_categories.get(cat, 0) + 1
                evidence.setdefault("verdict:" + cat, []).append(ev)
        unpaired_ours = [
            layers[i].name
            for i in range(len(layers))
            if i not in paired and sub_layers[i].status == "unproductive"
        ]
        paired_rfa = {j for _, j, _ in pairs}
        unpaired_rfa = [
            entries[j]["label"]
            for j in range(len(entries))
            if j not in paired_rfa and id(entries[j]["node"]) in rfa_flag
        ]
        verdicts.append(
            {
                "resolution": resolution,
                "ours": len(sub.unproductive_layers),
                "rfa": len(rfa_flag),
                "both": len(both),
                "only_ours": only_ours,
                "only_rfa": only_rfa,
                "unpaired_ours": unpaired_ours,
                "unpaired_rfa": unpaired_rfa,
                "agree": not only_ours and not only_rfa,
                "categories": v_categories,
                "ours_border": sub.border_layer,
            }
        )

    kinds: dict[str, int] = {}
    for _, _, how in pairs:
        kinds[how] = kinds.get(how, 0) + 1
    unpaired_rfa_labels = [entries[j]["label"] for j in range(len(entries)) if j not in {p[1] for p in pairs}]
    return {
        "layers_ours": len(layers),
        "nodes_rfa": len(entries),
        "pairs": len(pairs),
        "pair_kinds": kinds,
        "agree": agree,
        "r_categories": r_categories,
        "r_roots": {f"{layers[i].name} ({field})": c for (field, i), c in r_roots.items()},
        "verdicts": verdicts,
        "evidence": evidence,
        "unpaired_rfa_examples": unpaired_rfa_labels[:8],
        "unpaired_rfa": len(unpaired_rfa_labels),
        "unknown_ours": [layer.name for layer in layers if layer.status == "unknown"],
    }


def bench_model(name: str, args: argparse.Namespace) -> dict:
    result: dict[str, Any] = {"model": name}
    t0 = time.perf_counter()
    if name in EXTRA_MODELS:
        model = EXTRA_MODELS[name]().eval()
        result["extra"] = True
    else:
        model = torchvision.models.get_model(name, weights=None).eval()
    result["build_s"] = time.perf_counter() - t0

    ours_times, rfa_times = [], []
    analysis = graph = border = labels = None
    rfa_error = None
    for _ in range(args.repeat):
        try:
            analysis, dt, messages = run_ours(model, args.resolution)
            ours_times.append(dt)
            result["ours_warnings"] = messages
        except Exception:
            result["ours_error"] = traceback.format_exc()
            break
        if rfa_error is None:
            signal.signal(signal.SIGALRM, _alarm)
            signal.alarm(args.rfa_timeout)
            try:
                graph, border, dt = run_rfa(model, args.resolution)
                rfa_times.append(dt)
                labels = dict(RECORDER.labels)
                result["rfa_nodes_defined"] = RECORDER.defined
                result["rfa_nodes_resolved"] = RECORDER.created
                result["rfa_nodes_dropped"] = RECORDER.dropped(graph)
                result["rfa_partial"] = RECORDER.created < RECORDER.defined or result["rfa_nodes_dropped"] > 0
                RECORDER.nodes = []
            except Timeout:
                rfa_error = f"timeout after {args.rfa_timeout} s"
            except Exception as err:
                rfa_error = f"{type(err).__name__}: {err}".splitlines()[0][:300]
                result["rfa_traceback"] = traceback.format_exc()
            finally:
                signal.alarm(0)
                reset_torchscript_cache()
    if ours_times:
        result["ours_ms"] = 1000 * statistics.median(ours_times)
        result["ours_all_ms"] = [1000 * t for t in ours_times]
    if rfa_times:
        result["rfa_ms"] = 1000 * statistics.median(rfa_times)
        result["rfa_all_ms"] = [1000 * t for t in rfa_times]
    result["rfa_error"] = rfa_error
    if ours_times and rfa_times:
        result["ratio"] = result["rfa_ms"] / result["ours_ms"]
        result["ratio_best"] = min(rfa_times) / min(ours_times)
        result["ratio_first"] = rfa_times[0] / ours_times[0]

    if analysis is not None and "ours_error" not in result:
        at_first, at_medians, at_all = {}, {}, []
        try:
            for r2 in args.at_resolutions:
                samples = [time_at(analysis, r2) for _ in range(max(args.repeat, 5))]
                at_first[r2] = 1000 * samples[0]
                at_medians[r2] = 1000 * statistics.median(samples)
                at_all.extend(samples)
            result["at_ms"] = 1000 * statistics.median(at_all)
            result["at_first_ms"] = at_first
            result["at_median_ms"] = at_medians
        except Exception:
            result["at_error"] = traceback.format_exc()
        result["ours_border@R"] = analysis.border_layer
        result["ours_unproductive@R"] = list(analysis.unproductive_layers)
        result["statuses"] = analysis.counts
    if graph is not None and analysis is not None and "ours_error" not in result:
        try:
            result["cmp"] = compare(
                name, model, analysis, graph, border, labels, [args.resolution, *args.verdict_resolutions]
            )
            result["rfa_unproductive@R"] = [
                (lambda lab: MODULE_LABEL.match(lab).group(1) if MODULE_LABEL.match(lab) else lab)(
                    " ".join(labels.get(n.name, n.name).split())
                )
                for n in border
            ]
        except Exception:
            result["cmp_error"] = traceback.format_exc()
    del model, analysis, graph, border
    gc.collect()
    return result


# ------------------------------------------------------------------------------------------------------
# Reporting
# ------------------------------------------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def row(result: dict, verdict_res: list[int]) -> str:
    cmp = result.get("cmp")
    ratio = f"{result['ratio']:.1f}x" if "ratio" in result else "-"
    agree = f"{cmp['agree']}/{cmp['pairs']}" if cmp else "-"
    cells = [
        result["model"],
        fmt_ms(result.get("ours_ms")),
        fmt_ms(result.get("rfa_ms")),
        ratio,
        fmt_ms(result.get("at_ms")),
        agree,
    ]
    for k in range(len(verdict_res)):
        if cmp:
            v = cmp["verdicts"][k]
            cells.append(f"{v['ours']}/{v['rfa']} {'=' if v['agree'] else '!'}")
        else:
            cells.append("-")
    note = []
    if result.get("rfa_error"):
        note.append("rfa failed: " + result["rfa_error"][:60])
    if result.get("rfa_partial"):
        note.append(
            f"rfa graph partial (resolved {result['rfa_nodes_resolved']}/"
            f"{result['rfa_nodes_defined']}, {result['rfa_nodes_dropped']} left out of all_layers)"
        )
    if result.get("ours_error"):
        note.append("rf_widgets failed")
    if cmp and cmp["unknown_ours"]:
        note.append(f"{len(cmp['unknown_ours'])} unknown")
    if cmp and cmp["r_categories"]:
        note.append(",".join(sorted(cmp["r_categories"])))
    cells.append("; ".join(note))
    return "| " + " | ".join(cells) + " |"


def header(verdict_res: list[int]) -> str:
    cols = ["model", "ours ms", "rfa ms", "rfa/ours", "at() ms", "r agree"]
    cols += [f"unprod@{r} ours/rfa" for r in verdict_res] + ["notes"]
    return "| " + " | ".join(cols) + " |\n|" + "|".join("---" for _ in cols) + "|"


def print_model(result: dict, verdict_res: list[int]) -> None:
    print(header(verdict_res))
    print(row(result, verdict_res))
    cmp = result.get("cmp")
    if result.get("ours_error"):
        print("  rf_widgets FAILED:\n" + result["ours_error"])
    if result.get("rfa_error"):
        print(f"  rfa-toolbox failed: {result['rfa_error']}")
    if result.get("cmp_error"):
        print("  comparison failed:\n" + result["cmp_error"])
    if "ours_all_ms" in result:
        print(
            "  timed runs (ms): rf_widgets "
            + ", ".join(fmt_ms(t) for t in result["ours_all_ms"])
            + "; rfa-toolbox "
            + (", ".join(fmt_ms(t) for t in result.get("rfa_all_ms", [])) or "-")
            + (
                f"; rfa/ours best {result['ratio_best']:.1f}x, first run {result['ratio_first']:.1f}x"
                if "ratio_best" in result
                else ""
            )
        )
    if "ours_unproductive@R" in result:
        print(
            f"  unproductive@R rf_widgets ({len(result['ours_unproductive@R'])}): "
            f"{', '.join(result['ours_unproductive@R']) or '-'}"
        )
    if "rfa_unproductive@R" in result:
        print(
            f"  unproductive@R rfa-toolbox ({len(result['rfa_unproductive@R'])}): "
            f"{', '.join(result['rfa_unproductive@R']) or '-'}"
        )
    if "at_median_ms" in result:
        print(
            "  at(): "
            + ", ".join(
                f"{r}px median {fmt_ms(m)} ms (first {fmt_ms(result['at_first_ms'][r])})"
                for r, m in result["at_median_ms"].items()
            )
        )
    if cmp:
        print(
            f"  layers: rf_widgets {cmp['layers_ours']}, toolbox nodes {cmp['nodes_rfa']}, paired "
            f"{cmp['pairs']} {cmp['pair_kinds']}, unpaired toolbox nodes {cmp['unpaired_rfa']} "
            f"(e.g. {cmp['unpaired_rfa_examples'][:4]})"
        )
        if cmp["r_categories"]:
            print(
                f"  r disagreements by root cause: {cmp['r_categories']}; roots: "
                + ", ".join(f"{k}={v}" for k, v in list(cmp["r_roots"].items())[:6])
                + (" ..." if len(cmp["r_roots"]) > 6 else "")
            )
        for v in cmp["verdicts"]:
            line = (
                f"  unproductive@{v['resolution']}: rf_widgets {v['ours']}, toolbox {v['rfa']}, "
                f"paired both {v['both']}, only rf_widgets {len(v['only_ours'])}, only toolbox "
                f"{len(v['only_rfa'])}{' (sets agree)' if v['agree'] else ''}; rf_widgets border layer "
                f"{v['ours_border']}"
            )
            print(line)
            for key, who in (("only_ours", "rf_widgets"), ("only_rfa", "toolbox")):
                if v[key]:
                    more = " ..." if len(v[key]) > 10 else ""
                    print(f"    only {who}: {', '.join(v[key][:10])}{more}")
            if v["categories"]:
                print(f"    why: {v['categories']}")
            if v["unpaired_rfa"] or v["unpaired_ours"]:
                print(
                    f"    unpaired unproductive: rf_widgets {len(v['unpaired_ours'])}, toolbox "
                    f"{len(v['unpaired_rfa'])}"
                )
        if cmp["unknown_ours"]:
            print(f"  rf_widgets unknown layers: {', '.join(cmp['unknown_ours'][:8])}")
    sys.stdout.flush()


def summary(results: list[dict], args: argparse.Namespace) -> None:
    print("\n" + "=" * 100 + "\nSUMMARY\n" + "=" * 100)
    print(header([args.resolution, *args.verdict_resolutions]))
    for result in results:
        print(row(result, [args.resolution, *args.verdict_resolutions]))
    extras = [r["model"] for r in results if r.get("extra")]
    if extras:
        print(
            f"\n(extra models, not in torchvision's list and left out of the figures below: "
            f"{', '.join(extras)})"
        )
    everything, results = results, [r for r in results if not r.get("extra")]
    ratios = [r["ratio"] for r in results if "ratio" in r]
    print()
    if ratios:
        print(
            f"end-to-end time ratio rfa-toolbox / rf_widgets over {len(ratios)} models: median "
            f"{statistics.median(ratios):.1f}x (min {min(ratios):.1f}x, max {max(ratios):.1f}x); "
            "target >= 20x"
        )
        best = [r["ratio_best"] for r in results if "ratio" in r]
        first = [r["ratio_first"] for r in results if "ratio" in r]
        print(
            f"  same ratio from the best of {args.repeat} runs of each tool: median "
            f"{statistics.median(best):.1f}x (min {min(best):.1f}x); from the first run of each: median "
            f"{statistics.median(first):.1f}x (min {min(first):.1f}x)"
        )
        ours = [r["ours_ms"] for r in results if "ratio" in r]
        theirs = [r["rfa_ms"] for r in results if "ratio" in r]
        print(
            f"total time for these models: rf_widgets {sum(ours) / 1000:.1f} s, rfa-toolbox "
            f"{sum(theirs) / 1000:.1f} s; median per model {statistics.median(ours):.0f} ms vs "
            f"{statistics.median(theirs):.0f} ms"
        )
    for r in results:
        if r["model"] == "densenet121" and "at_median_ms" in r:
            print(
                f"densenet121 at(): median {r['at_ms']:.2f} ms over {args.at_resolutions}; worst per-size "
                f"median {max(r['at_median_ms'].values()):.2f} ms; worst first call "
                f"{max(r['at_first_ms'].values()):.2f} ms (target < 2 ms)"
            )
    at_all = [r["at_ms"] for r in results if "at_ms" in r]
    if at_all:
        print(
            f"at() median over models: {statistics.median(at_all):.2f} ms (max {max(at_all):.2f} ms, "
            f"{max(results, key=lambda r: r.get('at_ms', 0))['model']})"
        )
    failed = [r for r in results if r.get("rfa_error")]
    partial = [r for r in results if r.get("rfa_partial")]
    ours_failed = [r for r in results if r.get("ours_error")]
    print(
        f"rfa-toolbox failed on {len(failed)} of {len(results)} models"
        + (": " + "; ".join(f"{r['model']} ({r['rfa_error'][:80]})" for r in failed) if failed else "")
    )
    print(
        f"rfa-toolbox returned a partial graph on {len(partial)} models"
        + (": " + ", ".join(r["model"] for r in partial) if partial else "")
    )
    print(
        f"rf_widgets failed on {len(ours_failed)} models"
        + (": " + ", ".join(r["model"] for r in ours_failed) if ours_failed else "")
    )
    unknown = [
        (r["model"], len(r["cmp"]["unknown_ours"]))
        for r in results
        if r.get("cmp") and r["cmp"]["unknown_ours"]
    ]
    print(f"models with rf_widgets 'unknown' layers: {len(unknown)} {unknown}")
    cmps = [r for r in results if r.get("cmp")]
    pairs = sum(r["cmp"]["pairs"] for r in cmps)
    agree = sum(r["cmp"]["agree"] for r in cmps)
    exact = [r["model"] for r in cmps if r["cmp"]["agree"] == r["cmp"]["pairs"]]
    print(
        f"paired layers: {pairs} in {len(cmps)} models; r_min and r_max agree on {agree} "
        f"({100 * agree / max(pairs, 1):.1f}%); all pairs agree in {len(exact)} models"
    )
    for k, res in enumerate([args.resolution, *args.verdict_resolutions]):
        same = [r["model"] for r in cmps if r["cmp"]["verdicts"][k]["agree"]]
        n_ours = sum(r["cmp"]["verdicts"][k]["ours"] for r in cmps)
        n_rfa = sum(r["cmp"]["verdicts"][k]["rfa"] for r in cmps)
        print(
            f"unproductive sets at {res} (on paired layers) agree in {len(same)} of {len(cmps)} models; "
            f"total unproductive layers rf_widgets {n_ours}, toolbox {n_rfa}"
        )

    cmps = [r for r in everything if r.get("cmp")]
    print(
        "\nDISAGREEMENTS BY CATEGORY, extra models included (r: paired layers whose r_min or r_max differ, "
        "attributed to their root cause; verdict: paired layers flagged unproductive by one tool only)"
    )
    r_tot: dict[str, list] = {}
    v_tot: dict[str, list] = {}
    for r in cmps:
        for cat, n in r["cmp"]["r_categories"].items():
            r_tot.setdefault(cat, [0, []])
            r_tot[cat][0] += n
            r_tot[cat][1].append(r["model"])
        for v in r["cmp"]["verdicts"]:
            for cat, n in v["categories"].items():
                v_tot.setdefault(cat, [0, []])
                v_tot[cat][0] += n
                v_tot[cat][1].append(f"{r['model']}@{v['resolution']}")
    for title, table, prefix in (("r", r_tot, ""), ("verdict", v_tot, "verdict:")):
        for cat, (n, models) in sorted(table.items(), key=lambda kv: -kv[1][0]):
            models = list(dict.fromkeys(models))
            print(
                f"\n[{title}] {cat}: {n} layers in {len(models)} models: {', '.join(models[:12])}"
                f"{' ...' if len(models) > 12 else ''}"
            )
            print(f"  meaning: {CATEGORY_TEXT.get(cat.split(' (')[0], cat)}")
            # one example per model first, then more from the same models
            per_model = [res["cmp"]["evidence"].get(prefix + cat, []) for res in cmps]
            examples = [evs[0] for evs in per_model if evs] + [ev for evs in per_model for ev in evs[1:]]
            for ev in examples[: args.examples]:
                print(f"  e.g. {ev}")
    if not r_tot and not v_tot:
        print("none")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated torchvision model names (default: all classifiers)")
    parser.add_argument("--quick", action="store_true", help=f"only {QUICK}")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool and model (median)")
    parser.add_argument(
        "--at-resolutions", default="64,160,320,512", help="resolutions for the timed re-analysis a.at(R2)"
    )
    parser.add_argument(
        "--verdict-resolutions",
        default="64",
        help="extra resolutions at which the unproductive sets are compared (untimed)",
    )
    parser.add_argument("--rfa-timeout", type=int, default=300, help="seconds per toolbox run")
    parser.add_argument("--examples", type=int, default=4, help="evidence lines printed per category")
    parser.add_argument(
        "--extra",
        action="store_true",
        help=f"also run {', '.join(EXTRA_MODELS)} (dilated convolutions; not in the figures)",
    )
    parser.add_argument("--json", help="also write all results to this JSON file")
    args = parser.parse_args(argv)
    args.at_resolutions = [int(x) for x in args.at_resolutions.split(",") if x]
    args.verdict_resolutions = [int(x) for x in args.verdict_resolutions.split(",") if x]

    all_models = torchvision.models.list_models(module=torchvision.models)
    if args.models:
        names = [m.strip() for m in args.models.split(",") if m.strip()]
    elif args.quick:
        names = QUICK.split(",")
    else:
        names = all_models
    if args.extra:
        names = names + [n for n in EXTRA_MODELS if n not in names]
    unknown = [n for n in names if n not in all_models and n not in EXTRA_MODELS]
    if unknown:
        parser.error(f"not torchvision classification models: {unknown}")

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(
        f"date {datetime.datetime.now().isoformat(timespec='seconds')}; {platform.platform()}; "
        f"Python {platform.python_version()}; CPU {cpu}, {os.cpu_count()} cores; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); torchvision {torchvision.__version__}; rf_widgets "
        f"{rfw.__version__}; rfa-toolbox {rfa_toolbox.__version__}; load average {os.getloadavg()}"
    )
    print(
        f"resolution {args.resolution}, repeat {args.repeat} (median), at() resolutions "
        f"{args.at_resolutions}, {len(names)} models; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}\n"
    )

    # warm-up, untimed: first calls pay imports, fx/jit and numpy set-up
    warm = torchvision.models.resnet18(weights=None).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        rfw.analyze(warm, args.resolution).at(64)
        t1 = time.perf_counter()
        run_rfa(warm, args.resolution)
        t2 = time.perf_counter()
        reset_torchscript_cache()
    print(
        f"warm-up on resnet18 (untimed in the results): rf_widgets {1000 * (t1 - t0):.0f} ms, "
        f"rfa-toolbox {1000 * (t2 - t1):.0f} ms\n"
    )
    del warm

    classes_at_start = count_module_classes()
    results = []
    started = time.perf_counter()
    for n, name in enumerate(names, 1):
        print(f"--- [{n}/{len(names)}] {name}")
        try:
            result = bench_model(name, args)
        except Exception:
            result = {"model": name, "ours_error": traceback.format_exc()}
        results.append(result)
        print_model(result, [args.resolution, *args.verdict_resolutions])
    print(
        f"\nwall time {time.perf_counter() - started:.0f} s; load average {os.getloadavg()}; "
        f"nn.Module subclasses in the process: {count_module_classes()} (at start {classes_at_start})"
    )
    summary(results, args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
