"""The rule table lives in :mod:`rf_widgets.rules` (it needs no torch); this name stays for imports."""

from rf_widgets.rules import (
    Rule,
    RuleTable,
    Unsupported,
    active_tables,
    builtin_rules,
    iter_module_types,
    lookup_chain,
)

__all__ = [
    "Rule",
    "RuleTable",
    "Unsupported",
    "active_tables",
    "builtin_rules",
    "iter_module_types",
    "lookup_chain",
]
