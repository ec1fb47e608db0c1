"""The Explorer's output picker: choose one output of a dense model and look at a unit on it.

A segmentation model returns ``out`` and ``aux``, a detection backbone one map per FPN level, a
declared U-Net its last decoder layer. Picking an output selects the layer that produces it; the unit
sliders then move over that output's map and the overlay draws the chosen unit's exact box (phase-aware
after upsampling, see :meth:`~rf_widgets.core.results.Analysis.unit_box`). A classifier, whose only
output is global, gets no picker: its Explorer is unchanged.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from rf_widgets import _format
from rf_widgets.core.results import Analysis

__all__ = ["add_output_picker", "describe_output", "output_choices", "show_outputs"]


def output_choices(result: Analysis) -> list[tuple[str, str]]:
    """``(label, layer)`` for every output the picker offers; empty when no output is a map.

    An imported model offers what it returns (:attr:`Analysis.outputs`); a declared stack its sinks,
    the layers no other layer reads. Outputs that are global along every path (a classifier's logits)
    have no unit to look at and are left out.

    Examples
    --------
    >>> import rf_widgets as rfw
    >>> unet = rfw.Stack([rfw.conv("enc", 3), rfw.pool("down", 2), rfw.conv_transpose("up", 2, stride=2)])
    >>> output_choices(rfw.analyze(unet, 16))
    [('up', 'up')]
    >>> output_choices(rfw.analyze([rfw.conv("c", 3), rfw.global_pool("gap")], 16))
    []
    """
    named = [(label, layer.name) for label, layer in result.outputs.items()]
    if not named:
        stack = result.stack
        named = [
            (layer.name, layer.name)
            for layer, after in zip(stack.layers, stack.successors, strict=True)
            if not after
        ]
    return [(label, name) for label, name in named if not result.layer(name).is_global]


def describe_output(result: Analysis, label: str, layer: str) -> str:
    """One line on an output: its layer, map and jump, and what a global branch adds.

    Examples
    --------
    >>> import rf_widgets as rfw
    >>> print(describe_output(rfw.analyze([rfw.conv("c", 3, stride=2)], 9), "c", "c"))
    output 'c': map 4x4, jump 2, r_max 3
    """
    info = result.layer(layer)
    named = f"output '{label}'" + (f" = layer '{layer}'" if label != layer else "")
    text = (
        f"{named}: map {_format.size(info.feature_map)}, jump {_format.per_axis(info.jump)}, "
        f"r_max {_format.per_axis(info.r_max)}"
    )
    if info.r_max_local is not None and info.r_max_local != info.r_max:
        # DeepLab's ASPP and LRASPP pool the whole map in one branch (and MobileNetV3's SE blocks
        # gate channels by global means): the gradient of any unit reaches every input pixel.
        text += (
            f"; a global branch lets every unit see the whole input, the boxes show its local paths "
            f"(r_max_local {_format.per_axis(info.r_max_local)})"
        )
    return text


def add_output_picker(controls: dict[str, widgets.Widget], panel: widgets.Box, result: Analysis) -> None:
    """Add ``controls["output"]`` (a dropdown of layer names) and ``controls["output_info"]`` to ``panel``.

    Both are hidden while :func:`output_choices` is empty (a classifier).
    """
    picker = widgets.Dropdown(options=(), value=None, description="Output").add_class("rfw-output")
    info = widgets.HTML().add_class("rfw-output-info")
    controls.update(output=picker, output_info=info)
    panel.children = (*panel.children, widgets.HBox([picker, info]))
    show_outputs(controls, result, "")


def show_outputs(controls: dict[str, widgets.Widget], result: Analysis, layer: str) -> None:
    """Bring the picker up to date: its options, and the output of ``layer`` (None when it is none)."""
    picker, info = controls["output"], controls["output_info"]
    choices = output_choices(result)
    options = [(label if label == name else f"{label} ({name})", name) for label, name in choices]
    if tuple(picker.options) != tuple(options):
        picker.options = options
    chosen = next(((label, name) for label, name in choices if name == layer), None)
    picker.value = None if chosen is None else chosen[1]
    text = "" if chosen is None else describe_output(result, *chosen)
    info.value = html.escape(text)
    display = None if choices else "none"
    for control in (picker, info):
        if control.layout.display != display:
            control.layout.display = display
