"""The Explorer's controls, one builder per tab, and the HTML of its summary and strategy panels.

Builders only create widgets and name them; :mod:`rf_widgets.widgets.explorer` wires them to the
state. Every control keeps the name it had in the first Explorer (``controls["resolution"]`` ...).
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from rf_widgets.core import results
from rf_widgets.core.results import Analysis
from rf_widgets.data import SAMPLE_IMAGES
from rf_widgets.strategies import Suggestions
from rf_widgets.widgets.state import MAX_INPUT_SIZE

__all__ = [
    "NEW_LAYER_TYPES",
    "TAB_TITLES",
    "export_panel",
    "image_options",
    "image_panel",
    "stack_panel",
    "strategies_html",
    "strategy_panel",
    "summary_html",
    "summary_rows",
    "view_panel",
]

NEW_LAYER_TYPES = ("conv", "pool", "elementwise", "global_pool")
TAB_TITLES = ("Resolution and unit", "Layer stack", "Strategies", "Image", "Export")
EDITOR_FIELDS = ("kernel", "stride", "dilation", "padding")
EDIT_BUTTONS = {
    "apply": ("Apply to layer", "change the fields that differ from the selected layer"),
    "bypass": ("Bypass", "make the layer an identity"),
    "add": ("Add after", "insert a new layer (type, name and the fields) after the selected one"),
    "remove": ("Remove", ""),
    "up": ("Move up", ""),
    "down": ("Move down", ""),
    "undo": ("Undo", ""),
    "redo": ("Redo", ""),
    "reset": ("Reset", "back to the original stack (Undo reverts it)"),
}
STRUCTURAL = ("add", "remove", "up", "down")
SLIDER_TOP = 512
SLIDER_WIDTH = "720px"  # a track of about 590 px for sizes 1 to 512


def view_panel(
    controls: dict[str, widgets.Widget], ndim: int, size: int, has_weights: bool = False
) -> widgets.Widget:
    """Input size (slider + number), the feasible range, the layer, one slider per unit axis, the ERF."""
    # About one size per pixel of track: a drag lands on the size under the mouse. Larger sizes are
    # typed into the number box, which raises the slider's end.
    top = max(SLIDER_TOP, 2 * size)
    resolution = widgets.IntSlider(
        value=size,
        min=1,
        max=top,
        description="Input size",
        continuous_update=True,
        layout=widgets.Layout(width=SLIDER_WIDTH),
    ).add_class("rfw-resolution")
    # Both drive the state (the Explorer wires them); it sets both back, so they always agree.
    number = widgets.BoundedIntText(
        value=size, min=1, max=MAX_INPUT_SIZE, layout=widgets.Layout(width="90px")
    ).add_class("rfw-resolution-text")
    feasible = widgets.IntRangeSlider(
        value=(1, 1),
        min=1,
        max=top,
        description="Feasible",
        disabled=True,
        layout=widgets.Layout(width=SLIDER_WIDTH),
    ).add_class("rfw-feasible")
    layer = widgets.Dropdown(options=(), description="Layer").add_class("rfw-layer")
    units = [
        widgets.IntSlider(
            value=0, min=0, max=0, description=f"Unit ({'hwd'[a] if ndim <= 3 else a})"
        ).add_class(f"rfw-unit-{a}")
        for a in range(ndim)
    ]
    log = widgets.Checkbox(value=False, description="log scale")
    erf = widgets.Checkbox(
        value=False,
        description="effective field",
        disabled=not has_weights,
        tooltip=(
            "Show the gradient-based effective field of the unit over the image"
            if has_weights
            else "Needs a torch model: a declared stack has no weights to run"
        ),
    ).add_class("rfw-erf")
    controls.update(
        resolution=resolution, resolution_text=number, feasible=feasible, layer=layer, log=log, erf=erf
    )
    controls.update({f"unit_{a}": slider for a, slider in enumerate(units)})
    return widgets.VBox(
        [
            widgets.HBox([resolution, number]),
            feasible,
            widgets.HBox([layer, log]),
            widgets.HBox([*units, erf]),
        ]
    )


def stack_panel(controls: dict[str, widgets.Widget], fixed_graph: bool) -> widgets.Widget:
    """The layer list, the editor fields (showing the selected layer) and the edit buttons."""
    names = widgets.Select(options=(), rows=8, description="Layers")
    kind = widgets.Dropdown(options=NEW_LAYER_TYPES, value="conv", description="Type")
    new_name = widgets.Text(description="Name", placeholder="new layer name")
    fields = {key: widgets.Text(description=key.capitalize()) for key in EDITOR_FIELDS}
    buttons = {
        key: widgets.Button(description=text, tooltip=tip) for key, (text, tip) in EDIT_BUTTONS.items()
    }
    controls.update(stack=names, new_type=kind, new_name=new_name, **fields, **buttons)
    if fixed_graph:  # a traced model keeps its graph: override or bypass layers only
        for key in STRUCTURAL:
            buttons[key].disabled = True
            buttons[key].tooltip = "a torch model's graph is fixed; override or bypass a layer instead"
    order = ("apply", "bypass", *STRUCTURAL, "undo", "redo", "reset")
    return widgets.HBox(
        [
            names,
            widgets.VBox([kind, new_name, *fields.values()]),
            widgets.VBox([buttons[key] for key in order]),
        ]
    )


def strategy_panel(controls: dict[str, widgets.Widget]) -> widgets.Widget:
    """Suggest, the preview choice, the description of each strategy, and the export of a preview."""
    find = widgets.Button(
        description="Suggest", tooltip="design strategies for the shown stack at the shown input size"
    ).add_class("rfw-suggest")
    choice = widgets.Dropdown(options=[("(original)", "")], value="", description="Preview")
    choice.add_class("rfw-strategy")
    details = widgets.HTML().add_class("rfw-strategy-details")
    export = widgets.Button(description="Export preview", tooltip="the previewed stack as JSON")
    controls.update(suggest=find, strategy=choice, strategy_details=details, strategy_export=export)
    return widgets.VBox([widgets.HBox([find, choice, export]), details])


def image_options(image_name: str, image_label: str) -> list[str] | list[tuple[str, str]]:
    """The sample dropdown's options: the samples, plus the shown image when it is not one of them."""
    names = ["none", *SAMPLE_IMAGES]
    if image_name in names:
        return names
    return [*((name, name) for name in names), (f"({image_label})", image_name)]


def image_panel(controls: dict[str, widgets.Widget]) -> widgets.Widget:
    """The sample choice and the upload button."""
    choice = widgets.Dropdown(options=image_options("none", "none"), value="none", description="Sample")
    upload = widgets.FileUpload(accept="image/png,image/jpeg", multiple=False, description="Upload")
    controls.update(image=choice, upload=upload)
    return widgets.HBox([choice, upload])


def export_panel(controls: dict[str, widgets.Widget]) -> widgets.Widget:
    """Buttons that write the shown stack as JSON or Python into a text area."""
    as_json = widgets.Button(description="Stack as JSON")
    as_python = widgets.Button(description="Stack as Python")
    text = widgets.Textarea(layout=widgets.Layout(width="100%", height="180px"))
    controls.update(export_json=as_json, export_python=as_python, export_text=text)
    return widgets.VBox([widgets.HBox([as_json, as_python]), text])


def summary_rows(result: Analysis) -> list[tuple[str, str]]:
    """The summary as (label, plain text) rows: the model, then the rows every view shares."""
    return [("Model", result.model), *results.summary_rows(result)]


def summary_html(result: Analysis) -> str:
    """:func:`summary_rows` as an HTML table."""
    cells = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in summary_rows(result)
    )
    return f"<table class='rfw-summary-table'>{cells}</table>"


def strategies_html(suggestions: Suggestions | None, chosen: str | None = "", deeper: Any = None) -> str:
    """Each strategy's description; the one previewed in bold.

    A trim that keeps the border layer says why; ``deeper`` (a
    :class:`~rf_widgets.widgets.trim_why.DeeperCut`) is the cut before it, offered as its own preview.
    """
    from rf_widgets.widgets.trim_why import border_kept_because

    if suggestions is None:
        return ""
    items = []
    for s in suggestions:
        text = s.describe()
        if s.kind == "trim" and s.applicable:
            why = border_kept_because(s.before, s)
            if why is not None:
                text += f"\n  why: {why}"
                text += f"; see '{deeper.title}' below" if deeper is not None else ""
        items.append(_pre(text, bold=s.kind == chosen))
    if deeper is not None:
        items.append(_pre(deeper.describe(), bold=deeper.kind == chosen))
    return "".join(items)


def _pre(text: str, bold: bool) -> str:
    style = "font-weight:bold" if bold else ""
    return f"<pre style='white-space:pre-wrap;margin:2px 0;{style}'>{html.escape(text)}</pre>"
