"""Hostile edits in the Explorer (issue 24): refused before the edited stack is analysed, values
type-checked as the stack-file reader does, editor fields parsed completely.

Each case failed before its fix: a stride or padding of 1,000,000 was analysed (84 s and 39 s on
fcn_resnet50), a 1,000,000-character name was accepted, ``ceil_mode='no'`` and ``op=5`` were stored,
and the padding field ignored what followed its pairs.
"""

from __future__ import annotations

import time

import pytest

import rf_widgets as rfw
from rf_widgets.errors import LayerSpecError, RFError
from rf_widgets.widgets.parsing import parse_padding
from rf_widgets.widgets.state import MAX_EDIT_VALUE, MAX_NAME, ExplorerState


def _state() -> ExplorerState:
    stack = rfw.Stack(
        [rfw.conv("conv1", 7, stride=2, padding=3), rfw.pool("pool", 3, 2, padding=1), rfw.conv("conv2", 3)]
    )
    return ExplorerState(stack, 64)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"stride": 1000000}, [str(MAX_EDIT_VALUE), "1,000,000", "'conv1'"]),
        ({"padding": 1000000}, [str(MAX_EDIT_VALUE), "1,000,000", "'conv1'"]),
        ({"kernel": (3, 10**400)}, ["'conv1'"]),
        ({"ceil_mode": "no"}, ["ceil_mode", "'no'"]),
        ({"op": 5}, ["op", "5"]),
    ],
)
def test_an_edit_beyond_the_cap_or_of_the_wrong_type_is_refused_before_analysis(changes, words) -> None:
    state = _state()
    before = state.stack
    start = time.perf_counter()
    with pytest.raises(RFError) as err:
        state.edit("conv1", **changes)
    assert time.perf_counter() - start < 1
    assert "\n" not in str(err.value)
    for word in words:
        assert word in str(err.value)
    assert state.stack is before


def test_a_layer_name_of_a_million_characters_is_refused() -> None:
    state = _state()
    with pytest.raises(RFError, match=f"at most {MAX_NAME} characters"):
        state.add(1, rfw.elementwise("x" * 1_000_000))
    assert len(state.stack.layers) == 3


@pytest.mark.parametrize("text", ["(1,2),(3,4) junk", "junk (1,2)", "(1,2);rm", "(1,2),(3,4)x"])
def test_the_padding_field_is_parsed_completely(text: str) -> None:
    with pytest.raises(LayerSpecError, match="nothing else"):
        parse_padding(text)


def test_the_padding_field_still_reads_pairs() -> None:
    assert parse_padding("(1,2),(3,4)") == ((1, 2), (3, 4))
    assert parse_padding("[(1, 2), (3, 4)]") == ((1, 2), (3, 4))


def _png(value: int) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((20, 30, 3), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(ex: object, name: str, content: bytes) -> None:
    item = {"name": name, "type": "image/png", "size": len(content), "content": content, "last_modified": 0}
    ex.controls["upload"].set_state({"value": [item]})  # type: ignore[attr-defined]


def test_a_disabled_remove_clicked_from_the_kernel_does_nothing() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("ipywidgets")
    from rf_widgets.widgets.explorer import Explorer

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3, stride=2))
    ex = Explorer(model, input_size=32)
    before = ex.state.stack
    assert ex.controls["remove"].disabled
    ex.controls["remove"].click()
    assert ex.state.stack is before


def test_uploading_the_same_file_again_shows_it_again() -> None:
    pytest.importorskip("ipywidgets")
    from rf_widgets.widgets.explorer import Explorer

    ex = Explorer(rfw.Stack([rfw.conv("c", 3)]), input_size=32)
    content = _png(120)
    _upload(ex, "photo.png", content)
    assert ex.state.image_label == "photo.png"
    ex.controls["image"].value = "checkerboard"
    assert ex.state.image_name == "checkerboard"
    _upload(ex, "photo.png", content)  # the same file, chosen again
    assert ex.state.image_label == "photo.png"
    assert "showing &#x27;photo.png&#x27;" in ex.message.value


@pytest.mark.parametrize("dtype", [object, "U1", complex])
def test_an_image_array_that_is_not_numbers_is_refused(dtype) -> None:
    import numpy as np

    with pytest.raises(RFError, match="an image must hold numbers"):
        ExplorerState(rfw.Stack([rfw.conv("c", 3)]), 32, image=np.zeros((8, 8, 3), dtype=dtype))
