"""The joined result of :func:`~rf_widgets.evidence.measure`: prediction and measurements per layer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from rf_widgets.errors import DataError

__all__ = ["EVIDENCE_SCHEMA", "EvidenceResult", "LayerEvidence"]

EVIDENCE_SCHEMA = 1


@dataclass(frozen=True)
class LayerEvidence:
    """One measured layer: its receptive field and verdict beside its saturation and probe accuracy.

    ``r_min``/``r_max`` are per axis, or ``"inf"`` for a global layer, as in the analysis JSON;
    ``probe_test`` and ``saturation`` are None when that measurement was not made.
    """

    name: str
    r_min: tuple[Any, ...] | str | None
    r_max: tuple[Any, ...] | str | None
    feature_map: tuple[int, ...] | None
    status: str | None
    channels: int | None
    saturation: float | None
    rank_limited: bool
    probe_train: float | None
    probe_test: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "r_min": list(self.r_min) if isinstance(self.r_min, tuple) else self.r_min,
            "r_max": list(self.r_max) if isinstance(self.r_max, tuple) else self.r_max,
            "feature_map": list(self.feature_map) if self.feature_map is not None else None,
            "status": self.status,
            "channels": self.channels,
            "saturation": self.saturation,
            "rank_limited": self.rank_limited,
            "probe_train": self.probe_train,
            "probe_test": self.probe_test,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> LayerEvidence:
        def axes(value: Any) -> Any:
            return tuple(value) if isinstance(value, list) else value

        return cls(
            name=doc["name"],
            r_min=axes(doc.get("r_min")),
            r_max=axes(doc.get("r_max")),
            feature_map=axes(doc.get("feature_map")),
            status=doc.get("status"),
            channels=doc.get("channels"),
            saturation=doc.get("saturation"),
            rank_limited=bool(doc.get("rank_limited", False)),
            probe_train=doc.get("probe_train"),
            probe_test=doc.get("probe_test"),
        )


@dataclass(frozen=True)
class EvidenceResult:
    """Prediction (receptive fields, verdicts, border layer) and measurements of one trained model.

    Build it with :func:`~rf_widgets.evidence.measure`, save it with :meth:`to_json`, read it back with
    :meth:`from_json` (no torch needed) and draw it with :func:`~rf_widgets.evidence.plot_evidence`.
    ``meta`` holds what the caller wants to keep beside it (training recipe, timings, data set).
    """

    model: str
    input_size: tuple[int, ...]
    layers: tuple[LayerEvidence, ...]
    model_accuracy: float | None
    border_layer: str | None
    unproductive_layers: tuple[str, ...]
    analysis: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def layer(self, name: str) -> LayerEvidence:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise DataError(f"no measured layer named '{name}' in this result")

    def curves(self) -> dict[str, dict[str, float | None]]:
        """Per layer name: saturation and probe test accuracy (what a growth plot overlays)."""
        return {
            layer.name: {"saturation": layer.saturation, "probe": layer.probe_test} for layer in self.layers
        }

    def with_analysis(self, analysis: Any) -> EvidenceResult:
        """The same measurements joined with another analysis (e.g. after the verdict rules changed)."""
        return replace(self, **_analysis_fields(analysis, [layer.name for layer in self.layers], self))

    def to_dict(self) -> dict[str, Any]:
        return {
            "evidence_schema": EVIDENCE_SCHEMA,
            "model": self.model,
            "input_size": list(self.input_size),
            "model_accuracy": self.model_accuracy,
            "border_layer": self.border_layer,
            "unproductive_layers": list(self.unproductive_layers),
            "layers": [layer.to_dict() for layer in self.layers],
            "meta": self.meta,
            "analysis": self.analysis,
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON (one line per measured layer)."""
        doc = self.to_dict()
        layers = ",\n".join("    " + json.dumps(layer) for layer in doc.pop("layers"))
        analysis = doc.pop("analysis")
        head = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items())
        return (
            "{\n" + head + f',\n  "layers": [\n{layers}\n  ],\n  "analysis": {json.dumps(analysis)}\n' + "}\n"
        )

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> EvidenceResult:
        if doc.get("evidence_schema") != EVIDENCE_SCHEMA:
            raise DataError(
                f"not an rf_widgets evidence document (evidence_schema {doc.get('evidence_schema')!r}, "
                f"expected {EVIDENCE_SCHEMA})"
            )
        return cls(
            model=doc["model"],
            input_size=tuple(doc["input_size"]),
            layers=tuple(LayerEvidence.from_dict(layer) for layer in doc["layers"]),
            model_accuracy=doc.get("model_accuracy"),
            border_layer=doc.get("border_layer"),
            unproductive_layers=tuple(doc.get("unproductive_layers", ())),
            analysis=doc.get("analysis"),
            meta=dict(doc.get("meta") or {}),
        )

    @classmethod
    def from_json(cls, text: str) -> EvidenceResult:
        return cls.from_dict(json.loads(text))

    def summary(self) -> str:
        size = "x".join(map(str, self.input_size))
        accuracy = f"{self.model_accuracy:.3f}" if self.model_accuracy is not None else "not measured"
        return (
            f"{self.model} at {size}: test accuracy {accuracy}, border layer {self.border_layer or 'none'}, "
            f"{len(self.layers)} layers measured"
        )

    def table(self) -> str:
        rows = [("layer", "r_min", "map", "status", "saturation", "probe")]
        for layer in self.layers:
            r = layer.r_min
            r_text = r if isinstance(r, str) else ("x".join(map(str, r)) if r else "?")
            sat = (
                "-"
                if layer.saturation is None
                else f"{layer.saturation:.3f}" + ("*" if layer.rank_limited else "")
            )
            probe = "-" if layer.probe_test is None else f"{layer.probe_test:.3f}"
            fmap = "x".join(map(str, layer.feature_map)) if layer.feature_map else "?"
            rows.append((layer.name, r_text, fmap, layer.status or "?", sat, probe))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
        )

    def __repr__(self) -> str:
        return self.summary() + "\n" + self.table()


def _analysis_fields(analysis: Any, names: list[str], previous: EvidenceResult | None) -> dict[str, Any]:
    """The fields of an :class:`EvidenceResult` that come from an :class:`~rf_widgets.Analysis`."""
    known = {layer.name: layer for layer in analysis.layers}
    layers = []
    for i, name in enumerate(names):
        old = previous.layers[i] if previous is not None else None
        lr = known.get(name)
        layers.append(
            replace(
                old if old is not None else _empty(name),
                r_min=_axes(lr.r_min) if lr else None,
                r_max=_axes(lr.r_max) if lr else None,
                feature_map=tuple(lr.feature_map) if lr else None,
                status=lr.status if lr else None,
            )
        )
    return {
        "layers": tuple(layers),
        "border_layer": analysis.border_layer,
        "unproductive_layers": tuple(analysis.unproductive_layers),
        "analysis": analysis.to_dict(),
    }


def _axes(values: tuple[Any, ...]) -> tuple[Any, ...] | str:
    if any(v == float("inf") for v in values):
        return "inf"
    return tuple(int(v) if float(v).is_integer() else float(v) for v in values)


def _empty(name: str) -> LayerEvidence:
    return LayerEvidence(name, None, None, None, None, None, None, False, None, None)
