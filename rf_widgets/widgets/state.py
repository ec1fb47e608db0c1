"""The Explorer's state: one observable object, changed only by actions that were checked first.

Every action (an edit of the stack, undo, a new input size, a layer or unit choice, an image, a
strategy preview) builds a *candidate* state, analyses it, and commits it only when the analysis
succeeds. A refused action raises an :class:`~rf_widgets.errors.RFError` with a one-line reason and
leaves every trait, the history and the suggestions exactly as they were.

The state knows nothing about widgets or figures: panels observe its traits (``revision`` changes
once per committed action, after all other traits) and call its methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets

from rf_widgets import editing
from rf_widgets.core.analysis import normalize_resolution
from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import Layer
from rf_widgets.core.results import Analysis, analyze_stack
from rf_widgets.data import DEFAULT_MAX_PIXELS, SAMPLE_IMAGES, load_image, sample_image
from rf_widgets.errors import RFError

__all__ = ["MAX_UPLOAD_BYTES", "ExplorerState", "default_layer"]

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_INPUT_SIZE = 1 << 20
"""The largest input size per axis the Explorer accepts (the analysis is exact far beyond any image)."""
MAX_EDIT_VALUE = 4096
"""The largest kernel, stride, dilation or padding an edit may set: checked before the edited stack
is analysed (a stride of 1,000,000 on fcn_resnet50's first convolution took 84 s to analyse)."""
MAX_NAME = 200
"""The longest layer name an edit may give (a name of a million characters slowed every later action)."""
UPLOADED = "upload"
"""``image_name`` of an uploaded image."""
GIVEN = "array"
"""``image_name`` of an image passed as an array."""


def _check_cap(layer: Layer) -> None:
    """Refuse, before any analysis, an edited layer beyond MAX_EDIT_VALUE or MAX_NAME."""
    if not isinstance(layer.name, str) or len(layer.name) > MAX_NAME:
        raise RFError(
            f"a layer name may have at most {MAX_NAME} characters (MAX_NAME), got {len(layer.name):,}"
        )
    values = [*layer.kernel, *layer.stride, *layer.dilation, *(v for pair in layer.padding for v in pair)]
    if max(values) > MAX_EDIT_VALUE:
        raise RFError(
            f"layer '{layer.name}': kernel, stride, dilation and padding may be at most {MAX_EDIT_VALUE} "
            f"here (MAX_EDIT_VALUE), got {max(values):,}"
        )


def default_layer(result: Analysis) -> str:
    """The layer to show first: the border layer, else the last spatial layer (``k_eff > 1``)."""
    if result.border_layer:
        return result.border_layer
    spatial = [
        layer.name
        for layer in result.stack.layers
        if layer.kind == "window" and any(k > 1 for k in layer.kernel_effective)
    ]
    if spatial:
        return spatial[-1]
    local = [layer.name for layer in result.layers if not layer.is_global]
    return local[-1] if local else result.layers[0].name


def _centre(result: Analysis, layer: str) -> tuple[int, ...]:
    return tuple(max(n - 1, 0) // 2 for n in result.layer(layer).feature_map)


def _analyse(stack: Stack, resolution: tuple[int, ...]) -> Analysis:
    """The analysis of a candidate; anything that goes wrong becomes a one-line refusal."""
    try:
        return analyze_stack(stack, resolution, stack.name)
    except RFError:
        raise
    except (ArithmeticError, RecursionError, MemoryError, ValueError) as err:
        # A parameter far beyond any network (a kernel of 10**400) overflows the arithmetic.
        raise RFError(f"the analysis fails on this stack ({type(err).__name__}: {err})") from None


class ExplorerState(traitlets.HasTraits):
    """What the Explorer shows: stack, input size, selected layer and unit, image, edit history.

    Parameters
    ----------
    stack
        The stack to start from (also what Reset returns to).
    input_size
        An int (square) or one int per spatial axis.
    image
        None, the name of a built-in sample, or an HxW(x3) array.
    model
        The torch model the stack was imported from, if any (the strategies use it).

    Examples
    --------
    >>> import rf_widgets as rfw
    >>> state = ExplorerState(rfw.Stack([rfw.conv("c1", 3, stride=2), rfw.conv("c2", 3)]), 16)
    >>> state.edit("c1", stride=1)
    "changed 'c1': stride 2 -> 1"
    >>> state.undo()
    'undone'
    >>> state.stack["c1"].stride
    (2, 2)
    """

    stack = traitlets.Instance(Stack)
    resolution = traitlets.Tuple()
    layer = traitlets.Unicode()
    unit = traitlets.Tuple()
    image_name = traitlets.Unicode("none")
    image_label = traitlets.Unicode("")
    image = traitlets.Any(None)
    result = traitlets.Instance(Analysis)
    suggestions = traitlets.Any(None)
    can_undo = traitlets.Bool(False)
    can_redo = traitlets.Bool(False)
    revision = traitlets.Int(0)

    def __init__(self, stack: Stack, input_size: object = 224, image: Any = None, model: Any = None) -> None:
        super().__init__()
        resolution = self._resolution(input_size, stack.ndim)
        result = _analyse(stack, resolution)
        self.original = stack
        self.model = model
        # The aspect of the first input size: the one-number size control scales every axis with it.
        self.aspect = tuple(n / resolution[0] for n in resolution)
        self._history: list[Stack] = [stack]
        self._position = 0
        self._suggested: tuple[Stack, tuple[int, ...], int] | None = None
        self._design_shown: Stack | None = None  # the step show_design added last
        self.deeper_cut: Any = None  # a DeeperCut, when the suggested trim keeps the border layer
        name, label, picture = self._image_from(image)
        layer = default_layer(result)
        with self.hold_trait_notifications():
            self.stack, self.resolution, self.result = stack, resolution, result
            self.layer, self.unit = layer, _centre(result, layer)
            self.image_name, self.image_label, self.image = name, label, picture

    # -- reading ----------------------------------------------------------------------------------------

    @property
    def history(self) -> tuple[Stack, ...]:
        """Every stack of the edit history (undo steps back, redo forward)."""
        return tuple(self._history)

    @property
    def position(self) -> int:
        """The index of the shown stack in :attr:`history`."""
        return self._position

    def snapshot(self) -> dict[str, Any]:
        """Everything an action may change, for comparisons (the image by identity)."""
        return {
            "stack": self.stack,
            "resolution": self.resolution,
            "layer": self.layer,
            "unit": self.unit,
            "image_name": self.image_name,
            "image": id(self.image),
            "history": self.history,
            "position": self._position,
            "suggestions": id(self.suggestions),
            "result": self.result,
        }

    def shown_strategy(self) -> str | None:
        """The strategy preview shown now: its kind, ``""`` for the stack they were made for, else None."""
        if self.suggestions is None or self._suggested is None:
            return None
        base, size, _ = self._suggested
        if self.stack is base and self.resolution == size:
            return ""
        for item in self.suggestions.applicable():
            stack = item.stack if item.stack is not None else base
            if self.stack is stack and self.resolution == item.new_input_size:
                return str(item.kind)
        if self.deeper_cut is not None and self.stack is self.deeper_cut.stack and self.resolution == size:
            return str(self.deeper_cut.kind)
        return None

    # -- committing -------------------------------------------------------------------------------------

    def _commit(
        self,
        stack: Stack | None = None,
        resolution: tuple[int, ...] | None = None,
        layer: str | None = None,
        unit: tuple[int, ...] | None = None,
        history: tuple[list[Stack], int] | None = None,
        **others: Any,
    ) -> None:
        """Analyse the candidate and, only if that succeeds, set every trait at once."""
        stack = self.stack if stack is None else stack
        resolution = self.resolution if resolution is None else resolution
        if stack is self.stack and resolution == self.resolution:
            result = self.result
        else:
            result = _analyse(stack, resolution)
        if layer is None or layer not in stack.index:
            layer = self.layer if self.layer in stack.index else default_layer(result)
        size = result.layer(layer).feature_map
        same = layer == self.layer and stack is self.stack and len(self.unit) == len(size)
        if unit is None or not same:
            # A new layer or stack starts at the centre unit; a new input size keeps the unit if it can.
            unit = self.unit if same else _centre(result, layer)
        if any(u > max(n - 1, 0) for u, n in zip(unit, size, strict=True)):
            unit = _centre(result, layer)
        with self.hold_trait_notifications():
            self.stack, self.resolution, self.result = stack, resolution, result
            self.layer, self.unit = layer, unit
            for key, value in others.items():
                setattr(self, key, value)
            if history is not None:
                self._history, self._position = history
            self.can_undo = self._position > 0
            self.can_redo = self._position < len(self._history) - 1
            self.revision += 1

    def _push(self, stack: Stack, what: str, select: str | None = None) -> str:
        """Commit an edited stack as a new history step (a redo tail is dropped)."""
        history = [*self._history[: self._position + 1], stack]
        self._commit(stack, layer=select, history=(history, len(history) - 1))
        return what

    # -- actions ----------------------------------------------------------------------------------------

    @staticmethod
    def _resolution(value: object, ndim: int) -> tuple[int, ...]:
        resolution = normalize_resolution(value, ndim)
        if max(resolution) > MAX_INPUT_SIZE:
            raise RFError(f"input size must be at most {MAX_INPUT_SIZE} per axis, got {value!r}")
        return resolution

    def set_resolution(self, value: object) -> str:
        """Analyse at another input size: an int keeps the first size's aspect, a tuple is taken as is."""
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and len(self.aspect) > 1:
            side = int(value)
            value = tuple(max(1, round(side * a)) for a in self.aspect) if side >= 1 else side
        resolution = self._resolution(value, self.stack.ndim)
        self._commit(resolution=resolution)
        return f"input size {'x'.join(map(str, resolution))}"

    def select_layer(self, name: str) -> str:
        """Show layer ``name`` (its centre unit); the editor edits the same layer."""
        if name not in self.stack.index:
            raise RFError(f"no layer named {name!r} in '{self.stack.name}'")
        if name != self.layer:
            self._commit(layer=name)
        return f"layer '{name}'"

    def set_unit(self, unit: Sequence[int]) -> str:
        """Show the field of another unit of the selected layer (one index per axis)."""
        size = self.result.layer(self.layer).feature_map
        values = tuple(unit)
        if len(values) != len(size) or any(
            isinstance(u, bool) or not isinstance(u, (int, np.integer)) for u in values
        ):
            raise RFError(f"a unit of '{self.layer}' is {len(size)} whole numbers, got {tuple(unit)!r}")
        values = tuple(int(u) for u in values)
        if any(not 0 <= u <= max(n - 1, 0) for u, n in zip(values, size, strict=True)):
            raise RFError(f"unit {values} is outside the {'x'.join(map(str, size))} map of '{self.layer}'")
        if values != self.unit:
            self._commit(unit=values)
        return f"unit {values}"

    def edit(self, name: str, **changes: Any) -> str:
        """Change some parameters of layer ``name`` (only those given)."""
        if not changes:
            raise RFError(f"nothing to change: the fields show the values of '{name}'")
        before = self.stack[name]
        stack = editing.change_layer(self.stack, name, **changes)
        _check_cap(stack[name])
        after = stack[name]
        what = "; ".join(
            f"{key} {_show(getattr(before, key))} -> {_show(getattr(after, key))}" for key in changes
        )
        return self._push(stack, f"changed '{name}': {what}", select=name)

    def bypass(self, name: str) -> str:
        """Make layer ``name`` an identity."""
        return self._push(editing.bypass_layer(self.stack, name), f"bypassed '{name}'", select=name)

    def add(self, position: int, layer: Layer) -> str:
        """Insert ``layer`` at ``position`` of the chain."""
        _check_cap(layer)
        stack = editing.insert_layer(self.stack, position, layer)
        return self._push(stack, f"added '{layer.name}'", select=layer.name)

    def remove(self, name: str) -> str:
        """Remove layer ``name``; the layers it fed take its inputs."""
        return self._push(editing.remove_layer(self.stack, name), f"removed '{name}'")

    def move(self, name: str, offset: int) -> str:
        """Swap layer ``name`` with its neighbour in a chain (-1 earlier, +1 later)."""
        stack = editing.move_layer(self.stack, name, offset)
        return self._push(stack, f"moved '{name}' {'up' if offset < 0 else 'down'}", select=name)

    def undo(self) -> str:
        """Go back one edit."""
        if self._position == 0:
            raise RFError("nothing to undo")
        position = self._position - 1
        self._commit(self._history[position], history=(self._history, position))
        return "undone"

    def redo(self) -> str:
        """Go forward one edit."""
        if self._position >= len(self._history) - 1:
            raise RFError("nothing to redo")
        position = self._position + 1
        self._commit(self._history[position], history=(self._history, position))
        return "redone"

    def reset(self) -> str:
        """Back to the original stack, as a step that Undo reverts."""
        if self.stack is self.original:
            raise RFError("the original stack is shown already")
        return self._push(self.original, "reset to the original stack")

    def show_sample(self, name: str) -> str:
        """Show a built-in sample image (``"none"``: a neutral background)."""
        if name == self.image_name:
            return f"image '{name}'"
        if name not in ("none", *SAMPLE_IMAGES):
            raise RFError(f"no sample image {name!r}; the samples are {', '.join(SAMPLE_IMAGES)}")
        picture = None if name == "none" else sample_image(name)
        self._commit(image_name=name, image_label=name, image=picture)
        return f"showing the sample '{name}'" if picture is not None else "no image"

    def upload(self, content: bytes, filename: str) -> str:
        """Show an uploaded PNG/JPEG file; a bad file is refused and the previous image kept."""
        if len(content) > MAX_UPLOAD_BYTES:
            raise RFError(
                f"'{filename}' is {len(content) / 2**20:.1f} MiB; "
                f"images up to {MAX_UPLOAD_BYTES // 2**20} MiB are accepted"
            )
        try:
            picture = load_image(content)
        except RFError as err:
            raise RFError(f"'{filename}': {err}; the previous image is kept") from None
        except Exception as err:  # the decoder is a third-party library: name the file, keep the image
            raise RFError(
                f"'{filename}' cannot be decoded ({type(err).__name__}); the previous image is kept"
            ) from None
        self._commit(image_name=UPLOADED, image_label=filename, image=picture)
        return f"showing '{filename}' ({picture.shape[1]}x{picture.shape[0]})"

    def suggest(self) -> str:
        """Compute the design strategies for the shown stack at the shown input size."""
        from rf_widgets.strategies import suggest

        # The torch model gives the full prediction (a new head, exact parameters); once the stack was
        # edited here, the strategies work on the edited stack.
        source = self.model if self.model is not None and self.stack is self.original else self.stack
        try:
            found = suggest(source, self.resolution, name=self.stack.name)
        except RFError:
            raise
        except Exception as err:  # the strategies may run the user's model
            raise RFError(f"the strategies failed ({type(err).__name__}: {err})") from None
        self.deeper_cut = _deeper_cut(source, self.resolution, found, self.stack.name)
        self._suggested = (self.stack, self.resolution, self._position)
        self._commit(suggestions=found)
        size = "x".join(map(str, self.resolution))
        return f"{len(found.applicable())} strategies apply at {size}"

    def preview(self, kind: str) -> str:
        """Show one suggestion (``""``: the stack and size they were made for)."""
        if self.suggestions is None or self._suggested is None:
            raise RFError("press Suggest first")
        base, size, position = self._suggested
        previews: dict[str, tuple[Stack, tuple[int, ...], Any]] = {
            str(s.kind): (s.stack if s.stack is not None else base, s.new_input_size, s)
            for s in self.suggestions.applicable()
        }
        if self.deeper_cut is not None:
            previews[self.deeper_cut.kind] = (self.deeper_cut.stack, size, self.deeper_cut)
        if kind and kind not in previews:
            raise RFError(f"no applicable strategy {kind!r}")
        shown = {base} | {stack for stack, _, _ in previews.values()}
        if self.stack not in shown or len(self._history) > position + 2:
            raise RFError("the stack changed since the strategies were suggested; press Suggest again")
        stack, resolution, item = (base, size, None) if not kind else previews[kind]
        # Each preview replaces the one before: the history keeps at most one step after the base.
        history = self._history[: position + 1]
        if stack is not base:
            history.append(stack)
        self._commit(stack, resolution, history=(history, len(history) - 1))
        if item is None:
            return "showing the stack the strategies were suggested for"
        if item.kind == "resolution":
            return f"previewing: {item.changes[0]}"
        return f"previewing: {item.title.lower()} (Undo or Reset to go back)"

    def show_design(self, base: tuple[Stack, int], stack: Stack | None, resolution: object, what: str) -> str:
        """Show a design-search candidate: ``stack`` at ``resolution``, one history step after ``base``.

        ``base`` is the stack the search ran on and its position in the history; ``stack`` None shows
        that stack itself. Each preview replaces the one before, so Undo goes back to the base. Refused,
        with nothing changed, once the history moved on from the base and its preview (an edit, an
        undo past the base, a reset).
        """
        base_stack, position = base
        at_base = self._position == position
        at_preview = self._position == position + 1 and self._history[position + 1] is self._design_shown
        if not (
            position < len(self._history)
            and self._history[position] is base_stack
            and (at_base or at_preview)
        ):
            raise RFError("the stack changed since the search; press Search again")
        size = self._resolution(resolution, self.stack.ndim)
        history = self._history[: position + 1]
        if stack is not None and stack is not base_stack:
            history.append(stack)
        shown = history[-1]
        self._commit(shown, size, history=(history, len(history) - 1))
        self._design_shown = shown if len(history) > position + 1 else None
        return what

    # -- helpers ----------------------------------------------------------------------------------------

    @staticmethod
    def _image_from(image: Any) -> tuple[str, str, np.ndarray | None]:
        if image is None or (isinstance(image, str) and image == "none"):
            return "none", "none", None
        if isinstance(image, str):
            if image not in SAMPLE_IMAGES:
                raise RFError(f"no sample image {image!r}; the samples are {', '.join(SAMPLE_IMAGES)}")
            return image, image, sample_image(image)
        picture = np.asarray(image)
        if picture.ndim not in (2, 3) or 0 in picture.shape:
            raise RFError(f"an image must be an HxW or HxWxC array, got shape {picture.shape}")
        if picture.dtype.kind not in "biuf":
            raise RFError(f"an image must hold numbers, got an array of {picture.dtype}")
        if picture.size > DEFAULT_MAX_PIXELS * 4:
            raise RFError(
                f"an image may have at most {DEFAULT_MAX_PIXELS:,} pixels, got shape {picture.shape}"
            )
        return GIVEN, "your image", picture


def _deeper_cut(source: Any, resolution: tuple[int, ...], found: Any, name: str) -> Any:
    """The cut before the border layer (a DeeperCut) when the suggested trim keeps that layer."""
    from rf_widgets.widgets.trim_why import border_kept_because, deeper_cut

    trim = next((s for s in found.applicable() if s.kind == "trim"), None)
    if trim is None or border_kept_because(trim.before, trim) is None:
        return None
    try:
        return deeper_cut(source, resolution, trim, name=name)
    except Exception:  # an extra offer: when its search fails, the strategies stand without it
        return None


def _show(value: Any) -> str:
    """A parameter as the editor writes it."""
    from rf_widgets.widgets.parsing import format_padding, format_per_axis

    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        return format_padding(value)
    if isinstance(value, tuple):
        return format_per_axis(value)
    return repr(value)
