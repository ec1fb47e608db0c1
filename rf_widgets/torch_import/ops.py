"""The built-in torch rules, in one place for :func:`rf_widgets.rules.builtin_rules`."""

from __future__ import annotations

from rf_widgets.rules import RuleTable
from rf_widgets.torch_import import ops_layers, ops_layout, ops_merge, ops_timm, ops_windows


def register(table: RuleTable) -> None:
    for part in (ops_layers, ops_layout, ops_merge, ops_windows, ops_timm):
        part.register(table)
