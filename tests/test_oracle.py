"""Independent oracles for the receptive-field arithmetic on generated networks.

Hypothesis generates small networks of convolutions, average pools, additions and concatenations
(1-D and 2-D). Each is analysed by rf_widgets and checked against two references that share no code
with it:

* **torch**: the same network in float64 with all-ones weights, no bias and no nonlinearity. A gradient
  of 1 at one unit of one layer, backpropagated to the input, is positive exactly on the input pixels
  the unit can reach (every weight is positive, so nothing cancels). Its extent per axis is compared
  with ``unit_box(layer, unit, path="hull")``; torch's output shapes are compared with the feature maps.
* **brute force**: every input-to-layer path enumerated by recursion over the graph, with
  ``r' = r + (k_eff - 1) * J``, ``J' = J * s``, ``P' = P + p_lo * J`` along each path (SPEC section 2).

What the gradient support must equal, and where it may be smaller than the clipped hull:

* For a unit whose every path box lies inside the image, the support spans exactly the hull: the
  extreme pixels are reached by taking the first (last) tap of every layer along the extreme path, and
  every position on the way is a real one (its box lies inside the unit's box).
* At the border the box is clipped to the image, but the support can be smaller than the clipped hull:
  strides and dilations leave holes (a 3-tap kernel with dilation 2 and padding 1 reaches pixels 1 and 3
  from unit 0, not 0), floor-mode windows drop trailing pixels, and a unit can sit in the padding. There
  the support must lie inside the clipped hull. For networks with stride 1, dilation 1 and padding at
  most ``k - 1`` on each side none of this happens, and the support equals the clipped hull for every
  unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import rf_widgets as rfw

torch = pytest.importorskip("torch")
functional = torch.nn.functional

WINDOWS = ("conv", "pool")
MERGES = ("add", "concat")
SETTINGS = {
    "deadline": None,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # conftest.py's autouse log watcher is harmless to share
    ],
}
# the largest input side a 2-D network gets (the torch run costs side**2 per probed unit)
MAX_SIDE_2D = 64


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The tensors here are tiny: a second intra-op thread only adds overhead (10x on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...]
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    padding: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Net:
    ndim: int
    nodes: tuple[Node, ...]
    size: tuple[int, ...]
    sequential: bool
    exact: bool  # stride 1, dilation 1, padding <= k - 1: the support equals the clipped hull everywhere


# -- the reference: sizes and paths, written from SPEC sections 2 and 5 only ------------------------------


def window_size(n: int, node: Node, axis: int) -> int:
    span = n + sum(node.padding[axis]) - node.dilation[axis] * (node.kernel[axis] - 1) - 1
    return span // node.stride[axis] + 1 if span >= 0 else 0


def reference_sizes(net: Net) -> dict[str, tuple[int, ...]]:
    sizes = {rfw.INPUT: net.size}
    for node in net.nodes:
        if node.op in WINDOWS:
            n = sizes[node.inputs[0]]
            sizes[node.name] = tuple(window_size(n[a], node, a) for a in range(net.ndim))
        else:
            sizes[node.name] = sizes[node.inputs[0]]
    return sizes


Path = tuple[tuple[int, int, int], ...]  # per axis (r, J, P)


def enumerate_paths(net: Net) -> dict[str, list[Path]]:
    """Every input-to-layer path of every layer, one (r, J, P) per axis along each."""
    nodes = {node.name: node for node in net.nodes}

    @cache
    def walk(name: str) -> tuple[Path, ...]:
        if name == rfw.INPUT:
            return (((1, 1, 0),) * net.ndim,)
        node = nodes[name]
        if node.op in MERGES:
            return tuple(path for source in node.inputs for path in walk(source))
        out = []
        for path in walk(node.inputs[0]):
            out.append(
                tuple(
                    (
                        r + node.dilation[a] * (node.kernel[a] - 1) * jump,
                        jump * node.stride[a],
                        offset + node.padding[a][0] * jump,
                    )
                    for a, (r, jump, offset) in enumerate(path)
                )
            )
        return tuple(out)

    return {name: list(walk(name)) for name in (rfw.INPUT, *(node.name for node in net.nodes))}


def path_box(path: Path, unit: tuple[int, ...]) -> list[tuple[int, int]]:
    return [
        (u * jump - offset, u * jump - offset + r - 1)
        for u, (r, jump, offset) in zip(unit, path, strict=True)
    ]


def extents(box: rfw.Box) -> list[tuple[int, int]]:
    return list(zip(box.start, box.stop, strict=True))


def reference_hull(paths: list[Path], unit: tuple[int, ...]) -> list[tuple[int, int]]:
    boxes = [path_box(path, unit) for path in paths]
    return [(min(b[a][0] for b in boxes), max(b[a][1] for b in boxes)) for a in range(len(unit))]


def is_interior(paths: list[Path], unit: tuple[int, ...], size: tuple[int, ...]) -> bool:
    return all(
        lo >= 0 and hi <= n - 1
        for box in (path_box(p, unit) for p in paths)
        for (lo, hi), n in zip(box, size, strict=True)
    )


# -- the torch network ------------------------------------------------------------------------------------


def torch_outputs(net: Net, x: torch.Tensor) -> dict[str, torch.Tensor]:
    convolve = functional.conv1d if net.ndim == 1 else functional.conv2d
    outs = {rfw.INPUT: x}
    for node in net.nodes:
        if node.op in WINDOWS:
            padded = functional.pad(
                outs[node.inputs[0]], [v for a in reversed(range(net.ndim)) for v in node.padding[a]]
            )
            weight = torch.ones((1, 1, *node.kernel), dtype=torch.float64)
            if node.op == "pool":  # an average pool: a convolution with equal positive weights
                weight = weight / math.prod(node.kernel)
            outs[node.name] = convolve(padded, weight, stride=node.stride, dilation=node.dilation)
        elif node.op == "add":
            outs[node.name] = sum(outs[source] for source in node.inputs)
        else:  # concatenation along channels, read by an all-ones 1x1 convolution
            stacked = torch.cat([outs[source] for source in node.inputs], dim=1)
            weight = torch.ones((1, stacked.shape[1]) + (1,) * net.ndim, dtype=torch.float64)
            outs[node.name] = convolve(stacked, weight)
    return outs


def gradient_supports(
    net: Net, targets: list[tuple[str, tuple[int, ...]]]
) -> tuple[dict[str, tuple[int, ...]], list[list[tuple[int, int]] | None]]:
    """Torch's output shapes, and per (layer, unit) the extent per axis of the input gradient support."""
    x = torch.ones((len(targets), 1, *net.size), dtype=torch.float64, requires_grad=True)
    outs = torch_outputs(net, x)
    grads = {name: torch.zeros_like(outs[name]) for name, _ in targets}
    for b, (name, unit) in enumerate(targets):
        grads[name][(b, 0, *unit)] = 1.0
    torch.autograd.backward([outs[name] for name in grads], list(grads.values()))
    supports: list[list[tuple[int, int]] | None] = []
    for b in range(len(targets)):
        where = torch.nonzero(x.grad[b, 0] != 0)
        if len(where) == 0:
            supports.append(None)
        else:
            supports.append([(int(where[:, a].min()), int(where[:, a].max())) for a in range(net.ndim)])
    shapes = {name: tuple(out.shape[2:]) for name, out in outs.items() if name != rfw.INPUT}
    return shapes, supports


# -- the rf_widgets network -------------------------------------------------------------------------------


def to_stack(net: Net) -> rfw.Stack:
    layers = []
    for node in net.nodes:
        if node.op == "conv":
            layers.append(
                rfw.conv(
                    node.name,
                    node.kernel,
                    stride=node.stride,
                    dilation=node.dilation,
                    padding=node.padding,
                    inputs=node.inputs,
                )
            )
        elif node.op == "pool":
            layers.append(
                rfw.pool(
                    node.name,
                    node.kernel,
                    stride=node.stride,
                    dilation=node.dilation,
                    padding=node.padding,
                    inputs=node.inputs,
                    op="avgpool",
                )
            )
        elif node.op == "add":
            layers.append(rfw.add(node.name, node.inputs))
        else:
            layers.append(rfw.concat(node.name, node.inputs))
    return rfw.Stack(layers, ndim=net.ndim, name="generated")


# -- strategies -------------------------------------------------------------------------------------------


@st.composite
def window_nodes(draw, name: str, source: str, ndim: int, *, exact: bool = False, same: bool = False) -> Node:
    """A conv or average pool; ``exact``: stride 1, dilation 1, padding <= k - 1; ``same``: size kept."""
    square = ndim == 1 or draw(st.booleans())

    def per_axis(values: st.SearchStrategy[int]) -> tuple[int, ...]:
        if square:
            return (draw(values),) * ndim
        return tuple(draw(values) for _ in range(ndim))

    op = draw(st.sampled_from(WINDOWS))
    kernel = per_axis(st.integers(1, 5))
    stride = (1,) * ndim if exact or same else per_axis(st.integers(1, 3))
    dilation = (1,) * ndim if exact else per_axis(st.integers(1, 3))
    symmetric = draw(st.booleans())
    padding = []
    for k, d in zip(kernel, dilation, strict=True):
        k_eff = d * (k - 1) + 1
        if same:
            lo = (k_eff - 1) // 2 if symmetric else draw(st.integers(0, k_eff - 1))
            padding.append((lo, k_eff - 1 - lo))
            continue
        top = min(3, k - 1) if exact else 3
        lo = draw(st.integers(0, top))
        padding.append((lo, lo) if symmetric else (lo, draw(st.integers(0, top))))
    return Node(name, op, (source,), kernel, stride, dilation, tuple(padding))


def smallest_nonempty(net: Net) -> Net:
    """``net`` with every axis of the input grown (by 2, keeping it odd) until no layer is empty."""
    while True:
        sizes = reference_sizes(net)
        empty = [a for a in range(net.ndim) if any(s[a] == 0 for s in sizes.values())]
        if not empty:
            return net
        size = tuple(n + 2 if a in empty else n for a, n in enumerate(net.size))
        net = Net(net.ndim, net.nodes, size, net.sequential, net.exact)


@st.composite
def sequential_nets(draw, *, exact: bool = False) -> Net:
    """1-6 convs/average pools in a row, the input sized from the last layer's field."""
    ndim = draw(st.sampled_from((1, 2)))
    depth = draw(st.integers(1, 6))
    nodes: list[Node] = []
    for i in range(depth):
        source = nodes[-1].name if nodes else rfw.INPUT
        nodes.append(draw(window_nodes(f"l{i}", source, ndim, exact=exact)))
    while True:  # an input on which the last layer has a unit fully inside the image: n >= r + J - 1
        (path,) = enumerate_paths(Net(ndim, tuple(nodes), (1,) * ndim, True, exact))[nodes[-1].name]
        needed = [r + jump - 1 for r, jump, _ in path]
        if ndim == 1 or max(needed) <= MAX_SIDE_2D or len(nodes) == 1:
            break
        nodes.pop()  # keep 2-D inputs small: drop layers from the end
    size = []
    for n, (_, jump, _) in zip(needed, path, strict=True):  # sometimes smaller: then only border units exist
        n = max(1, n + draw(st.integers(-(n // 2), jump + 4)))
        size.append(n if n % 2 else n + 1)
    return smallest_nonempty(Net(ndim, tuple(nodes), tuple(size), True, exact))


@st.composite
def dag_nets(draw, *, exact: bool = False) -> Net:
    """3-8 nodes, each a window on one earlier node (or the input) or a merge of 2-3 same-size nodes."""
    ndim = draw(st.sampled_from((1, 2)))
    if ndim == 1:
        size: tuple[int, ...] = (2 * draw(st.integers(7, 75)) + 1,)
    else:
        size = tuple(2 * draw(st.integers(4, 16)) + 1 for _ in range(2))
    sizes = {rfw.INPUT: size}
    nodes: list[Node] = []
    for i in range(draw(st.integers(3, 8))):
        name = f"n{i}"
        groups: dict[tuple[int, ...], list[str]] = {}
        for known, n in sizes.items():
            groups.setdefault(n, []).append(known)
        mergeable = [group for group in groups.values() if len(group) >= 2]
        op = draw(st.sampled_from(WINDOWS + MERGES if mergeable else WINDOWS))
        if op in MERGES:
            group = draw(st.sampled_from(mergeable))
            members = draw(st.permutations(group))[: draw(st.integers(2, min(3, len(group))))]
            node = Node(name, op, tuple(members))
        else:
            source = draw(st.sampled_from(list(sizes)))
            node = draw(window_nodes(name, source, ndim, exact=exact, same=draw(st.booleans())))
            if any(window_size(sizes[source][a], node, a) == 0 for a in range(ndim)):
                node = draw(window_nodes(name, source, ndim, exact=exact, same=True))
        nodes.append(node)
        sizes[name] = reference_sizes(Net(ndim, tuple(nodes), size, False, exact))[name]
    return Net(ndim, tuple(nodes), size, False, exact)


# -- the checks -------------------------------------------------------------------------------------------


def probe_units(
    paths: list[Path], size: tuple[int, ...], image: tuple[int, ...], data: st.DataObject | None
) -> list[tuple[int, ...]]:
    """Units to backpropagate from: two corners, the first and last unit inside the image, a random one."""
    interior = []
    for a, n in enumerate(size):
        spans = [(u, [path_box(p, (u,) * len(size))[a] for p in paths]) for u in range(n)]
        interior.append([u for u, span in spans if all(lo >= 0 and hi <= image[a] - 1 for lo, hi in span)])
    candidates = [tuple(0 for _ in size), tuple(n - 1 for n in size)]
    if all(interior):
        candidates += [tuple(inside[0] for inside in interior), tuple(inside[-1] for inside in interior)]
    if data is not None:
        candidates.append(tuple(data.draw(st.integers(0, n - 1), label="unit") for n in size))
    return list(dict.fromkeys(candidates))


def check_net(net: Net, data: st.DataObject | None = None) -> bool:
    """Every check on ``net``; True when some probed unit lay fully inside the image."""
    stack = to_stack(net)
    result = rfw.analyze(stack, net.size)
    sizes = reference_sizes(net)
    paths = enumerate_paths(net)

    # numbers per layer against the path enumeration
    for node in net.nodes:
        layer = result.layer(node.name)
        mine = paths[node.name]
        r_min = tuple(min(p[a][0] for p in mine) for a in range(net.ndim))
        r_max = tuple(max(p[a][0] for p in mine) for a in range(net.ndim))
        assert layer.r_min == r_min, node.name
        assert layer.r_max == r_max, node.name
        assert layer.r_max_local == r_max, node.name
        assert layer.jump == tuple(max(p[a][1] for p in mine) for a in range(net.ndim)), node.name
        for a in range(net.ndim):  # the offset belongs to a path with the largest field
            assert layer.offset[a] in {p[a][2] for p in mine if p[a][0] == r_max[a]}, node.name
        assert layer.feature_map == sizes[node.name], node.name

    # merges: inputs whose paths share no (jump, centre of unit 0) on some axis must be reported
    misaligned = {d.layer for d in result.diagnostics if d.kind == "misaligned-merge"}
    for node in net.nodes:
        if node.op not in MERGES:
            continue
        for a in range(net.ndim):
            alignments = [
                {(p[a][1], Fraction(p[a][0] - 1, 2) - p[a][2]) for p in paths[source]}
                for source in node.inputs
            ]
            if any(not (x & y) for i, x in enumerate(alignments) for y in alignments[i + 1 :]):
                assert node.name in misaligned, (node.name, a)
        aligned = {
            tuple((jump, Fraction(r - 1, 2) - offset) for r, jump, offset in p)
            for s in node.inputs
            for p in paths[s]
        }
        if len(aligned) == 1:
            assert node.name not in misaligned, node.name

    # the gradient support of probe units of every layer
    targets = [
        (node.name, unit)
        for node in net.nodes
        for unit in probe_units(paths[node.name], sizes[node.name], net.size, data)
    ]
    shapes, supports = gradient_supports(net, targets)
    for node in net.nodes:
        assert shapes[node.name] == sizes[node.name], node.name
    interior_seen = False
    for (name, unit), support in zip(targets, supports, strict=True):
        mine = paths[name]
        layer = result.layer(name)
        hull = result.unit_box(name, unit, path="hull")
        assert extents(hull) == reference_hull(mine, unit), (name, unit)
        for which, field in (("max", layer.r_max), ("min", layer.r_min)):
            box = result.unit_box(name, unit, path=which)
            assert box.size == field, (name, unit, which)
            for a, extent in enumerate(extents(box)):  # the box of a path with that field
                assert extent in {path_box(p, unit)[a] for p in mine if p[a][0] == field[a]}, (
                    name,
                    unit,
                    which,
                )
        clipped = hull.clipped(net.size)
        if support is None:
            assert not net.exact, (name, unit)  # with no holes every unit reaches an input pixel
            continue
        assert clipped is not None, (name, unit)
        for (lo, hi), start, stop in zip(support, clipped.start, clipped.stop, strict=True):
            assert start <= lo <= hi <= stop, (name, unit, support, clipped)
        if net.exact:
            assert support == extents(clipped), (name, unit, support, clipped)
        if is_interior(mine, unit, net.size):
            interior_seen = True
            assert support == extents(hull), (name, unit, support, hull)
            width = hull.size
            assert all(w >= r for w, r in zip(width, layer.r_max, strict=True)), (name, unit)
            if net.sequential:
                assert width == layer.r_max, (name, unit)
    return interior_seen


@settings(max_examples=450, **SETTINGS)
@given(sequential_nets(), st.data())
def test_sequential_stacks_against_torch_gradients(net, data):
    interior = check_net(net, data)
    event(f"{net.ndim}-D, {len(net.nodes)} layers" + (", an interior unit" if interior else ""))


@settings(max_examples=400, **SETTINGS)
@given(dag_nets(), st.data())
def test_branching_networks_against_torch_gradients(net, data):
    interior = check_net(net, data)
    event(f"{net.ndim}-D, {len(net.nodes)} layers" + (", an interior unit" if interior else ""))


@settings(max_examples=200, **SETTINGS)
@given(st.one_of(sequential_nets(exact=True), dag_nets(exact=True)), st.data())
def test_support_equals_the_clipped_hull_without_holes(net, data):
    interior = check_net(net, data)
    event(f"{net.ndim}-D, {len(net.nodes)} layers" + (", an interior unit" if interior else ""))


def test_holes_and_dropped_pixels_make_the_support_smaller_than_the_clipped_hull():
    """The documented exceptions to "support == clipped hull" (see the module docstring)."""
    # dilation 2 with padding 1: unit 0 reaches pixels -1 (padding), 1 and 3, never 0
    dilated = Net(1, (Node("c", "conv", (rfw.INPUT,), (3,), (1,), (2,), ((1, 1),)),), (9,), True, False)
    # k 2, s 2 on 5 pixels drops pixel 4; the next layer's last unit reaches into that gap
    dropped = Net(
        1,
        (
            Node("c1", "conv", (rfw.INPUT,), (2,), (2,), (1,), ((0, 0),)),
            Node("c2", "conv", ("c1",), (3,), (1,), (1,), ((1, 1),)),
        ),
        (5,),
        True,
        False,
    )
    for net, layer, unit, support, clipped in (
        (dilated, "c", 0, (1, 3), (0, 3)),
        (dropped, "c2", 1, (0, 3), (0, 4)),
    ):
        _, (found,) = gradient_supports(net, [(layer, (unit,))])
        box = rfw.analyze(to_stack(net), net.size).unit_box(layer, unit, path="hull").clipped(net.size)
        assert found == [support]
        assert (box.start[0], box.stop[0]) == clipped
    check_net(dilated)
    check_net(dropped)
