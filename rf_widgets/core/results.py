"""Frozen results: :class:`Analysis` (the whole network) and :class:`LayerResult` (one layer).

``repr(analysis)`` is the text report, ``analysis._repr_html_()`` the colour-coded notebook table,
``analysis.to_dict()`` the JSON document of SPEC section 9.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Any, Literal

from rf_widgets import _format
from rf_widgets.core.analysis import (
    check_requirements,
    evaluate,
    imported_diagnostics,
    normalize_resolution,
    resolution_range,
)
from rf_widgets.core.arithmetic import INF, Diagnostic, Field, Number, Resolved, unit_interval
from rf_widgets.core.graph import NETWORK_INPUT, Stack
from rf_widgets.core.layers import INPUT, Layer
from rf_widgets.core.verdicts import Verdicts
from rf_widgets.errors import GraphError, ResolutionError, RFError

__all__ = [
    "SCHEMA_VERSION",
    "STATUS_COLOURS",
    "Analysis",
    "Box",
    "LayerResult",
    "analyze_stack",
    "spatial_line",
    "summary_lines",
    "summary_rows",
]

SCHEMA_VERSION = 2
STATUS_COLOURS = {
    "productive": "#d9f2d9",
    "critical": "#fff2b3",
    "unproductive": "#f4c7c3",
    "global": "#dde3f0",
    "unknown": "#e0e0e0",
}
PerAxis = tuple[Number, ...]


@dataclass(frozen=True)
class Box:
    """The input region one unit sees along every axis: inclusive ``start``/``stop``, ``centre``.

    Coordinates are input pixels; parts below 0 or above ``size - 1`` lie in the padding.
    """

    start: PerAxis
    stop: PerAxis
    centre: PerAxis

    @property
    def size(self) -> PerAxis:
        return tuple(b - a + 1 for a, b in zip(self.start, self.stop, strict=True))

    def clipped(self, input_size: tuple[int, ...]) -> Box | None:
        """The part inside an input of ``input_size`` (None when it is all padding)."""
        start = tuple(max(0, a) for a in self.start)
        stop = tuple(min(n - 1, b) for b, n in zip(self.stop, input_size, strict=True))
        if any(a > b for a, b in zip(start, stop, strict=True)):
            return None
        return Box(start, stop, tuple((a + b) / 2 for a, b in zip(start, stop, strict=True)))


@dataclass(frozen=True)
class LayerResult:
    """Everything the analysis says about one layer; per-axis values are tuples (``inf`` = global)."""

    name: str
    module: str | None
    op: str
    inputs: tuple[str, ...]
    kernel: tuple[int, ...] | None
    stride: tuple[int, ...] | None
    dilation: tuple[int, ...] | None
    padding: tuple[tuple[int, int], ...] | None
    r_min: PerAxis
    r_max: PerAxis
    r_max_local: PerAxis | None
    jump: PerAxis | None
    offset: PerAxis | None
    feature_map: tuple[int, ...]
    status: str
    reason: str | None
    params: int
    macs: int
    spatial: bool = False
    """Whether the layer integrates a neighbourhood at this input size (SPEC section 6)."""

    @property
    def is_global(self) -> bool:
        return self.r_min[0] == INF

    def to_dict(self) -> dict[str, Any]:
        """This layer as one entry of the SPEC section 9 ``layers`` list."""
        return {
            "name": self.name,
            "module": self.module,
            "op": self.op,
            "inputs": list(self.inputs),
            "kernel": _list(self.kernel),
            "stride": _list(self.stride),
            "dilation": _list(self.dilation),
            "padding": _padding_json(self.padding),
            "r_min": _field_json(self.r_min),
            "r_max": _field_json(self.r_max),
            "r_max_local": None if self.r_max_local is None else _field_json(self.r_max_local),
            "jump": _list(self.jump),
            "effective_padding": _list(self.offset),
            "feature_map": list(self.feature_map),
            "status": self.status,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Analysis:
    """The receptive-field analysis of one network at one input size.

    Attributes are per-layer tuples in topological order; :attr:`layers` gives one
    :class:`LayerResult` per layer. :meth:`at` re-analyses the same graph at another input size without
    re-importing the model.

    Examples
    --------
    >>> import rf_widgets as rfw
    >>> stack = rfw.Stack([rfw.conv("c1", 3), rfw.conv("c2", 3)])
    >>> rfw.analyze(stack, 4).layer("c2").r_max
    (5, 5)
    """

    stack: Stack
    input_size: tuple[int, ...]
    model: str
    sizes: tuple[tuple[int, ...], ...]
    resolved: dict[int, Resolved]
    field: Field
    verdicts: Verdicts
    diagnostics: tuple[Diagnostic, ...]
    resolution_range: tuple[int | None, int | None]

    # -- access ---------------------------------------------------------------------------------------

    @cached_property
    def layers(self) -> tuple[LayerResult, ...]:
        return tuple(self._layer(i) for i in range(len(self.stack.layers)))

    def layer(self, name: str) -> LayerResult:
        """The result of the layer called ``name``."""
        return self._layer(self._index(name))

    @property
    def border_layer(self) -> str | None:
        """The first border layer in topological order (None when nothing is unproductive)."""
        border = self.verdicts.border
        return self.stack.layers[border[0]].name if border else None

    @property
    def border_layers(self) -> tuple[str, ...]:
        return tuple(self.stack.layers[i].name for i in self.verdicts.border)

    @property
    def outputs(self) -> dict[str, LayerResult]:
        """What an imported model returns, by name, each as the result of the layer that produces it.

        Names are the keys of a returned dict (``"out"``, ``"aux"``, FPN levels ``"0"``, ``"pool"``) or
        the positions in a returned tuple (``"0"``, ``"1"``; nested: ``"1.0"``); a single tensor is
        ``"output"``. Empty for a declared stack.
        """
        found = self.stack.metadata.get("outputs", ())
        named = found if isinstance(found, tuple) else ()
        # An edited stack keeps the import's metadata: an output whose layer was removed is gone.
        return {label or "output": self.layer(layer) for label, layer in named if layer in self.stack.index}

    @property
    def unproductive_layers(self) -> tuple[str, ...]:
        return tuple(self.stack.layers[i].name for i in self.verdicts.unproductive)

    def at(self, input_size: object) -> Analysis:
        """The same network analysed at another input size (no re-tracing)."""
        return analyze_stack(self.stack, input_size, self.model)

    def unit_box(
        self,
        layer: str,
        unit: int | tuple[int, ...] | None = None,
        path: Literal["max", "min", "hull"] = "max",
    ) -> Box:
        """The input region seen by ``unit`` of ``layer`` (SPEC section 2).

        ``path="max"`` follows the path with the largest field, ``"min"`` the smallest, ``"hull"`` spans
        the union of all paths (what the input gradient of the unit can reach). ``unit`` defaults to the
        centre unit of the layer's feature map.
        """
        i = self._index(layer)
        classes = self.field.classes[i]
        if not classes[0]:
            raise GraphError(f"layer '{layer}' is global: every unit sees the whole input")
        ndim = self.stack.ndim
        size = self.sizes[i]
        if unit is None:
            units = tuple(max(n - 1, 0) // 2 for n in size)
        elif isinstance(unit, int):
            units = (unit,) * ndim
        else:
            units = tuple(unit)
        if len(units) != ndim or any(
            not isinstance(u, int) or u < 0 or (n > 0 and u >= n) for u, n in zip(units, size, strict=True)
        ):
            raise ResolutionError(
                f"unit {unit!r} is outside the {'x'.join(map(str, size))} feature map of layer '{layer}'"
            )
        if path not in ("max", "min", "hull"):
            raise RFError(f"path must be 'max', 'min' or 'hull', got {path!r}")
        start, stop = [], []
        for axis, u in zip(classes, units, strict=True):
            low, high = unit_interval(axis, u, path)
            start.append(low)
            stop.append(high)
        return Box(
            tuple(_plain(v) for v in start),
            tuple(_plain(v) for v in stop),
            tuple(_plain(Fraction(a + b) / 2) for a, b in zip(start, stop, strict=True)),
        )

    def _index(self, name: str) -> int:
        try:
            return self.stack.index[name]
        except KeyError:
            raise GraphError(f"no layer named '{name}' in '{self.model}'") from None

    def _same_padding(self, i: int, layer: Layer) -> tuple[tuple[int, int], ...]:
        """The padding a "same" window uses at this input size (it depends on the input's size)."""
        from rf_widgets.core.layers import same_padding

        ins = [self.input_size if j == NETWORK_INPUT else self.sizes[j] for j in self.stack.input_indices[i]]
        k_eff = layer.kernel_effective
        return tuple(
            same_padding(
                max(s[a] for s in ins), k_eff[a], layer.stride[a], layer.padding_mode or "same_upper"
            )
            for a in range(self.stack.ndim)
        )

    def _layer(self, i: int) -> LayerResult:
        layer = self.stack.layers[i]
        field = self.field
        is_window = layer.kind == "window"
        kernel, stride = self._window(i)
        padding = layer.padding if is_window else None
        if is_window and layer.padding_mode and self.resolved.get(i) is not None:
            padding = self._same_padding(i, layer)
        return LayerResult(
            name=layer.name,
            module=layer.module,
            op=layer.op,
            inputs=tuple(
                INPUT if j == NETWORK_INPUT else self.stack.layers[j].name
                for j in self.stack.input_indices[i]
            ),
            kernel=kernel,
            stride=stride,
            dilation=layer.dilation if is_window else None,
            padding=padding,
            r_min=tuple(_plain(v) for v in field.r_min[i]),
            r_max=tuple(_plain(v) for v in field.r_max[i]),
            r_max_local=_maybe(field.r_max_local[i]),
            jump=_maybe(field.jump[i]),
            offset=_maybe(field.offset[i]),
            feature_map=self.sizes[i],
            status=self.verdicts.status[i],
            reason=self.verdicts.reason[i],
            params=layer.params,
            macs=self._layer_macs[i],
            spatial=self.verdicts.spatial[i],
        )

    def _window(self, i: int) -> tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]:
        """The kernel and stride layer ``i`` applies at this size (None for a layer without a window)."""
        layer = self.stack.layers[i]
        resolved = self.resolved.get(i)
        is_window = layer.kind == "window"
        if is_window and layer.padding_mode and resolved is not None:
            return layer.kernel, layer.stride  # SAME padding: resolved holds the padding, not a window
        if resolved is not None and resolved[0] in ("window", "phased"):
            # adaptive pools and resampling: the window the arithmetic uses at this size (for a
            # resampling layer the widest number of input units one output unit reads, and its jump)
            return tuple(_plain(k) for k in resolved[1]), tuple(_plain(s) for s in resolved[2])
        return (layer.kernel, layer.stride) if is_window else (None, None)

    @cached_property
    def _layer_macs(self) -> list[int]:
        return self.stack.macs(self.sizes, self.input_size)

    # -- summaries ------------------------------------------------------------------------------------

    @property
    def spatial_layers(self) -> tuple[str, ...]:
        """The layers that integrate a neighbourhood (``k_eff > 1`` on some axis) at this input size."""
        return tuple(
            layer.name for layer, s in zip(self.stack.layers, self.verdicts.spatial, strict=True) if s
        )

    @property
    def counts(self) -> dict[str, int]:
        """How many layers have each status."""
        out = dict.fromkeys(STATUS_COLOURS, 0)
        for status in self.verdicts.status:
            out[status] += 1
        return out

    def unproductive_share(self) -> dict[str, float | None]:
        """Share of layers, parameters and multiply-adds that sit in unproductive layers."""
        layers = self.stack.layers
        bad = set(self.verdicts.unproductive)
        params = sum(layer.params for layer in layers)
        macs = self._layer_macs
        total_macs = sum(macs)
        return {
            "layers": len(bad) / len(layers),
            "params": sum(layers[i].params for i in bad) / params if params else None,
            "macs": sum(macs[i] for i in bad) / total_macs if total_macs else None,
        }

    def summary(self) -> str:
        """The border layer, how much is unproductive (layers, parameters, multiply-adds), the range."""
        return "\n".join(summary_lines(self))

    # -- export ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The SPEC section 9 document (``schema_version`` 2: verdicts of SPEC section 6 version 2)."""
        low, high = self.resolution_range
        return {
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "input_size": list(self.input_size),
            "layers": [layer.to_dict() for layer in self.layers],
            "border_layer": self.border_layer,
            "border_layers": list(self.border_layers),
            "unproductive_layers": list(self.unproductive_layers),
            "resolution_range": {"min": low, "max": high},
            "diagnostics": [d.to_dict() for d in self.diagnostics],
            "outputs": [{"name": name, "layer": layer.name} for name, layer in self.outputs.items()],
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text, one line per layer and per diagnostic."""
        document = self.to_dict()
        lines = []
        for key, value in document.items():
            if key in ("layers", "diagnostics") and value:
                items = ",\n".join("    " + json.dumps(item) for item in value)
                lines.append(f'  "{key}": [\n{items}\n  ]')
            else:
                lines.append(f"  {json.dumps(key)}: {json.dumps(value)}")
        return "{\n" + ",\n".join(lines) + "\n}"

    def to_pandas(self) -> Any:
        """One row per layer (requires pandas)."""
        try:
            import pandas as pd
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("to_pandas() needs pandas: pip install pandas") from err
        rows = []
        for layer in self.layers:
            row = layer.to_dict()
            row["spatial"] = layer.spatial
            row["params"] = layer.params
            row["macs"] = layer.macs
            rows.append(row)
        return pd.DataFrame(rows).set_index("name")

    # -- display --------------------------------------------------------------------------------------

    _COLUMNS = ("layer", "op", "kernel", "stride", "r_min", "r_max", "jump", "map", "status")

    def _rows(self) -> list[tuple[str, ...]]:
        # Straight from the stack, field and verdicts (not through :attr:`layers`): the Explorer redraws
        # this table on every size change, and a network has up to a thousand layers.
        field, verdicts = self.field, self.verdicts
        border = self.border_layer if verdicts.border else None
        shown: dict[object, str] = {}

        def axes(values: tuple[Any, ...] | None) -> str:
            text = shown.get(values)
            if text is None:
                text = shown[values] = _axes(values)
            return text

        rows: list[tuple[str, ...]] = []
        for i, layer in enumerate(self.stack.layers):
            reason = verdicts.reason[i]
            status = verdicts.status[i] + (f" ({reason})" if reason else "")
            if layer.name == border:
                status += " [border]"
            kernel, stride = self._window(i)
            jump = field.jump[i]
            rows.append(
                (
                    layer.name,
                    layer.op,
                    axes(kernel),
                    axes(stride),
                    axes(field.r_min[i]),
                    axes(field.r_max[i]),
                    axes(jump),
                    axes(self.sizes[i]),
                    status,
                )
            )
        return rows

    def table(self) -> str:
        """The per-layer text table."""
        rows = [self._COLUMNS, *self._rows()]
        widths = [max(len(row[c]) for row in rows) for c in range(len(self._COLUMNS))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __repr__(self) -> str:
        text = self.table() + "\n\n" + self.summary()
        if self.diagnostics:
            text += "\n" + "\n".join(f"note: {d.message}" for d in self.diagnostics[:20])
            if len(self.diagnostics) > 20:
                text += f"\n... and {len(self.diagnostics) - 20} more notes"
        return text

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{c}</th>" for c in self._COLUMNS)
        body = []
        border = self.border_layer
        for status, row in zip(self.verdicts.status, self._rows(), strict=True):
            style = f"background:{STATUS_COLOURS[status]}"
            if row[0] == border:
                style += ";font-weight:bold;border-top:2px solid #b00;border-bottom:2px solid #b00"
            cells = "".join(f"<td>{html.escape(cell)}</td>" for cell in row)
            body.append(f'<tr style="{style}" data-status="{status}">{cells}</tr>')
        summary = "<br>".join(html.escape(line) for line in self.summary().splitlines())
        legend = " ".join(
            f'<span style="background:{colour};padding:0 4px">{status}</span>'
            for status, colour in STATUS_COLOURS.items()
        )
        notes = "".join(f"<li>{html.escape(d.message)}</li>" for d in self.diagnostics[:50])
        return (
            f'<div class="rfw-analysis"><p>{summary}</p><p>{legend}</p>'
            f'<table class="rfw-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            + (
                f"<details><summary>{len(self.diagnostics)} notes</summary><ul>{notes}</ul></details>"
                if notes
                else ""
            )
            + "</div>"
        )


def _plain(value: Number | float) -> Any:
    """Ints stay ints, whole fractions become ints, other fractions floats; inf stays inf."""
    if isinstance(value, Fraction):
        return value.numerator if value.denominator == 1 else float(value)
    return value


def _maybe(values: tuple[Number, ...] | None) -> tuple[Any, ...] | None:
    return None if values is None else tuple(_plain(v) for v in values)


def _list(values: tuple[Any, ...] | None) -> list[Any] | None:
    return None if values is None else list(values)


def _field_json(values: tuple[Any, ...]) -> list[Any] | str:
    return "inf" if any(v == INF for v in values) else list(values)


def _padding_json(padding: tuple[tuple[int, int], ...] | None) -> list[Any] | None:
    if padding is None:
        return None
    if all(lo == hi for lo, hi in padding):
        return [lo for lo, _ in padding]
    return [[lo, hi] for lo, hi in padding]


def _axes(values: tuple[Any, ...] | None) -> str:
    return _format.per_axis(values)


def analyze_stack(stack: Stack, input_size: object, model: str | None = None) -> Analysis:
    """Analyse a :class:`Stack` at ``input_size`` and return an :class:`~rf_widgets.core.results.Analysis`."""
    resolution = normalize_resolution(input_size, stack.ndim)
    found = evaluate(stack, resolution)
    check_requirements(stack, found.sizes, resolution)
    return Analysis(
        stack=stack,
        input_size=resolution,
        model=model or stack.name,
        sizes=tuple(found.sizes),
        resolved=found.resolved,
        field=found.field,
        verdicts=found.verdicts,
        diagnostics=imported_diagnostics(stack) + found.field.diagnostics + tuple(found.diagnostics),
        resolution_range=resolution_range(stack, found.field),
    )


# -- the summary, as text and as rows ------------------------------------------------------------------


def spatial_line(result: Analysis) -> str:
    """``7 of 18 convolutions and pools (17 of 69 layers)``: how much of the network is unproductive."""
    spatial = sum(result.verdicts.spatial)
    bad_spatial = sum(1 for i in result.verdicts.unproductive if result.verdicts.spatial[i])
    return (
        f"{bad_spatial} of {spatial} convolutions and pools "
        f"({len(result.verdicts.unproductive)} of {len(result.stack.layers)} layers)"
    )


def _unknown(result: Analysis) -> list[str]:
    names = result.stack.names
    return [names[i] for i, status in enumerate(result.verdicts.status) if status == "unknown"]


def summary_rows(result: Analysis) -> list[tuple[str, str]]:
    """The verdict summary as (label, value) rows, as the Explorer shows it."""
    share = result.unproductive_share()
    here = _format.size(result.input_size)
    rows = [
        ("Input", here),
        ("Border layer", result.border_layer or "none"),
        ("Unproductive", spatial_line(result)),
    ]
    if share["params"] is not None:
        rows.append(("Parameters in unproductive layers", _format.percent(share["params"])))
    if share["macs"] is not None:
        rows.append((f"Multiply-adds in unproductive layers at {here}", _format.percent(share["macs"])))
    rows.append(("Feasible input resolutions", _format.feasible_range(*result.resolution_range)))
    if len(result.border_layers) > 1:
        rows.append(("All border layers", ", ".join(result.border_layers)))
    unknown = _unknown(result)
    if unknown:
        rows.append(("Unknown operations (values after them are lower bounds)", ", ".join(unknown)))
    if _exported(result):
        rows.append(("Traced with", EXPORT_NOTE))
    return rows


def summary_lines(result: Analysis) -> list[str]:
    """The same summary as text lines (``repr`` of an analysis, the CLI, ``%rfa``)."""
    share = result.unproductive_share()
    cost = [
        f"{_format.percent(value)} of the {label}"
        for value, label in ((share["params"], "parameters"), (share["macs"], "multiply-adds at this size"))
        if value is not None
    ]
    lines = [
        f"{result.model} at {_format.size(result.input_size)}: border layer {result.border_layer or 'none'}",
        f"unproductive: {spatial_line(result)}" + "".join(f", {c}" for c in cost),
        f"feasible input resolutions: {_format.feasible_range(*result.resolution_range)}",
    ]
    if len(result.border_layers) > 1:
        lines.append(f"all border layers: {', '.join(result.border_layers)}")
    unknown = _unknown(result)
    if unknown:
        lines.append(f"unknown operations (values after them are lower bounds): {', '.join(unknown)}")
    if _exported(result):
        lines.append(f"traced with {EXPORT_NOTE}")
    return lines


EXPORT_NOTE = "torch.export (torch.fx could not trace the model; see the 'traced-with-export' diagnostic)"


def _exported(result: Analysis) -> bool:
    """Whether the torch importer read the graph through torch.export (its second tracer)."""
    return result.stack.metadata.get("tracer") == "torch.export"
