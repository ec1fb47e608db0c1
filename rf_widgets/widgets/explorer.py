"""The Explorer: change the input resolution or the layer stack and see the verdicts and fields at once.

Built from core ipywidgets only, so it renders in JupyterLab, Notebook 7, Voila and VS Code. The
widget only wires: the arithmetic lives in :mod:`rf_widgets.core`, the edits in
:mod:`rf_widgets.editing`, the drawing in :mod:`rf_widgets.plotting`. All views share one matplotlib
figure rendered to JPEG bytes in an ``Image`` widget (no layout shift while dragging).
"""

from __future__ import annotations

import functools
import html
import io
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from rf_widgets import editing
from rf_widgets._api import to_stack
from rf_widgets.core.analysis import analyze_stack
from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import Layer, conv, elementwise, global_pool, pool
from rf_widgets.core.results import Analysis
from rf_widgets.data import SAMPLE_IMAGES, load_image, sample_image
from rf_widgets.errors import RFError
from rf_widgets.plotting import describe_unit, draw_unit_field, plot_architecture, plot_growth
from rf_widgets.stackfile import stack_to_dict
from rf_widgets.strategies import Suggestions
from rf_widgets.widgets.parsing import format_padding, format_per_axis, parse_padding, parse_per_axis

__all__ = ["Explorer", "explore"]

NEW_LAYER_TYPES = ("conv", "pool", "elementwise", "global_pool")
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_LABELLED_CELLS = 60
ALL_VIEWS = ("growth", "strip", "overlay")
TAB_TITLES = ("Resolution and unit", "Layer stack", "Strategies", "Image", "Export")


def explore(model: Any, image: Any = None, input_size: int = 224, **kwargs: Any) -> Explorer:
    """Open the :class:`Explorer` on ``model`` (a torch module, a Stack, a list of layers or a spec)."""
    return Explorer(model, image=image, input_size=input_size, **kwargs)


def _guarded(method: Callable[..., None]) -> Callable[..., None]:
    """Show any error raised in a callback in the widget instead of losing it in a log."""

    @functools.wraps(method)
    def wrapper(self: Explorer, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except RFError as err:
            self._report(str(err))
        except Exception as err:  # a callback must never fail silently
            self._report(f"{type(err).__name__}: {err}")
            raise

    return wrapper


def _ipympl_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ipympl") is not None


def _interactive_canvas(figure: Figure) -> Any:
    """An ipympl canvas widget for ``figure`` (no pyplot, no global figure registry)."""
    from ipympl.backend_nbagg import Canvas, FigureManager

    canvas = Canvas(figure)
    FigureManager(canvas, 0)
    canvas.header_visible = False
    return canvas


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
        The initial input resolution.
    interactive
        Show the figure as an ipympl canvas (needs ipympl): zoom, pan, and a click on the image picks
        the nearest unit, a click on a strip cell picks that layer. It redraws the whole figure on
        every change; the default JPEG picture redraws only what changed.
    name
        What the summary calls the model (default: its class name, or the spec string).

    Attributes
    ----------
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
    'c1'
    """

    def __init__(
        self,
        model: Any,
        image: Any = None,
        input_size: int | tuple[int, ...] = 224,
        *,
        interactive: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        stack = to_stack(model)
        if name:
            stack = stack.replace(stack.layers, name=name)
        self.is_torch = "import_method" in stack.metadata
        self._model = model
        self._original = stack
        self.suggestions: Suggestions | None = None
        self._suggested_from = 0  # history length when the suggestions were made
        self._suggested_for: Stack | None = None  # the stack they were made for
        self._previewing: Stack | None = None  # the suggestion's stack now shown, if any
        self._history: list[Stack] = [stack]
        size = input_size if isinstance(input_size, int) else int(next(iter(input_size)))
        self.result: Analysis = analyze_stack(stack, size, stack.name)
        self._image = self._resolve_image(image)
        self.figure = Figure(figsize=(11, 7), dpi=80, layout="constrained")
        if interactive and not _ipympl_available():
            raise RFError("interactive=True needs ipympl: pip install ipympl")
        self.interactive = interactive
        canvas = _interactive_canvas(self.figure) if self.interactive else FigureCanvasAgg(self.figure)
        canvas.mpl_connect("button_press_event", self._on_click)
        self._build_views()
        self.controls: dict[str, widgets.Widget] = {}
        self.summary = widgets.HTML().add_class("rfw-summary")
        self.message = widgets.HTML().add_class("rfw-message")
        self.table = widgets.HTML(layout=widgets.Layout(max_height="320px", overflow="auto"))
        # Without ipympl the figure travels as JPEG bytes in an Image widget; with it, the canvas itself
        # is the widget (zoom, pan, and clicks that pick a unit or a layer).
        self.caption = widgets.HTML().add_class("rfw-caption")
        self.picture = (
            self.figure.canvas
            if self.interactive
            else widgets.Image(format="jpeg", layout=widgets.Layout(width="100%"))
        )
        self.export_text = widgets.Textarea(layout=widgets.Layout(width="100%", height="180px"))
        self.children = self._layout()
        self._background: Any = None
        self._background_key: tuple[Any, ...] = ()
        self._regions: dict[str, tuple[int, int, int, int]] = {}
        self._refresh(centre_unit=True)

    # -- building ---------------------------------------------------------------------------------------

    def _build_views(self) -> None:
        grid = self.figure.add_gridspec(2, 2, height_ratios=(3, 1.2), width_ratios=(1.3, 1))
        self._growth = plot_growth(self.result, ax=self.figure.add_subplot(grid[0, 0]))
        layer = self._default_layer(self.result)
        self._overlay = draw_unit_field(
            self.result, layer, None, self._image, ax=self.figure.add_subplot(grid[0, 1])
        )
        self._strip = plot_architecture(self.result, ax=self.figure.add_subplot(grid[1, :]))
        overlay = self._overlay.ax
        # The overlay's limits follow the input size and the boxes; without ticks, and with square
        # limits (the plotting module keeps them square), its frame stays the same in the background.
        overlay.xaxis.set_major_locator(NullLocator())
        overlay.yaxis.set_major_locator(NullLocator())
        # The titles change with every control; as HTML above the picture they cost nothing to draw
        # (a line of text is the most expensive artist to render on each update).
        for view in (self._growth, self._overlay, self._strip):
            view.ax.title.set_visible(False)

    def _layout(self) -> tuple[widgets.Widget, ...]:
        panels = [
            self._view_panel(),
            self._stack_panel(),
            self._strategy_panel(),
            self._image_panel(),
            self._export_panel(),
        ]
        tabs = widgets.Tab(children=panels)
        for i, title in enumerate(TAB_TITLES):
            tabs.set_title(i, title)
        self.controls["tabs"] = tabs
        return (self.summary, tabs, self.message, self.caption, self.picture, self.table)

    def _view_panel(self) -> widgets.Widget:
        size = self.result.input_size[0]
        top = max(1024, 2 * size)
        resolution = widgets.IntSlider(
            value=size,
            min=1,
            max=top,
            description="Input size",
            continuous_update=True,
            layout=widgets.Layout(width="520px"),
        ).add_class("rfw-resolution")
        number = widgets.BoundedIntText(value=size, min=1, max=top, layout=widgets.Layout(width="90px"))
        widgets.link((resolution, "value"), (number, "value"))  # kernel-side: setting either from code works
        feasible = widgets.IntRangeSlider(
            value=(1, 1),
            min=1,
            max=top,
            description="Feasible",
            disabled=True,
            layout=widgets.Layout(width="520px"),
        ).add_class("rfw-feasible")
        layer = widgets.Dropdown(
            options=self.result.stack.names, value=self._overlay_layer(), description="Layer"
        )
        units = [
            widgets.IntSlider(
                value=0, min=0, max=0, description=f"Unit ({'hwd'[a] if self.result.stack.ndim <= 3 else a})"
            )
            for a in range(self.result.stack.ndim)
        ]
        log = widgets.Checkbox(value=False, description="log scale")
        self.controls.update(
            resolution=resolution, resolution_text=number, feasible=feasible, layer=layer, log=log
        )
        for a, slider in enumerate(units):
            self.controls[f"unit_{a}"] = slider
            slider.observe(self._on_unit, names="value")
        resolution.observe(self._on_resolution, names="value")
        layer.observe(self._on_layer, names="value")
        log.observe(self._on_log, names="value")
        return widgets.VBox(
            [widgets.HBox([resolution, number]), feasible, widgets.HBox([layer, log]), widgets.HBox(units)]
        )

    def _stack_panel(self) -> widgets.Widget:
        names = widgets.Select(options=self.result.stack.names, rows=8, description="Layers")
        kind = widgets.Dropdown(options=NEW_LAYER_TYPES, value="conv", description="Type")
        new_name = widgets.Text(description="Name", placeholder="new layer name")
        kernel = widgets.Text(value="3", description="Kernel")
        stride = widgets.Text(value="1", description="Stride")
        dilation = widgets.Text(value="1", description="Dilation")
        padding = widgets.Text(value="0", description="Padding")
        buttons = {
            "apply": widgets.Button(
                description="Apply to layer", tooltip="set kernel/stride/dilation/padding"
            ),
            "bypass": widgets.Button(description="Bypass", tooltip="make the layer an identity"),
            "add": widgets.Button(
                description="Add after", tooltip="insert a new layer after the selected one"
            ),
            "remove": widgets.Button(description="Remove"),
            "up": widgets.Button(description="Move up"),
            "down": widgets.Button(description="Move down"),
            "undo": widgets.Button(description="Undo"),
            "reset": widgets.Button(description="Reset"),
        }
        self.controls.update(
            stack=names,
            new_type=kind,
            new_name=new_name,
            kernel=kernel,
            stride=stride,
            dilation=dilation,
            padding=padding,
        )
        for key, button in buttons.items():
            self.controls[key] = button
            button.on_click(getattr(self, f"_on_{key}"))
        names.observe(self._on_stack_select, names="value")
        structural = [buttons["add"], buttons["remove"], buttons["up"], buttons["down"]]
        if self.is_torch:  # a traced model keeps its graph: override or bypass layers only
            for button in structural:
                button.disabled = True
                button.tooltip = "a torch model's graph is fixed; override or bypass a layer instead"
        return widgets.HBox(
            [
                names,
                widgets.VBox([kind, new_name, kernel, stride, dilation, padding]),
                widgets.VBox(
                    [buttons["apply"], buttons["bypass"], *structural, buttons["undo"], buttons["reset"]]
                ),
            ]
        )

    def _strategy_panel(self) -> widgets.Widget:
        find = widgets.Button(
            description="Suggest", tooltip="design strategies for the shown stack at the shown input size"
        ).add_class("rfw-suggest")
        choice = widgets.Dropdown(options=[("(original)", "")], value="", description="Preview")
        choice.add_class("rfw-strategy")
        details = widgets.HTML().add_class("rfw-strategy-details")
        export = widgets.Button(description="Export preview", tooltip="the previewed stack as JSON")
        self.controls.update(suggest=find, strategy=choice, strategy_details=details, strategy_export=export)
        find.on_click(self._on_suggest)
        choice.observe(self._on_strategy, names="value")
        export.on_click(self._on_strategy_export)
        return widgets.VBox([widgets.HBox([find, choice, export]), details])

    def _image_panel(self) -> widgets.Widget:
        choice = widgets.Dropdown(
            options=("none", *SAMPLE_IMAGES), value=self._image_name, description="Sample"
        )
        upload = widgets.FileUpload(accept="image/png,image/jpeg", multiple=False, description="Upload")
        self.controls.update(image=choice, upload=upload)
        choice.observe(self._on_image, names="value")
        upload.observe(self._on_upload, names="value")
        return widgets.HBox([choice, upload])

    def _export_panel(self) -> widgets.Widget:
        as_json = widgets.Button(description="Stack as JSON")
        as_python = widgets.Button(description="Stack as Python")
        self.controls.update(export_json=as_json, export_python=as_python, export_text=self.export_text)
        as_json.on_click(self._on_export_json)
        as_python.on_click(self._on_export_python)
        return widgets.VBox([widgets.HBox([as_json, as_python]), self.export_text])

    # -- state ------------------------------------------------------------------------------------------

    @property
    def stack(self) -> Stack:
        """The layer stack shown now (after the user's edits)."""
        return self._history[-1]

    def _resolve_image(self, image: Any) -> np.ndarray | None:
        if image is None or (isinstance(image, str) and image == "none"):
            self._image_name = "none"
            return None
        if isinstance(image, str):
            self._image_name = image
            return sample_image(image)
        self._image_name = "none"
        return np.asarray(image)

    def _default_layer(self, result: Analysis) -> str:
        local = [layer.name for layer in result.layers if not layer.is_global]
        if result.border_layer:
            return result.border_layer
        return local[-1] if local else result.layers[0].name

    def _overlay_layer(self) -> str:
        return getattr(self, "_layer", None) or self._default_layer(self.result)

    def _unit(self) -> tuple[int, ...]:
        return tuple(int(self.controls[f"unit_{a}"].value) for a in range(self.stack.ndim))

    # -- callbacks --------------------------------------------------------------------------------------

    @_guarded
    def _on_resolution(self, change: dict[str, Any]) -> None:
        self.result = analyze_stack(self.stack, int(change["new"]), self.stack.name)
        self._refresh()

    @_guarded
    def _on_layer(self, change: dict[str, Any]) -> None:
        self._layer = change["new"]
        self._refresh(views_only=True, centre_unit=True)

    @_guarded
    def _on_unit(self, change: dict[str, Any]) -> None:
        if not getattr(self, "_quiet", False):
            self._refresh(views_only=True)

    @_guarded
    def _on_log(self, change: dict[str, Any]) -> None:
        self._growth.ax.set_yscale("log" if change["new"] else "linear")
        self._render()

    @_guarded
    def _on_stack_select(self, change: dict[str, Any]) -> None:
        name = change["new"]
        if not name:
            return
        layer = self.stack[name]
        with self.hold_sync():
            self.controls["kernel"].value = format_per_axis(layer.kernel)
            self.controls["stride"].value = format_per_axis(layer.stride)
            self.controls["dilation"].value = format_per_axis(layer.dilation)
            self.controls["padding"].value = format_padding(layer.padding)
            self.controls["layer"].value = name

    def _selected(self) -> str:
        name = self.controls["stack"].value
        if not name:
            raise RFError("select a layer in the list first")
        return str(name)

    def _window_fields(self) -> dict[str, Any]:
        return {
            "kernel": parse_per_axis(self.controls["kernel"].value, "kernel"),
            "stride": parse_per_axis(self.controls["stride"].value, "stride"),
            "dilation": parse_per_axis(self.controls["dilation"].value, "dilation"),
            "padding": parse_padding(self.controls["padding"].value),
        }

    @_guarded
    def _on_apply(self, _: Any = None) -> None:
        name = self._selected()
        self._commit(editing.change_layer(self.stack, name, **self._window_fields()), f"changed '{name}'")

    @_guarded
    def _on_bypass(self, _: Any = None) -> None:
        name = self._selected()
        self._commit(editing.bypass_layer(self.stack, name), f"bypassed '{name}'")

    @_guarded
    def _on_add(self, _: Any = None) -> None:
        after = self.controls["stack"].value
        position = self.stack.names.index(after) + 1 if after else len(self.stack.layers)
        layer = self._new_layer()
        self._commit(editing.insert_layer(self.stack, position, layer), f"added '{layer.name}'")

    def _new_layer(self) -> Layer:
        name = self.controls["new_name"].value.strip() or self._fresh_name(self.controls["new_type"].value)
        kind = self.controls["new_type"].value
        if kind == "elementwise":
            return elementwise(name)
        if kind == "global_pool":
            return global_pool(name)
        fields = self._window_fields()
        make = conv if kind == "conv" else pool
        return make(name, fields["kernel"], fields["stride"], fields["dilation"], fields["padding"])

    def _fresh_name(self, kind: str) -> str:
        count = 1
        while f"{kind}{count}" in self.stack.index:
            count += 1
        return f"{kind}{count}"

    @_guarded
    def _on_remove(self, _: Any = None) -> None:
        name = self._selected()
        self._commit(editing.remove_layer(self.stack, name), f"removed '{name}'")

    @_guarded
    def _on_up(self, _: Any = None) -> None:
        name = self._selected()
        self._commit(editing.move_layer(self.stack, name, -1), f"moved '{name}' up", select=name)

    @_guarded
    def _on_down(self, _: Any = None) -> None:
        name = self._selected()
        self._commit(editing.move_layer(self.stack, name, 1), f"moved '{name}' down", select=name)

    @_guarded
    def _on_undo(self, _: Any = None) -> None:
        if len(self._history) == 1:
            raise RFError("nothing to undo")
        self._history.pop()
        self._after_edit("undone")

    @_guarded
    def _on_reset(self, _: Any = None) -> None:
        self._history = [self._original]
        self._after_edit("reset to the original stack")

    @_guarded
    def _on_suggest(self, _: Any = None) -> None:
        from rf_widgets.strategies import suggest

        size = self.result.input_size
        # The torch model itself gives the full prediction (new head, exact parameters); once the stack
        # was edited here, the strategies work on the edited stack.
        source = self._model if self.stack is self._original else self.stack
        self.suggestions = suggest(source, size, name=self.stack.name)
        self._suggested_from = len(self._history)
        self._suggested_for = self.stack
        self._previewing = None
        options = [("(original)", "")] + [(s.title, s.kind) for s in self.suggestions.applicable()]
        with self.hold_sync():
            self.controls["strategy"].options = options
            self.controls["strategy"].value = ""
        self.controls["strategy_details"].value = self._strategies_html(self.suggestions)
        found = len(self.suggestions.applicable())
        self._report(f"{found} strategies apply at {'x'.join(map(str, size))}", error=False)

    def _strategies_html(self, suggestions: Suggestions, chosen: str = "") -> str:
        items = []
        for s in suggestions:
            text = html.escape(s.describe())
            style = "font-weight:bold" if s.kind == chosen else ""
            items.append(f"<pre style='white-space:pre-wrap;margin:2px 0;{style}'>{text}</pre>")
        return "".join(items)

    @_guarded
    def _on_strategy(self, change: dict[str, Any]) -> None:
        if self.suggestions is None:
            return
        kind = change["new"]
        base = self._suggested_from
        previews = self._history[base:]
        if (
            self._history[base - 1] is not self._suggested_for
            or len(previews) > 1
            or (previews and previews[0] is not self._previewing)
        ):
            raise RFError("the stack changed since the strategies were suggested; press Suggest again")
        # Each preview starts from the stack the suggestions were made for, at the size they were made for.
        del self._history[base:]
        self._previewing = None
        self.controls["strategy_details"].value = self._strategies_html(self.suggestions, kind)
        suggestion = self.suggestions[kind] if kind else None
        if suggestion is None or suggestion.kind == "resolution":
            what = (
                "the stack the strategies were suggested for" if suggestion is None else suggestion.changes[0]
            )
            self._after_edit(f"showing {what}" if suggestion is None else f"previewing: {what}")
        else:
            assert suggestion.stack is not None
            self._previewing = suggestion.stack
            self._commit(
                suggestion.stack, f"previewing: {suggestion.title.lower()} (Undo or Reset to go back)"
            )
        target = suggestion.new_input_size if suggestion else self.suggestions[0].input_size
        self.controls["resolution"].value = target[0]

    @_guarded
    def _on_strategy_export(self, _: Any = None) -> None:
        self._on_export_json()
        self.controls["tabs"].selected_index = TAB_TITLES.index("Export")
        self._report(f"'{self.stack.name}' is in the Export tab", error=False)

    @_guarded
    def _on_image(self, change: dict[str, Any]) -> None:
        self._image = self._resolve_image(change["new"])
        self._overlay.set_image(self._image)
        self._render(("overlay",))

    @_guarded
    def _on_upload(self, change: dict[str, Any]) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
        content = bytes(item["content"])
        name = item.get("name", "upload")
        if len(content) > MAX_UPLOAD_BYTES:
            raise RFError(
                f"'{name}' is {len(content) / 2**20:.1f} MiB; "
                f"images up to {MAX_UPLOAD_BYTES // 2**20} MiB are accepted"
            )
        try:
            image = load_image(content)
        except RFError as err:
            raise RFError(f"'{name}': {err}; the previous image is kept") from None
        self._image = image
        self._image_name = "none"
        self._overlay.set_image(image)
        self._report(f"showing '{name}' ({image.shape[1]}x{image.shape[0]})", error=False)
        self._render(("overlay",))

    @_guarded
    def _on_export_json(self, _: Any = None) -> None:
        import json

        self.export_text.value = json.dumps(stack_to_dict(self.stack), indent=2)

    @_guarded
    def _on_export_python(self, _: Any = None) -> None:
        self.export_text.value = editing.to_python(self.stack)

    # -- updates ----------------------------------------------------------------------------------------

    def _commit(self, stack: Stack, what: str, select: str | None = None) -> None:
        """Show an edited stack; an edit that raised never gets here, so the old stack stays."""
        self._history.append(stack)
        self._after_edit(what, select)

    def _after_edit(self, what: str, select: str | None = None) -> None:
        self.result = analyze_stack(self.stack, self.result.input_size[0], self.stack.name)
        names = self.stack.names
        with self.hold_sync():
            current = self.controls["stack"].value
            self.controls["stack"].options = names
            self.controls["stack"].value = (
                select if select in names else (current if current in names else None)
            )
            layer = self._overlay_layer()
            self.controls["layer"].options = names
            self._layer = layer if layer in names else self._default_layer(self.result)
            self.controls["layer"].value = self._layer
        self._refresh(centre_unit=True)
        self._report(what, error=False)

    def _report(self, text: str, error: bool = True) -> None:
        colour = "#b00020" if error else "#333"
        prefix = "Not applied: " if error else ""
        self.message.value = f'<span style="color:{colour}">{prefix}{html.escape(text)}</span>'
        if error:
            self.message.add_class("rfw-error")
        else:
            self.message.remove_class("rfw-error")

    def _refresh(self, views_only: bool = False, centre_unit: bool = False) -> None:
        """Push ``self.result`` to every view and control, then draw once."""
        result = self.result
        layer = self._overlay_layer()
        if layer not in result.stack.index:
            layer = self._default_layer(result)
        self._layer = layer
        size = result.layer(layer).feature_map
        self._quiet = True
        try:
            with self.hold_sync():
                for a, n in enumerate(size):
                    slider, top = self.controls[f"unit_{a}"], max(n - 1, 0)
                    # Decide before touching max: lowering max clamps the value to the new edge.
                    if centre_unit or slider.value > top:
                        slider.max = max(slider.max, top)
                        slider.value = top // 2
                    slider.max = top
                if not views_only:
                    low, high = result.resolution_range
                    feasible = self.controls["feasible"]
                    if low is not None and high is not None and low <= high:
                        feasible.value = (min(low, feasible.max), min(high, feasible.max))
                        feasible.description = "Feasible"
                    else:
                        feasible.description = "No range"
                    self.summary.value = self._summary_html(result)
                    self.table.value = result._repr_html_()
        finally:
            self._quiet = False
        if not views_only:
            self._growth.update(result)
            self._strip.update(result)
        unit = None if result.layer(layer).is_global or 0 in size else self._unit()
        self._overlay.update(result, layer, unit)
        self.caption.value = "<b>Field of one unit:</b> " + html.escape(
            describe_unit(result, layer, unit)
        ).replace("\n", "; ")
        self._render(("overlay",) if views_only else ALL_VIEWS)

    def _dynamic_artists(self) -> dict[str, list[Any]]:
        """Per view, the artists an update may change; the rest is drawn once into a background."""
        growth = self._growth.artists
        names = (
            *("unproductive", "band", "resolution", "resolution_label", "r_max", "r_min"),
            *("critical", "global", "border", "border_label", "note"),
        )
        strip = self._strip
        labels = list(strip.artists["labels"].values())
        if len(strip.cells) > MAX_LABELLED_CELLS:
            # Cell labels of a big network are unreadable at this size and cost a glyph pass each.
            for label in labels:
                label.set_visible(False)
        overlay = self._overlay.artists
        found = {
            "growth": [*(growth[k] for k in names), self._growth.ax.title],
            "strip": [strip.artists["cell_patches"], *labels, strip.artists["border_label"], strip.ax.title],
            "overlay": [
                overlay[k]
                for k in ("padding", "image", "frame", "r_max", "r_min", "centres", "unit", "title")
            ],
        }
        return {view: sorted(artists, key=lambda a: a.get_zorder()) for view, artists in found.items()}

    def _static_key(self) -> tuple[Any, ...]:
        """What the cached background shows; when it changes the whole figure is drawn again."""
        growth, strip = self._growth.ax, self._strip.ax
        return (
            growth.get_xlim(),
            growth.get_ylim(),
            growth.get_yscale(),
            strip.get_xlim(),
            strip.get_ylim(),
            self._growth.layer_names,
            self._growth.artists["band_label"].get_text(),
            tuple(len(v) for v in self._dynamic_artists().values()),
        )

    @_guarded
    def _on_click(self, event: Any) -> None:
        """A click on the image picks the nearest unit; a click on a strip cell picks that layer."""
        if event.inaxes is self._strip.ax:
            name = self._strip.layer_at(event.xdata, event.ydata)
            if name is not None:
                self.controls["layer"].value = name
        elif event.inaxes is self._overlay.ax and event.xdata is not None:
            layer = self.result.layer(self._overlay_layer())
            if layer.is_global or layer.jump is None or layer.offset is None:
                return
            point = (event.ydata, event.xdata)  # rows are the first axis
            with self.hold_sync():
                for a, (position, jump, offset, r) in enumerate(
                    zip(point, layer.jump, layer.offset, layer.r_max, strict=False)
                ):
                    # Invert SPEC section 2: the centre of unit u is u*J - P + (r - 1)/2.
                    unit = round((position + offset - (r - 1) / 2) / jump)
                    slider = self.controls[f"unit_{a}"]
                    slider.value = min(max(unit, slider.min), slider.max)

    def _render(self, views: tuple[str, ...] = ALL_VIEWS) -> None:
        """Draw the changed views and send the figure as JPEG (steady in the browser, small on the wire).

        The parts that no control changes (axes, ticks, legends, edges) are drawn once into a cached
        background; an update restores the region of each changed view and draws only its changing
        artists on top (blitting), so moving a unit does not redraw the whole network.
        """
        from PIL import Image

        canvas = self.figure.canvas
        if self.interactive:
            canvas.draw_idle()  # ipympl draws and sends the whole frame itself
            return
        dynamic = self._dynamic_artists()
        key = self._static_key()
        if self._background is None or key != self._background_key:
            for artist in (a for artists in dynamic.values() for a in artists):
                artist.set_animated(True)
            canvas.draw()
            if self.figure.get_layout_engine() is not None:
                # Laid out on the first draw, then kept: solving the layout again on every update
                # would cost more than drawing, and a fixed layout does not jump while dragging.
                self.figure.set_layout_engine("none")
            self._background = canvas.copy_from_bbox(self.figure.bbox)  # type: ignore[attr-defined]
            self._background_key = self._static_key()
            self._regions = self._view_regions(canvas.get_renderer())  # type: ignore[attr-defined]
            views = ALL_VIEWS
        for region in {self._regions[view] for view in views}:
            # xy places the saved figure-sized region itself, so its origin restores it in place.
            canvas.restore_region(self._background, bbox=region, xy=(0, 0))  # type: ignore[attr-defined]
        for view in views:
            for artist in dynamic[view]:
                artist.set_animated(True)
                if artist.get_visible():
                    self.figure.draw_artist(artist)
        width, height = canvas.get_width_height()
        frame = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)  # type: ignore[attr-defined]
        buffer = io.BytesIO()
        frame.convert("RGB").save(buffer, format="JPEG", quality=85)
        picture = self.picture
        assert isinstance(picture, widgets.Image)  # the non-interactive picture
        picture.value = buffer.getvalue()

    def _view_regions(self, renderer: Any) -> dict[str, tuple[int, int, int, int]]:
        """The pixel box of each view, in Agg's buffer coordinates (origin top left).

        The figure is cut halfway between the top row and the strip, and the top row halfway between
        the growth plot's legend and the overlay. The overlay's title is clipped to its box, so each
        view's changing artists stay inside its own box.
        """
        from matplotlib.transforms import Bbox

        width, height = self.figure.canvas.get_width_height()
        growth = self._growth.ax.get_tightbbox(renderer)
        overlay, strip = (ax.get_window_extent(renderer) for ax in (self._overlay.ax, self._strip.ax))
        legend = self._growth.artists["legend"].get_window_extent(renderer)
        ylabel = self._overlay.ax.yaxis.label.get_window_extent(renderer)
        split_x = int((max(legend.x1, growth.x1 if growth is not None else 0) + ylabel.x0) / 2)
        split_y = int((strip.y1 + min(self._growth.ax.get_window_extent(renderer).y0, overlay.y0)) / 2)
        title = self._overlay.artists["title"]
        title.set_clip_box(Bbox.from_extents(split_x, split_y, width, height))  # display coordinates
        title.set_clip_on(True)
        top = height - split_y
        return {
            "growth": (0, 0, split_x, top),
            "overlay": (split_x, 0, width, top),
            "strip": (0, top, width, height),
        }

    def _summary_html(self, result: Analysis) -> str:
        counts = result.counts
        share = result.unproductive_share()
        low, high = result.resolution_range
        rows = [
            ("Model", html.escape(result.model)),
            ("Input", "x".join(map(str, result.input_size))),
            ("Border layer", html.escape(result.border_layer or "none")),
            (
                "Unproductive layers",
                f"{counts['unproductive']} of {len(result.layers)} ({share['layers']:.0%})",
            ),
        ]
        if share["params"] is not None:
            rows.append(("Parameters in unproductive layers", f"{share['params']:.1%}"))
        if share["macs"] is not None:
            rows.append(("Multiply-adds in unproductive layers", f"{share['macs']:.1%}"))
        rows.append(
            (
                "Feasible input sizes",
                f"{low if low is not None else '?'} to {high if high is not None else 'unbounded'}",
            )
        )
        if counts["unknown"]:
            rows.append(("Unknown operations", f"{counts['unknown']} (values after them are lower bounds)"))
        cells = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in rows)
        return f"<table class='rfw-summary-table'>{cells}</table>"
