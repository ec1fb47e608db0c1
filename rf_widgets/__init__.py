"""rf_widgets: receptive field analysis of convolutional networks.

``analyze(model_or_stack, input_size)`` returns an :class:`Analysis`: per-layer receptive fields (min and
max over all paths, per axis), feature-map sizes, the paper's verdicts (unproductive, critical, border
layer) and the feasible input resolutions. Importing this package loads neither torch, matplotlib nor
ipywidgets; they are imported when a torch model is analysed or a view is drawn.

Examples
--------
>>> import rf_widgets as rfw
>>> stack = rfw.Stack([rfw.conv("c1", 3, stride=2), rfw.conv("c2", 3), rfw.global_pool("gap")])
>>> rfw.analyze(stack, 5).border_layer  # c2's 3x3 kernel covers c1's 2x2 map
'c2'
"""

from rf_widgets._api import analyze, load_stack
from rf_widgets.core.arithmetic import Diagnostic
from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import (
    INPUT,
    Layer,
    adaptive_pool,
    add,
    concat,
    conv,
    conv_transpose,
    elementwise,
    flatten,
    global_pool,
    mul,
    pool,
    unknown,
    upsample,
)
from rf_widgets.core.results import Analysis, Box, LayerResult
from rf_widgets.errors import (
    GraphError,
    LayerSpecError,
    ModelImportError,
    ResolutionError,
    RFError,
    StackFileError,
)
from rf_widgets.rules import RuleTable

__all__ = [
    "INPUT",
    "Analysis",
    "Box",
    "Diagnostic",
    "GraphError",
    "Layer",
    "LayerResult",
    "LayerSpecError",
    "ModelImportError",
    "RFError",
    "ResolutionError",
    "RuleTable",
    "Stack",
    "StackFileError",
    "Suggestion",
    "Suggestions",
    "adaptive_pool",
    "add",
    "analyze",
    "concat",
    "conv",
    "conv_transpose",
    "elementwise",
    "flatten",
    "global_pool",
    "load_stack",
    "mul",
    "pool",
    "suggest",
    "unknown",
    "upsample",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """The design strategies and the evidence tools (torch) load on first use."""
    if name == "evidence":
        import importlib

        return importlib.import_module("rf_widgets.evidence")
    if name in ("suggest", "Suggestion", "Suggestions"):
        from rf_widgets import strategies

        return getattr(strategies, name)
    raise AttributeError(f"module 'rf_widgets' has no attribute {name!r}")


def explore(
    model: object,
    image: object = None,
    input_size: int | tuple[int, ...] = 224,
    *,
    interactive: bool = False,
    name: str | None = None,
    evidence: object = None,
) -> object:
    """Open the interactive Explorer on ``model`` (imports ipywidgets and matplotlib on first use).

    ``interactive=True`` shows the figure as an ipympl canvas (zoom, pan, click to pick); ``name`` is
    what the summary calls the model (default: its class name or spec); ``evidence`` (an
    ``rf_widgets.evidence.EvidenceResult``) adds its saturation and probe curves to the growth plot.
    """
    from rf_widgets.widgets.explorer import explore as open_explorer

    return open_explorer(
        model, image=image, input_size=input_size, evidence=evidence, interactive=interactive, name=name
    )


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext rf_widgets``: adds the ``%rfa MODEL --resolution N`` magic."""
    from rf_widgets.widgets.magic import register

    register(ipython)
