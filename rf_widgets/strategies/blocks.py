"""Moving building blocks between stages: find the stages, plan a redistribution, predict and build it.

A *stage* is a run of building blocks inside one ``nn.Sequential``: a first block (which may change the
width or the resolution) followed by *repeats*, blocks whose output has the shape of their input (stride
1, same channels). A repeat of the target stage is the unit that moves: the source stage loses its last
repeat, the target stage gets a copy of its own last repeat (so the copy has the target's width). The
first block of a stage never moves, so a stage without repeats can neither give nor receive.

The prediction edits the layer graph only (the removed block's layers go, the copied block's layers are
inserted under the names torch.fx will give them in the built module, with the parameters and
multiply-adds recorded on the copied layers); :func:`move_blocks` does the same to a copy of the module.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import INPUT, Layer

__all__ = [
    "MovePlan",
    "Stage",
    "border_counts",
    "even_counts",
    "find_stages",
    "move_blocks",
    "moved_stack",
    "plan",
]


@dataclass(frozen=True)
class Stage:
    """A run of blocks in one ``nn.Sequential``: children ``first`` to ``last`` (inclusive).

    ``layers[k]`` holds the stack indices of the layers of block ``first + k``; ``outputs[k]`` the index
    of the block's output layer. Every block after the first is a repeat.
    """

    container: str
    key: str  # the children's names before their number: "" in a Sequential, "block1-" in RegNet
    first: int
    last: int
    layers: tuple[tuple[int, ...], ...]
    outputs: tuple[int, ...]

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    @property
    def label(self) -> str:
        if self.first == 0 and self.container:
            return self.container
        return f"{_child(self.container, self.key, self.first)}-{self.last}"


@dataclass(frozen=True)
class MovePlan:
    """New block counts per stage (same order as the stages) and the name changes they cause."""

    stages: tuple[Stage, ...]
    counts: tuple[int, ...]
    rename: Callable[[str], str]
    position: Callable[[str, int], int | None]  # a container's child k -> its new number (None: removed)

    @property
    def label(self) -> str:
        before = "-".join(str(s.count) for s in self.stages)
        after = "-".join(str(n) for n in self.counts)
        return f"blocks per stage {before} -> {after}"


def find_stages(
    model: Any, stack: Stack, shapes: dict[str, tuple[int, ...] | None], params_of: Callable[[Any], int]
) -> tuple[Stage, ...]:
    """The stages of a torch ``model`` whose blocks the layer graph ``stack`` accounts for exactly.

    ``shapes`` maps fx node names to output shapes (one forward pass of the original); ``params_of``
    counts a module's parameters. A block qualifies when its layers read one layer outside it and one of
    its layers is read outside it, and its parameters (torch's count) equal its layers' parameters.
    """
    import torch.nn as nn

    layers = stack.layers
    found: list[Stage] = []
    for path, container in model.named_modules():
        # a Sequential (or a subclass that keeps its forward) runs its children in order
        if not isinstance(container, nn.Sequential) or len(container) < 2:
            continue
        if type(container).forward is not nn.Sequential.forward:
            continue
        keys = list(container._modules)
        key = keys[0].rstrip("0123456789")
        if keys != [f"{key}{i}" for i in range(len(keys))]:
            continue
        blocks: list[tuple[int, tuple[int, ...], int, bool] | None] = []
        for name in keys:
            child = container._modules[name]
            prefix = f"{path}.{name}" if path else name
            members = tuple(i for i, layer in enumerate(layers) if layer.name.startswith(prefix + "."))
            if child is None or not list(child.children()) or not members:
                blocks.append(None)
                continue
            inside = set(members)
            sources = {j for i in members for j in stack.input_indices[i] if j not in inside}
            outs = [i for i in members if any(s not in inside for s in stack.successors[i])]
            spatial = [i for i in members if layers[i].kind == "window" and max(layers[i].kernel) > 1]
            if len(sources) != 1 or len(outs) != 1 or not spatial:
                blocks.append(None)
                continue
            if params_of(child) != sum(layers[i].params for i in members):
                blocks.append(None)
                continue
            (source,) = sources
            shape_in = shapes.get(str(layers[source].extra.get("fx_node"))) if source >= 0 else None
            shape_out = shapes.get(str(layers[outs[0]].extra.get("fx_node")))
            repeat = (
                shape_in is not None
                and shape_in == shape_out
                and all(layers[i].kind != "window" or set(layers[i].stride) == {1} for i in members)
            )
            blocks.append((source, members, outs[0], repeat))
        k = 0
        while k < len(blocks):
            head = blocks[k]
            if head is None:
                k += 1
                continue
            end = k
            while end + 1 < len(blocks):
                nxt = blocks[end + 1]
                prev = blocks[end]
                assert prev is not None
                if nxt is None or not nxt[3] or nxt[0] != prev[2]:
                    break
                end += 1
            if end > k:
                run = blocks[k : end + 1]
                found.append(
                    Stage(
                        path,
                        key,
                        k,
                        end,
                        tuple(b[1] for b in run if b is not None),
                        tuple(b[2] for b in run if b is not None),
                    )
                )
            k = end + 1
    # a stage whose blocks hold other stages (ConvNeXt's stages as blocks of `features`) gives way to
    # the inner ones: the unit that moves is the innermost repeat
    spans = [{i for block in s.layers for i in block} for s in found]
    kept = [s for s, span in zip(found, spans, strict=True) if not any(other < span for other in spans)]
    return tuple(sorted(kept, key=lambda s: s.layers[0][0]))


def even_counts(stages: Sequence[Stage], productive: Sequence[bool]) -> tuple[int, ...]:
    """Every movable block spread as evenly as possible over the productive stages (later ones get the rest).

    An unproductive stage keeps its first block only; the total number of blocks stays the same.
    """
    counts = [s.count for s in stages]
    receivers = [i for i, ok in enumerate(productive) if ok]
    if not receivers:
        return tuple(counts)
    total = sum(counts[i] for i in receivers) + sum(
        counts[i] - 1 for i, ok in enumerate(productive) if not ok
    )
    share, rest = divmod(total, len(receivers))
    new = [1 if not ok else share for ok in productive]
    for i in receivers[len(receivers) - rest :]:
        new[i] += 1
    return tuple(new)


def border_counts(stages: Sequence[Stage], productive: Sequence[bool]) -> tuple[int, ...]:
    """Only the repeats of unproductive stages move, each to the productive stage with the fewest blocks."""
    new = [s.count for s in stages]
    receivers = [i for i, ok in enumerate(productive) if ok]
    if not receivers:
        return tuple(new)
    for i, ok in enumerate(productive):
        while not ok and new[i] > 1:
            new[i] -= 1
            target = min(reversed(receivers), key=lambda j: new[j])
            new[target] += 1
    return tuple(new)


def plan(stages: tuple[Stage, ...], counts: tuple[int, ...]) -> MovePlan:
    """The plan that gives ``stages`` the block ``counts``, with the renaming of the moved graph."""
    pairs = list(zip(stages, counts, strict=True))
    containers = sorted({(s.container, s.key) for s in stages}, key=lambda c: len(c[0]), reverse=True)

    def new_index(container: str, k: int) -> int | None:
        offset = 0
        for stage, n in pairs:
            if stage.container != container:
                continue
            if stage.last < k:
                offset += n - stage.count
            elif stage.first <= k and k - stage.first >= n:
                return None  # a removed block
        return k + offset

    def rename(name: str) -> str:
        for container, key in containers:  # the innermost container first
            prefix = f"{container}.{key}" if container else key
            if not name.startswith(prefix):
                continue
            head, sep, tail = _split_index(name[len(prefix) :])
            if head is None:
                continue
            new = new_index(container, head)
            return name if new is None else f"{prefix}{new}{sep}{tail}"
        return name

    return MovePlan(stages, counts, rename, new_index)


def _split_index(rest: str) -> tuple[int | None, str, str]:
    digits = ""
    for ch in rest:
        if not ch.isdigit():
            break
        digits += ch
    if not digits:
        return None, "", ""
    tail = rest[len(digits) :]
    if tail and tail[0] not in ".:":
        return None, "", ""
    return int(digits), tail[:1], tail[1:]


def _child(container: str, key: str, k: int) -> str:
    return f"{container}.{key}{k}" if container else f"{key}{k}"


def moved_stack(stack: Stack, move: MovePlan) -> tuple[Stack, dict[str, str]]:
    """The layer graph after ``move`` and, per new layer name, the layer it is (or copies) in ``stack``.

    The removed repeats are dropped and copies of the target stage's last repeat appended to it.
    """
    origin: dict[str, str] = {}
    layers = stack.layers
    names = stack.names
    dropped: set[int] = set()
    copies: dict[int, list[Layer]] = {}  # inserted after a stage's old output layer
    rewire: dict[str, tuple[str, int]] = {}  # a stage's old output -> its new output (and the stage)
    stage_of: dict[int, int] = {}
    for s, stage in enumerate(move.stages):
        for block in stage.layers:
            stage_of.update(dict.fromkeys(block, s))
    for s, (stage, n) in enumerate(zip(move.stages, move.counts, strict=True)):
        old_out = names[stage.outputs[-1]]
        if n < stage.count:
            for block in stage.layers[n:]:
                dropped.update(block)
            rewire[old_out] = (move.rename(names[stage.outputs[n - 1]]), s)
        elif n > stage.count:
            source = _child(stage.container, stage.key, stage.last)
            last_index = move.position(stage.container, stage.last)
            assert last_index is not None  # the last block of a growing stage stays
            reads = move.rename(old_out)
            made: list[Layer] = []
            for extra in range(1, n - stage.count + 1):
                prefix = _child(stage.container, stage.key, last_index + extra)
                inside = {names[i]: prefix + names[i][len(source) :] for i in stage.layers[-1]}
                for i in stage.layers[-1]:
                    layer = layers[i]
                    origin[inside[layer.name]] = layer.name
                    module = layer.module
                    if module is not None and (module == source or module.startswith(source + ".")):
                        module = prefix + module[len(source) :]
                    made.append(
                        replace(
                            layer,
                            name=inside[layer.name],
                            inputs=tuple(inside.get(x, reads) for x in layer.inputs or ()),
                            module=module,
                            extra={**layer.extra, "fx_node": "moved:" + inside[layer.name]},
                        )
                    )
                reads = inside[old_out]
            copies[stage.outputs[-1]] = made
            rewire[old_out] = (reads, s)
    out: list[Layer] = []
    for i, layer in enumerate(layers):
        if i in dropped:
            continue
        inputs = []
        for x in layer.inputs or ():
            target = rewire.get(x)
            if target is not None and stage_of.get(i) != target[1]:
                inputs.append(target[0])
            else:
                inputs.append(x if x == INPUT else move.rename(x))
        origin[move.rename(layer.name)] = layer.name
        out.append(
            replace(
                layer,
                name=move.rename(layer.name),
                inputs=tuple(inputs),
                module=move.rename(layer.module) if layer.module else layer.module,
            )
        )
        out.extend(copies.get(i, ()))
    return Stack(out, stack.ndim, f"{stack.name} (blocks moved)", dict(stack.metadata)), origin


def move_blocks(model: Any, move: MovePlan) -> None:
    """Apply ``move`` to ``model`` in place (callers pass a copy): children removed, repeats copied."""
    import copy

    for container in {s.container for s in move.stages}:
        seq = model.get_submodule(container) if container else model
        children = list(seq._modules.values())
        new: list[Any] = []
        k = 0
        stages = {
            s.first: (s, n) for s, n in zip(move.stages, move.counts, strict=True) if s.container == container
        }
        while k < len(children):
            if k not in stages:
                new.append(children[k])
                k += 1
                continue
            stage, n = stages[k]
            kept = children[stage.first : stage.first + min(n, stage.count)]
            new += kept
            unit = children[stage.last]
            new += [copy.deepcopy(unit) for _ in range(n - stage.count)]
            k = stage.last + 1
        key = next(s.key for s in move.stages if s.container == container)
        seq._modules = OrderedDict((f"{key}{i}", m) for i, m in enumerate(new))
