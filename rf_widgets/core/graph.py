"""The layer graph: validated, topologically ordered, with index-based adjacency for the hot loops."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from rf_widgets.core.layers import INPUT, Layer
from rf_widgets.errors import GraphError, shown

__all__ = ["MAX_NDIM", "Stack"]

MAX_NDIM = 8
"""The most spatial axes a stack may have."""

NETWORK_INPUT = -1
"""Index used in :attr:`Stack.input_indices` for the network input."""


@dataclass(frozen=True, eq=False)
class Stack:
    """A network as a validated graph of :class:`~rf_widgets.core.layers.Layer` records.

    Layers may name their inputs (``inputs=("conv1", "input")``); a layer without ``inputs`` takes the
    layer declared before it, the first one the network input. Layers are kept in a topological order
    that follows the declaration order wherever the edges allow.

    Parameters
    ----------
    layers
        The layers, usually in the order they run.
    ndim
        The number of spatial axes. By default the largest number any layer declares, at least 2 when
        every layer uses scalars (images are the common case).
    name
        What the stack describes, shown in reports and the JSON export.

    Examples
    --------
    >>> from rf_widgets.core.layers import conv, pool
    >>> Stack([conv("c1", 3), pool("p1", 2)]).names
    ('c1', 'p1')
    """

    layers: tuple[Layer, ...]
    ndim: int
    name: str
    metadata: dict[str, object] = field(default_factory=dict, compare=False, repr=False)
    input_indices: tuple[tuple[int, ...], ...] = field(init=False, repr=False)
    successors: tuple[tuple[int, ...], ...] = field(init=False, repr=False)
    index: dict[str, int] = field(init=False, repr=False)

    def __init__(
        self,
        layers: Iterable[Layer],
        ndim: int | None = None,
        name: str = "stack",
        metadata: dict[str, object] | None = None,
    ) -> None:
        declared = list(layers)
        if not declared:
            raise GraphError(f"a stack needs at least one layer, got none for '{name}'")
        for layer in declared:
            if not isinstance(layer, Layer):
                raise GraphError(
                    f"a stack is built from Layer records (rf_widgets.conv, pool, ...), "
                    f"got {type(layer).__name__} in '{name}'"
                )
        if ndim is None:
            ndim = max(max(layer.ndim for layer in declared), 2)
        if not isinstance(ndim, int) or isinstance(ndim, bool) or not 1 <= ndim <= MAX_NDIM:
            raise GraphError(f"ndim must be an int from 1 to {MAX_NDIM}, got {shown(ndim)} for '{name}'")
        resolved = _resolve_inputs([layer.broadcast(ndim) for layer in declared])
        ordered = _topological_order(resolved)
        index = {layer.name: i for i, layer in enumerate(ordered)}
        input_indices = tuple(
            tuple(NETWORK_INPUT if src == INPUT else index[src] for src in layer.inputs or ())
            for layer in ordered
        )
        successors: list[list[int]] = [[] for _ in ordered]
        for i, sources in enumerate(input_indices):
            for j in sources:
                if j != NETWORK_INPUT and i not in successors[j]:
                    successors[j].append(i)
        object.__setattr__(self, "layers", tuple(ordered))
        object.__setattr__(self, "ndim", ndim)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "metadata", dict(metadata or {}))
        object.__setattr__(self, "input_indices", input_indices)
        object.__setattr__(self, "successors", tuple(tuple(s) for s in successors))
        object.__setattr__(self, "index", index)

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __getitem__(self, name: str) -> Layer:
        try:
            return self.layers[self.index[name]]
        except KeyError:
            raise GraphError(f"no layer named '{name}' in '{self.name}'") from None

    def __repr__(self) -> str:
        return f"Stack({self.name!r}, {len(self.layers)} layers, ndim={self.ndim})"

    def with_layers(self, changes: Mapping[int, Layer], name: str | None = None) -> Stack:
        """The same graph with the layers at the indices of ``changes`` replaced.

        A replacement keeps its layer's name and inputs (other kernels, strides, paddings, kinds), so
        the order and the adjacency carry over without validating the graph again.

        >>> from dataclasses import replace
        >>> from rf_widgets.core.layers import conv
        >>> stack = Stack([conv("c1", 3), conv("c2", 3)])
        >>> stack.with_layers({1: replace(stack["c2"], kernel=(5, 5))})["c2"].kernel
        (5, 5)
        """
        layers = list(self.layers)
        for i, layer in changes.items():
            old = layers[i]
            if layer.name != old.name or tuple(layer.inputs or ()) != tuple(old.inputs or ()):
                raise GraphError(
                    f"a replacement must keep the name and inputs of layer '{old.name}', got "
                    f"'{layer.name}' reading {layer.inputs}"
                )
            layers[i] = layer.broadcast(self.ndim)
        new = object.__new__(Stack)
        for attr in ("ndim", "metadata", "input_indices", "successors", "index"):
            object.__setattr__(new, attr, getattr(self, attr))
        object.__setattr__(new, "layers", tuple(layers))
        object.__setattr__(new, "name", self.name if name is None else name)
        return new

    @property
    def names(self) -> tuple[str, ...]:
        """Layer names in topological order."""
        return tuple(layer.name for layer in self.layers)

    def macs(self, sizes: Sequence[Sequence[int]], input_size: Sequence[int]) -> list[int]:
        """Multiply-adds of every layer, given every layer's feature map and the network input's size.

        Each layer is counted by :meth:`Layer.macs` from its own map and its first input's.
        """
        return [
            layer.macs(size, input_size if first == NETWORK_INPUT else sizes[first])
            for layer, size, (first, *_) in zip(self.layers, sizes, self.input_indices, strict=True)
        ]

    def replace(self, layers: Sequence[Layer], name: str | None = None) -> Stack:
        """A new stack with other layers and the same dimensionality and metadata."""
        return Stack(layers, self.ndim, self.name if name is None else name, self.metadata)


def _resolve_inputs(layers: list[Layer]) -> list[Layer]:
    names: set[str] = set()
    for layer in layers:
        if layer.name in names:
            raise GraphError(f"layer name '{layer.name}' is used twice")
        names.add(layer.name)
    out = []
    previous = INPUT
    for layer in layers:
        inputs = layer.inputs if layer.inputs is not None else (previous,)
        if not inputs:
            raise GraphError(f"layer '{layer.name}' has an empty inputs list")
        for src in inputs:
            if src != INPUT and src not in names:
                raise GraphError(f"layer '{layer.name}' names an unknown input '{src}'")
            if src == layer.name:
                raise GraphError(f"layer '{layer.name}' names itself as its input (a cycle)")
        if layer.inputs != inputs:
            from dataclasses import replace

            layer = replace(layer, inputs=inputs)
        out.append(layer)
        previous = layer.name
    return out


def _topological_order(layers: list[Layer]) -> list[Layer]:
    """Kahn's algorithm, always taking the earliest declared ready layer."""
    import heapq

    position = {layer.name: i for i, layer in enumerate(layers)}
    pending = [0] * len(layers)
    users: list[list[int]] = [[] for _ in layers]
    for i, layer in enumerate(layers):
        for src in set(layer.inputs or ()):
            if src != INPUT:
                pending[i] += 1
                users[position[src]].append(i)
    ready = [i for i, count in enumerate(pending) if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(layers[i])
        for j in users[i]:
            pending[j] -= 1
            if pending[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != len(layers):
        stuck = {i for i, count in enumerate(pending) if count > 0}
        # Layers that merely follow a cycle are stuck too; peel them off from the end.
        while True:
            tails = {i for i in stuck if not any(j in stuck for j in users[i])}
            if not tails:
                break
            stuck -= tails
        names = [layers[i].name for i in sorted(stuck)]
        raise GraphError(f"the layers {', '.join(repr(n) for n in names)} form a cycle")
    return order
