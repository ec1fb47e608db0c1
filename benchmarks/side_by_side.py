#!/usr/bin/env python3
"""The verdicts of rf_widgets beside rfa-toolbox 1.7.0 on the models docs/semantics.md tabulates.

Setup (see compare_rfa_toolbox.py) and usage, from the repository root::

    .venv/bin/pip install --no-deps --ignore-requires-python rfa-toolbox==1.7.0 attrs graphviz
    .venv/bin/python benchmarks/side_by_side.py

For each model and input size it prints, for both tools: the unproductive layers (rfa-toolbox:
``obtain_border_layers(graph, R, filter_dense=True)``, which returns what SPEC section 6 calls unproductive
layers), the first of them, and the smallest square input with none (for the toolbox found by scanning
``obtain_border_layers`` over R on the same graph; its own ``input_resolution_range`` is printed too).
rf_widgets adds its border layer (the start of the unproductive tail) and its unproductive spatial layers.
"""

from __future__ import annotations

import collections
import collections.abc
import os

collections.Sequence = collections.abc.Sequence  # type: ignore[attr-defined]  # rfa-toolbox 1.7.0 needs it
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torchvision  # noqa: E402
from rfa_toolbox import create_graph_from_pytorch_model  # noqa: E402
from rfa_toolbox.utils.graph_utils import input_resolution_range, obtain_border_layers  # noqa: E402

import rf_widgets as rfw  # noqa: E402

CASES = [("resnet18", 32), ("vgg16", 32), ("efficientnet_b0", 224)]


def toolbox_first_clean(graph, start: int) -> int:  # type: ignore[no-untyped-def]
    side = start
    while obtain_border_layers(graph, input_resolution=side, filter_dense=True):
        side += 1
    while side > 1 and not obtain_border_layers(graph, input_resolution=side - 1, filter_dense=True):
        side -= 1
    return side


def main() -> None:
    for name, size in CASES:
        model = torchvision.models.get_model(name).eval()
        ours = rfw.analyze(model, size, name=name)
        graph = create_graph_from_pytorch_model(model, input_res=(1, 3, size, size))
        flagged = obtain_border_layers(graph, input_resolution=size, filter_dense=True)
        names = [f"{node.name} ({node.layer_info.name})" for node in flagged]
        spatial_bad = [n for n in ours.unproductive_layers if ours.layer(n).spatial]
        spatial = sum(ours.verdicts.spatial)
        print(f"== {name} at {size}")
        print(
            f"rfa-toolbox 1.7.0: {len(flagged)} unproductive layers, first {names[0] if names else None}; "
            f"no unproductive layer from {toolbox_first_clean(graph, size)}; "
            f"input_resolution_range {input_resolution_range(graph)}"
        )
        print(f"  flagged: {', '.join(names)}")
        print(
            f"rf_widgets: border layer {ours.border_layer}; {len(spatial_bad)} of {spatial} "
            f"convolutions and pools unproductive ({len(ours.unproductive_layers)} of {len(ours.layers)} "
            f"layers); feasible {ours.resolution_range}"
        )
        print(f"  unproductive: {', '.join(ours.unproductive_layers)}")


if __name__ == "__main__":
    main()
