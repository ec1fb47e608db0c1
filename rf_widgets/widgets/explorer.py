"""The Explorer: change the input resolution or the layer stack and see the verdicts and fields at once.

Built from core ipywidgets only, so it renders in JupyterLab, Notebook 7, Voila and VS Code. Three
parts, each in its own module: the state (:mod:`~rf_widgets.widgets.state`, one observable object
changed only by validated actions), the controls (:mod:`~rf_widgets.widgets.panels`) and the picture
(:mod:`~rf_widgets.widgets.renderer`). This module wires them: a control calls a state action; when
the state commits, every control and view is brought up to date from it; when it refuses, the
controls are put back to what the state holds and the reason is shown in one line.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from rf_widgets import editing
from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import (
    Layer,
    conv,
    elementwise,
    global_pool,
    ints_per_axis,
    padding_per_axis,
    pool,
)
from rf_widgets.core.results import Analysis
from rf_widgets.errors import RFError
from rf_widgets.frontends.registry import resolve
from rf_widgets.stackfile import stack_to_dict
from rf_widgets.strategies import Suggestions
from rf_widgets.widgets import panels
from rf_widgets.widgets.effective import EffectiveFields
from rf_widgets.widgets.front import FrontView, front_panel
from rf_widgets.widgets.outputs import add_output_picker, show_outputs
from rf_widgets.widgets.parsing import format_padding, format_per_axis, parse_padding, parse_per_axis
from rf_widgets.widgets.renderer import ALL_VIEWS, Renderer
from rf_widgets.widgets.state import ExplorerState

__all__ = ["Explorer", "explore"]

TAB_TITLES = panels.TAB_TITLES
NEW_LAYER_DEFAULTS = {"kernel": "3", "stride": "1", "dilation": "1", "padding": "0"}


def explore(
    model: Any, image: Any = None, input_size: Any = 224, evidence: Any = None, **kwargs: Any
) -> Explorer:
    """Open the :class:`Explorer` on ``model`` (a torch module, a Stack, a list of layers or a spec).

    ``evidence`` (an ``EvidenceResult``) adds its saturation and probe curves to the growth plot.
    """
    explorer = Explorer(model, image=image, input_size=input_size, **kwargs)
    if evidence is not None:
        explorer.show_evidence(evidence)
    return explorer


class Explorer(widgets.VBox):
    """Interactive receptive-field analysis of one network.

    Parameters
    ----------
    model
        A ``torch.nn.Module`` (traced once; edits never re-trace), a :class:`Stack`, a list of layers,
        or a spec string such as ``"torchvision:resnet18"``.
    image
        A numpy image, or the name of a built-in sample (see ``rf_widgets.data.SAMPLE_IMAGES``).
    input_size
        The initial input resolution: an int, or one int per spatial axis (the size slider then
        scales every axis with the first one).
    interactive
        Show the figure as an ipympl canvas (needs ipympl): zoom, pan, and a click on the image picks
        the nearest unit, a click on a strip cell picks that layer. It redraws the whole figure on
        every change; the default JPEG picture redraws only what changed.
    name
        What the summary calls the model (default: its class name, or the spec string).

    Attributes
    ----------
    state : ExplorerState
        What is shown (stack, input size, layer, unit, image, history), observable with traitlets.
    controls : dict
        Every control by name (``"resolution"``, ``"layer"``, ``"unit_0"``, ``"image"``, ...), to drive the
        Explorer from code or tests.
    figure : matplotlib.figure.Figure
        The figure behind the picture.
    result : Analysis
        The analysis shown now.

    Examples
    --------
    >>> import rf_widgets as rfw
    >>> ex = rfw.explore([rfw.conv("c1", 3, stride=2), rfw.conv("c2", 3)], input_size=16)
    >>> ex.controls["resolution"].value = 5
    >>> ex.result.border_layer
    'c2'
    """

    def __init__(
        self,
        model: Any,
        image: Any = None,
        input_size: Any = 224,
        *,
        interactive: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        found = resolve(model)  # a spec is loaded once: the effective field needs the module itself
        model = found.model
        stack = found.stack()
        if name:
            stack = stack.replace(stack.layers, name=name)
        self.is_torch = found.kind == "torch"
        self.state = ExplorerState(stack, input_size, image, model if self.is_torch else None)
        state = self.state
        self.renderer = Renderer(state.result, state.layer, state.image, interactive)
        self.interactive = interactive
        self.controls: dict[str, widgets.Widget] = {}
        self.summary = widgets.HTML().add_class("rfw-summary")
        self.message = widgets.HTML().add_class("rfw-message")
        self.table = widgets.HTML(layout=widgets.Layout(max_height="320px", overflow="auto"))
        tabs = widgets.Tab(
            children=[
                panels.view_panel(self.controls, stack.ndim, state.resolution[0], has_weights=self.is_torch),
                panels.stack_panel(self.controls, fixed_graph=self.is_torch),
                widgets.VBox([panels.strategy_panel(self.controls), front_panel(self.controls)]),
                panels.image_panel(self.controls),
                panels.export_panel(self.controls),
            ]
        )
        for i, title in enumerate(TAB_TITLES):
            tabs.set_title(i, title)
        add_output_picker(self.controls, tabs.children[0], state.result)
        self.controls["tabs"] = tabs
        self.export_text = self.controls["export_text"]
        self.children = (self.summary, tabs, self.message, self.caption, self.picture, self.table)
        self._syncing = False
        self.effective_fields = EffectiveFields(model) if self.is_torch else None
        self._erf_error = ""
        self._shown: dict[str, Any] = {}
        self._pending_draw: tuple[tuple[str, ...], bool] | None = None
        self._draw_scheduled = False
        self._strategies_shown: tuple[Any, Any] = (None, "")
        self._wire()
        self._show_state()
        state.observe(lambda _: self._show_state(), names="revision")
        self.front_view = FrontView(  # the design search in the Strategies tab
            self.state,
            self.controls,
            interactive=interactive,
            act=self._act,
            report=self._report,
            export_json=self._export_json,
        )

    # -- the public surface -----------------------------------------------------------------------------

    @property
    def stack(self) -> Stack:
        """The layer stack shown now (after the user's edits)."""
        return self.state.stack

    @property
    def result(self) -> Analysis:
        """The analysis shown now."""
        return self.state.result

    @property
    def suggestions(self) -> Suggestions | None:
        """The strategies last suggested (None before Suggest is pressed)."""
        return self.state.suggestions  # type: ignore[no-any-return]

    def show_evidence(self, evidence: Any) -> None:
        """Draw an ``EvidenceResult``'s saturation and probe accuracy on the growth plot (None: remove)."""
        self.renderer.set_curves(None if evidence is None else evidence.curves())

    @property
    def figure(self) -> Any:
        return self.renderer.figure

    @property
    def picture(self) -> widgets.Widget:
        return self.renderer.picture  # type: ignore[no-any-return]

    @property
    def caption(self) -> widgets.HTML:
        return self.renderer.caption

    # -- wiring -----------------------------------------------------------------------------------------

    def _wire(self) -> None:
        c, state = self.controls, self.state
        self._on_value("resolution", state.set_resolution)
        self._on_value("resolution_text", state.set_resolution)
        self._on_value("layer", state.select_layer)
        self._on_value("stack", state.select_layer)
        self._on_value("output", state.select_layer)
        self._on_value("image", state.show_sample)
        self._on_value("strategy", state.preview)
        for a in range(state.stack.ndim):
            c[f"unit_{a}"].observe(self._on_unit, names="value")
        c["log"].observe(self._on_log, names="value")
        c["erf"].observe(lambda _: None if self._syncing else self._show_overlay(), names="value")
        c["upload"].observe(self._on_upload, names="value")
        buttons: dict[str, Callable[[], str]] = {
            "apply": self._apply,
            "bypass": lambda: state.bypass(state.layer),
            "add": self._add,
            "remove": lambda: state.remove(state.layer),
            "up": lambda: state.move(state.layer, -1),
            "down": lambda: state.move(state.layer, 1),
            "undo": state.undo,
            "redo": state.redo,
            "reset": state.reset,
            "suggest": state.suggest,
            "export_json": self._export_json,
            "export_python": self._export_python,
            "strategy_export": self._export_preview,
        }
        for key, action in buttons.items():
            # a click sent by the kernel (button.click()) reaches the handler even when disabled
            c[key].on_click(lambda button, action=action: None if button.disabled else self._act(action))
        # ipympl's canvas reports clicks itself; the JPEG picture reports them through ipyevents.
        self.renderer.canvas.mpl_connect("button_press_event", self._on_click)
        self.picture_events = (
            [] if self.interactive else _picture_events(self.picture, self._on_picture_event)
        )

    def _on_picture_event(self, event: dict[str, Any]) -> None:
        """A press on the JPEG picture, or a move with the button held: pick what is under it."""
        if event.get("type") == "mousemove" and not int(event.get("buttons", 0)) & 1:
            return
        try:
            x = float(event["relativeX"]) / float(event["boundingRectWidth"])
            y = float(event["relativeY"]) / float(event["boundingRectHeight"])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return  # an event without a position (or on an image not laid out yet): nothing to pick
        found = self.renderer.view_at(x, y)
        if found is not None:
            self._pick(*found)

    def _on_value(self, key: str, action: Callable[[Any], str]) -> None:
        def changed(change: dict[str, Any]) -> None:
            if change["new"] is not None:
                self._act(lambda: action(change["new"]), quiet=key != "strategy")

        self.controls[key].observe(changed, names="value")

    def _act(self, action: Callable[[], str], quiet: bool = False) -> None:
        """Run one action; a refusal puts every control back to the state and says why in one line."""
        if self._syncing:
            return
        self._erf_error = ""
        try:
            what = action()
        except RFError as err:
            self._report(str(err).splitlines()[0] if str(err) else type(err).__name__)
            self._show_controls(refill_editor=False)
            return
        except Exception as err:  # a bug: show it, restore the controls, and let it be logged
            self._report(f"{type(err).__name__}: {err}")
            self._show_controls(refill_editor=False)
            raise
        if not quiet:
            self._report(what, error=False)
        if self._erf_error:  # the action was applied, but its effective field could not be computed
            self._report(self._erf_error)

    def _on_unit(self, change: dict[str, Any]) -> None:
        unit = tuple(int(self.controls[f"unit_{a}"].value) for a in range(self.state.stack.ndim))
        self._act(lambda: self.state.set_unit(unit), quiet=True)

    def _on_log(self, change: dict[str, Any]) -> None:
        self.renderer.growth.ax.set_yscale("log" if change["new"] else "linear")
        self.renderer.render()

    def _on_upload(self, change: dict[str, Any]) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
        try:
            self._act(lambda: self.state.upload(bytes(item["content"]), str(item.get("name", "upload"))))
        finally:
            # emptied, so that choosing the same file again is a change the widget reports
            self.controls["upload"].value = ()

    def _on_click(self, event: Any) -> None:
        """An ipympl click: on the image it picks the nearest unit, on a strip cell that layer."""
        renderer = self.renderer
        if event.xdata is None or event.ydata is None:
            return
        if event.inaxes is renderer.strip.ax:
            self._pick("strip", event.xdata, event.ydata)
        elif event.inaxes is renderer.overlay.ax:
            self._pick("overlay", event.xdata, event.ydata)

    def _pick(self, view: str, x: float, y: float) -> None:
        """Pick the unit nearest to the image point ``(x, y)`` (the unit sliders' action), or the
        strip cell's layer; a point on nothing picks nothing."""
        renderer, state = self.renderer, self.state
        if view == "strip":
            name = renderer.strip.layer_at(x, y)
            if name is not None:
                self._act(lambda: state.select_layer(name), quiet=True)
        elif view == "overlay":
            unit = renderer.unit_at(state.result, state.layer, x, y)
            if unit is not None:
                self._act(lambda: state.set_unit(unit), quiet=True)

    # -- actions that read the editor -------------------------------------------------------------------

    def _apply(self) -> str:
        """Change only the fields whose text differs from the selected layer's values."""
        name = self.state.layer
        layer = self.state.stack[name]
        ndim = self.state.stack.ndim
        changes: dict[str, Any] = {}
        for key in panels.EDITOR_FIELDS:
            text = self.controls[key].value
            if text.strip() == _field_text(layer, key).strip():
                continue
            value = parse_padding(text) if key == "padding" else parse_per_axis(text, key)
            if (
                layer.kind != "window"
                or isinstance(value, str)
                or layer.padding_mode
                or _normalised(key, value, ndim, name) != getattr(layer, key)
            ):
                changes[key] = value
        return self.state.edit(name, **changes)

    def _add(self) -> str:
        kind = self.controls["new_type"].value
        name = self.controls["new_name"].value.strip() or self._fresh_name(kind)
        layer: Layer
        if kind == "elementwise":
            layer = elementwise(name)
        elif kind == "global_pool":
            layer = global_pool(name)
        else:
            texts = {k: self.controls[k].value.strip() or NEW_LAYER_DEFAULTS[k] for k in panels.EDITOR_FIELDS}
            fields = {k: parse_per_axis(texts[k], k) for k in ("kernel", "stride", "dilation")}
            make = conv if kind == "conv" else pool
            layer = make(
                name, fields["kernel"], fields["stride"], fields["dilation"], parse_padding(texts["padding"])
            )
        position = self.state.stack.names.index(self.state.layer) + 1
        return self.state.add(position, layer)

    def _fresh_name(self, kind: str) -> str:
        count = 1
        while f"{kind}{count}" in self.state.stack.index:
            count += 1
        return f"{kind}{count}"

    def _export_json(self) -> str:
        self.export_text.value = json.dumps(stack_to_dict(self.state.stack), indent=2)
        return f"'{self.state.stack.name}' as JSON is in the Export tab"

    def _export_python(self) -> str:
        self.export_text.value = editing.to_python(self.state.stack)
        return f"'{self.state.stack.name}' as Python is in the Export tab"

    def _export_preview(self) -> str:
        self._export_json()
        self.controls["tabs"].selected_index = TAB_TITLES.index("Export")
        return f"'{self.state.stack.name}' is in the Export tab"

    # -- showing the state ------------------------------------------------------------------------------

    def _report(self, text: str, error: bool = True) -> None:
        colour = "#b00020" if error else "#333"
        prefix = "Not applied: " if error else ""
        self.message.value = f'<span style="color:{colour}">{prefix}{html.escape(text)}</span>'
        if error:
            self.message.add_class("rfw-error")
        else:
            self.message.remove_class("rfw-error")

    def _show_state(self) -> None:
        """Bring every control and view up to date with the state (after each committed action)."""
        state, before = self.state, self._shown
        now = state.snapshot()
        analysis_changed = now["result"] is not before.get("result")
        self._show_controls(
            refill_editor=now["stack"] is not before.get("stack") or now["layer"] != before.get("layer")
        )
        views: tuple[str, ...] = ALL_VIEWS if analysis_changed else ("overlay",)
        if not any(now[k] != before.get(k) for k in ("result", "layer", "unit", "image")):
            views = ()
        self._shown = now
        self._request_draw(views, table=analysis_changed)

    def _request_draw(self, views: tuple[str, ...], table: bool) -> None:
        """Draw ``views`` (and the layer table) for the state: now, or coalesced with later changes.

        While the kernel handles a message from the browser (a slider moved, the picture clicked), the
        drawing waits until that handler returns; changes that arrive meanwhile are merged into it, so
        only the latest state is drawn and no stale picture is queued. Changes made by code (a cell, a
        script, a test) are drawn at once.
        """
        wanted, wants_table = self._pending_draw or ((), False)
        self._pending_draw = (tuple(v for v in ALL_VIEWS if v in views or v in wanted), wants_table or table)
        if self._draw_scheduled:
            return
        loop = _front_end_loop()
        if loop is None:
            self._draw_pending()
            return
        self._draw_scheduled = True
        loop.call_soon(self._draw_pending_reported)

    def _draw_pending(self) -> None:
        self._draw_scheduled = False
        pending, self._pending_draw = self._pending_draw, None
        if pending is None:
            return
        views, table = pending
        if views:
            self._show_overlay(views)
        if table:
            # After the picture: the table of every layer is the largest message, and the browser
            # shows what arrives first.
            self.table.value = self.state.result._repr_html_()

    def _draw_pending_reported(self) -> None:
        """:meth:`_draw_pending` outside any handler: a failure is shown in the message line and logged."""
        try:
            self._draw_pending()
        except Exception as err:
            self._report(f"{type(err).__name__}: {err}")
            logging.getLogger("rf_widgets").exception("drawing the Explorer failed")

    def _show_overlay(self, views: tuple[str, ...] = ("overlay",)) -> None:
        """Draw ``views``; with the effective field ticked, the unit's field too (computed once, cached).

        A field that cannot be computed unticks the box and says why; the state is not touched.
        """
        state, erf = self.state, None
        self._erf_error = ""
        if self.controls["erf"].value and self.effective_fields is not None:
            key = (state.layer, tuple(state.unit), tuple(state.resolution))
            erf = self.effective_fields.cached(*key)
            if state.stack is not state.original:
                # the field comes from running the model as imported, which the edited stack is not
                self._refuse_erf(
                    "no effective field for an edited stack: it is measured on the model as imported "
                    "(Undo or Reset shows it again)"
                )
                erf = None
            elif erf is None:
                self._report("computing the effective field...", error=False)
                try:
                    erf = self.effective_fields.get(*key)
                except Exception as err:  # the user's model may not run at this size or layer
                    first = str(err).splitlines()[0] if str(err) else type(err).__name__
                    self._refuse_erf(f"no effective field for {state.layer}: {first}")
                else:
                    self.message.value = ""  # the caption above the picture describes the field
        self.renderer.show(state.result, state.layer, state.unit, state.image, views, erf=erf)

    def _refuse_erf(self, why: str) -> None:
        """Untick the effective-field box and say why (the state is not touched)."""
        self._erf_error = why
        self._report(why)
        self._syncing = True
        try:
            self.controls["erf"].value = False
        finally:
            self._syncing = False

    def _show_controls(self, refill_editor: bool) -> None:
        """Set every control to what the state holds; the editor fields only when asked."""
        state, c = self.state, self.controls
        result, names = state.result, state.stack.names
        self._syncing = True
        try:
            with self.hold_sync():
                for key in ("layer", "stack"):
                    if tuple(c[key].options) != names:
                        c[key].options = names
                    c[key].value = state.layer
                show_outputs(c, result, state.layer)
                size = state.resolution[0]
                c["resolution"].max = max(c["resolution"].max, size)
                for key in ("resolution", "resolution_text"):
                    c[key].value = size
                for a, n in enumerate(result.layer(state.layer).feature_map):
                    slider = c[f"unit_{a}"]
                    # Raise max before the value and lower it after: lowering max clamps the value.
                    slider.max = max(slider.max, n - 1, 0)
                    slider.value = state.unit[a]
                    slider.max = max(n - 1, 0)
                low, high = result.resolution_range
                feasible = c["feasible"]
                if low is not None and high is not None and low <= high:
                    feasible.max = max(feasible.max, high)
                    feasible.value = (low, high)
                    feasible.description = "Feasible"
                else:
                    feasible.description = "No range"
                options = panels.image_options(state.image_name, state.image_label)
                if list(c["image"].options) != options:
                    c["image"].options = options
                c["image"].value = state.image_name
                self._show_strategies()
                c["undo"].disabled = not state.can_undo
                c["redo"].disabled = not state.can_redo
                if refill_editor:
                    layer = state.stack[state.layer]
                    for key in panels.EDITOR_FIELDS:
                        c[key].value = _field_text(layer, key)
                if result is not self._shown.get("result"):
                    self.summary.value = panels.summary_html(result)
        finally:
            self._syncing = False

    def _show_strategies(self) -> None:
        state, choice = self.state, self.controls["strategy"]
        suggestions = state.suggestions
        options = [("(original)", "")]
        if suggestions is not None:
            options += [(s.title, s.kind) for s in suggestions.applicable()]
        deeper = state.deeper_cut if suggestions is not None else None
        if deeper is not None:
            options.append((deeper.title, deeper.kind))
        if list(choice.options) != options:
            choice.options = options
        shown = state.shown_strategy()
        choice.value = shown
        if (suggestions, shown) != self._strategies_shown:
            self.controls["strategy_details"].value = panels.strategies_html(suggestions, shown, deeper)
            self._strategies_shown = (suggestions, shown)


def _front_end_loop() -> asyncio.AbstractEventLoop | None:
    """The kernel's event loop while it handles a message from the browser (``comm_msg``), else None."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    kernelbase = sys.modules.get("ipykernel.kernelbase")
    if kernelbase is None or not kernelbase.Kernel.initialized():
        return None
    try:
        parent = kernelbase.Kernel.instance().get_parent("shell")
    except Exception:  # another kernel version: draw at once, as outside a kernel
        return None
    header = parent.get("header", {}) if isinstance(parent, dict) else {}
    return loop if header.get("msg_type") == "comm_msg" else None


PICK_THROTTLE_MS = 40
"""At most one pick per this many milliseconds while dragging over the picture."""


def _picture_events(picture: widgets.Widget, callback: Callable[[dict[str, Any]], None]) -> list[Any]:
    """Browser mouse events on ``picture`` (ipyevents): a press at once, moves throttled.

    Core ipywidgets report no clicks on an ``Image``; ipyevents does, in JupyterLab, Notebook 7 and
    Voila alike. Without it installed the picture is not clickable (the unit sliders still work).
    """
    try:
        from ipyevents import Event
    except ImportError:
        return []
    press = Event(source=picture, watched_events=["mousedown"], prevent_default_action=True)
    drag = Event(
        source=picture,
        watched_events=["mousemove"],
        prevent_default_action=True,
        throttle_or_debounce="throttle",
        wait=PICK_THROTTLE_MS,
    )
    for events in (press, drag):
        events.on_dom_event(callback)
    return [press, drag]


def _field_text(layer: Layer, key: str) -> str:
    """What the editor field ``key`` shows for ``layer`` (empty for a layer without a window)."""
    if layer.kind != "window":
        return ""
    if key == "padding":
        return format_padding(layer.padding, layer.padding_mode)
    return format_per_axis(getattr(layer, key))


def _normalised(key: str, value: Any, ndim: int, name: str) -> tuple[Any, ...]:
    """A parsed field as the layer stores it: one value per axis."""
    if key == "padding":
        values: tuple[Any, ...] = padding_per_axis(value, name)
    else:
        values = ints_per_axis(value, key, name)
    return values * ndim if len(values) == 1 else values
