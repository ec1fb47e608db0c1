"""The import rule table: user rules through the public API, scoping, and errors that name the node."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch.nn as nn  # noqa: E402

import rf_widgets as rfw  # noqa: E402
from rf_widgets.errors import (  # noqa: E402
    LayerSpecError,
    RuleFailureWarning,
    UnknownOperationWarning,
)
from rf_widgets.torch_import.rules import Unsupported, active_tables, builtin_rules  # noqa: E402


class Blur(nn.Module):
    """A made-up module the built-in rules do not know."""

    def forward(self, x):
        return x * 1.0


def _model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 3, 3), Blur(), nn.Conv2d(3, 3, 1))


def test_a_rule_for_a_made_up_module_is_three_lines():
    table = rfw.RuleTable()
    table.module(Blur, lambda call: call.window(kernel=5, padding=2))
    result = rfw.analyze(_model(), 32, rules=table)
    assert result.layer("1").r_max == (7, 7)  # 3 + (5 - 1)
    assert result.layer("1").kernel == (5, 5)
    assert result.layer("1").status == "productive"


def test_a_rule_leaves_no_trace_after_the_call():
    table = rfw.RuleTable()
    table.module(Blur, lambda call: call.window(kernel=5, padding=2))
    rfw.analyze(_model(), 32, rules=table)
    assert Blur not in builtin_rules()
    assert active_tables() == ()
    again = rfw.analyze(_model(), 32)  # without the rule Blur is traced through: only its mul remains
    assert "1" not in again.stack.names
    assert again.layer("1.mul").r_max == (3, 3)


def test_a_with_block_scopes_the_rules():
    table = rfw.RuleTable()
    table.module(Blur, lambda call: call.window(kernel=3, padding=1))
    with table:
        assert active_tables() == (table,)
        inside = rfw.analyze(_model(), 32)
    assert inside.layer("1").r_max == (5, 5)
    assert active_tables() == ()


def test_an_explicit_table_wins_over_an_active_one_and_over_the_builtins():
    outer = rfw.RuleTable()
    outer.module(Blur, lambda call: call.window(kernel=3, padding=1))
    explicit = rfw.RuleTable()
    explicit.module(Blur, lambda call: call.window(kernel=7, padding=3))
    explicit.module(nn.Conv2d, lambda call: call.window(kernel=1))  # overrides the built-in conv rule
    with outer:
        result = rfw.analyze(_model(), 32, rules=explicit)
    assert result.layer("0").r_max == (1, 1)
    assert result.layer("1").r_max == (7, 7)


def test_function_and_method_rules_and_layer_fields():
    class Model(nn.Module):
        def forward(self, x):
            return torch.special.erf(x).cumsum(2)

    table = rfw.RuleTable()
    table.function(torch.special.erf, lambda call: call.pointwise())
    # a rule may return Layer fields; the cumulative sum along axis 0 sees every earlier row
    table.method("cumsum", lambda call: {"kind": "global"})
    result = rfw.analyze(Model(), 16, rules=table)
    assert [layer.op for layer in result.layers] == ["special_erf", "cumsum"]
    assert result.layers[0].r_max == (1, 1)
    assert result.layers[1].status == "global"


def test_a_rule_that_raises_unsupported_gives_an_unknown_layer_with_its_reason():
    table = rfw.RuleTable()

    def refuse(call):
        raise Unsupported("blurs of this kind are not modelled")

    table.module(Blur, refuse)
    with pytest.warns(UnknownOperationWarning):
        result = rfw.analyze(_model(), 32, rules=table)
    assert result.layer("1").status == "unknown"
    assert any("not modelled" in d.message for d in result.diagnostics if d.layer == "1")


def _divide_by_zero(call):
    return 1 // 0


def _failures(caught) -> list[str]:
    return [str(w.message) for w in caught if w.category is RuleFailureWarning]


def test_a_broken_rule_makes_its_node_unknown_and_a_warning_names_the_rule():
    # issue 22 item 3: one rule's bug no longer costs the whole analysis (before: ModelImportError)
    table = rfw.RuleTable()
    table.module(Blur, _divide_by_zero)
    model = nn.Sequential(nn.Conv2d(3, 3, 3), Blur(), nn.Conv2d(3, 3, 5))
    with pytest.warns(UnknownOperationWarning) as caught:
        result = rfw.analyze(model, 32, rules=table)
    (failure,) = _failures(caught)
    assert failure == (
        "the rule test_rules._divide_by_zero for Blur failed at fx node '_1' (in 1): ZeroDivisionError: "
        "integer division or modulo by zero; this node is reported as unknown (a bug of the rule)"
    )
    layer = result.layer("1")
    assert layer.status == "unknown"
    assert any(
        "its rule failed (ZeroDivisionError" in d.message for d in result.diagnostics if d.layer == "1"
    )
    assert result.layer("2").r_max == (7, 7)  # the rest is analysed: 3 + (5 - 1), Blur adds nothing


def test_a_rule_that_fails_halfway_leaves_one_unknown_layer():
    def halfway(call):
        call.window(kernel=3, padding=1, op="first_half")
        raise KeyError("the second half")

    table = rfw.RuleTable()
    table.module(Blur, halfway)
    with pytest.warns(UnknownOperationWarning) as caught:
        result = rfw.analyze(_model(), 32, rules=table)
    assert "KeyError: 'the second half'" in _failures(caught)[0]
    assert [(layer.name, layer.op) for layer in result.layers] == [
        ("0", "Conv2d"),
        ("1", "Blur"),
        ("2", "Conv2d"),
    ]
    assert result.layer("1").status == "unknown"
    assert result.layer("2").r_max == (3, 3)  # the dropped 3x3 window left nothing behind


def test_a_rule_that_fails_at_several_nodes_gives_one_warning():
    table = rfw.RuleTable()
    table.module(Blur, _divide_by_zero)
    model = nn.Sequential(nn.Conv2d(3, 3, 3), Blur(), Blur(), Blur(), Blur(), nn.Conv2d(3, 3, 3))
    with pytest.warns(UnknownOperationWarning) as caught:
        result = rfw.analyze(model, 32, rules=table)
    (failure,) = _failures(caught)
    assert "at fx node '_1' (in 1), '_2' (in 2), '_3' (in 3) and 1 more: ZeroDivisionError" in failure
    assert [layer.status for layer in result.layers[1:5]] == ["unknown"] * 4


def test_a_rule_whose_error_is_the_users_input_still_raises():
    table = rfw.RuleTable()
    table.module(Blur, lambda call: call.window(kernel=0))  # kernel 0: the rule's (the user's) layer fields
    with pytest.raises(LayerSpecError, match="kernel"):
        rfw.analyze(_model(), 32, rules=table)


def test_a_missing_rule_is_unknown_and_says_how_to_add_one():
    class Opaque(nn.Module):
        def forward(self, x):
            return torch.special.erf(x)

    with pytest.warns(UnknownOperationWarning, match="erf"):
        result = rfw.analyze(nn.Sequential(nn.Conv2d(3, 3, 3), Opaque()), 16)
    layer = result.layers[-1]
    assert layer.status == "unknown"
    assert any("RuleTable" in d.message for d in result.diagnostics if d.layer == layer.name)


@pytest.mark.parametrize("bad", [42, "conv", None])
def test_registration_checks_its_arguments(bad):
    table = rfw.RuleTable()
    with pytest.raises(TypeError):
        table.module(bad, lambda call: call.pointwise())
    with pytest.raises(TypeError):
        table.module(Blur, bad)


def test_rules_must_be_a_table():
    with pytest.raises(TypeError, match="RuleTable"):
        rfw.analyze(_model(), 32, rules={Blur: None})
