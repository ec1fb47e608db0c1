"""The Explorer in a real browser: JupyterLab, Notebook 7 and Voila in headless Chromium.

The fixture notebook shows ``rfw.explore(resnet18, input_size=224)``. Each test checks that the widget
really renders (no "Loading widget" / "Error displaying widget"), drags the resolution knob with the mouse
from 224 down to 32 and sees the kernel's answer in the summary: ResNet18 has no border layer at 224 and
``layer3.0.conv2`` at 32. Before the drag, a press on the picture and a drag over it with the button held
must move the unit sliders to the units under the mouse (ipyevents, no ipympl). In JupyterLab it
then previews the suggested trim from the Strategies tab, and
searches the design front, previews its efficiency pick (no border layer left) and builds it. A
screenshot of each page goes to ``test-artifacts/``. A negative control runs
JupyterLab without the ipywidgets front end and shows that the rendering check then fails.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

FIRST_RENDER_TIMEOUT = 120_000  # ms: kernel start, torch import and the first analysis
KERNEL_ANSWER_TIMEOUT = 30_000  # ms
FRONT_SEARCH_TIMEOUT = 90_000  # ms: the design search on ResNet18 takes seconds, more on a busy machine
NOTEBOOK = "explorer_resnet18.ipynb"  # copied into each server's root by the fixtures
TARGET_SIZE = 32
BORDER_LAYER_AT_TARGET = "layer3.0.conv2"  # before and after the trim (SPEC section 6 v2)
TRIM_TITLE = "Trim the unproductive layers and attach a new head"
WIDGET_FAILURE_TEXTS = ("Loading widget", "Error displaying widget")
KERNEL_IDLE = """() => {
    const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const session = widget && widget.sessionContext && widget.sessionContext.session;
    return Boolean(session && session.kernel && session.kernel.status === 'idle');
}"""


def _summary_cell(page: Any, row: str) -> Any:
    """The value cell of one row of the Explorer's summary table."""
    header = page.locator("th", has_text=re.compile(rf"^\s*{re.escape(row)}\s*$"))
    return page.locator(".rfw-summary tr").filter(has=header).locator("td")


def _assert_explorer_rendered(page: Any, timeout: float = FIRST_RENDER_TIMEOUT) -> None:
    """The widget view is on the page, and no widget placeholder or error text is."""
    from playwright.sync_api import expect

    expect(page.locator(".rfw-summary")).to_be_visible(timeout=timeout)
    expect(page.locator(".rfw-resolution .noUi-handle")).to_be_visible()
    body = page.locator("body")
    for text in WIDGET_FAILURE_TEXTS:
        expect(body).not_to_contain_text(text)
    expect(page.locator(".rfw-message.rfw-error")).to_have_count(0)


def _drag_resolution(page: Any, target: int) -> int:
    """Drag the resolution knob with the mouse as close to ``target`` as the pixels allow.

    The track is a few hundred pixels wide for sizes 1..1024, so one pixel is about three sizes and
    ``target`` itself may lie between two pixels: the knob is held down and nudged until the readout is
    as close as it gets. Returns the size the readout shows after the mouse is released.
    """
    slider = page.locator(".rfw-resolution")
    track, knob, readout = (slider.locator(s) for s in (".noUi-target", ".noUi-handle", ".widget-readout"))
    knob.scroll_into_view_if_needed()
    low = int(float(knob.get_attribute("aria-valuemin")))
    high = int(float(knob.get_attribute("aria-valuemax")))
    box, grip = track.bounding_box(), knob.bounding_box()
    px_per_size = box["width"] / (high - low)
    reach = math.ceil(1 / px_per_size)  # sizes one pixel of mouse movement spans
    y = grip["y"] + grip["height"] / 2
    x = box["x"] + box["width"] * (target - low) / (high - low)

    page.mouse.move(grip["x"] + grip["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(x, y, steps=12)
    for _ in range(8):  # closed loop while the button is held: correct by the size still missing
        error = int(readout.inner_text()) - target
        if 2 * abs(error) <= reach:
            break
        x -= error * px_per_size
        page.mouse.move(x, y, steps=2)
    page.mouse.up()
    dragged = int(readout.inner_text())
    assert abs(dragged - target) <= reach, f"the drag stopped at {dragged}, not near {target}"
    return dragged


def _fine_tune(page: Any, value: int, target: int) -> str:
    """From ``value`` to exactly ``target``: arrow keys on the focused knob, else the number box."""
    slider = page.locator(".rfw-resolution")
    knob, readout = slider.locator(".noUi-handle"), slider.locator(".widget-readout")
    if value == target:
        return "none needed"
    knob.focus()
    for _ in range(abs(target - value)):
        knob.press("ArrowRight" if target > value else "ArrowLeft")
    if int(readout.inner_text()) == target:
        return f"{abs(target - value)} arrow key(s) on the knob"
    number = page.locator(".widget-hbox:has(> .rfw-resolution) input[type='number']")
    number.fill(str(target))
    number.press("Enter")
    return "typed into the linked number box"


def _drag_to_border_change(page: Any, artifact: Path) -> None:
    """Drag 224 -> 32 and check that the kernel's summary follows; keep a screenshot."""
    from playwright.sync_api import expect

    timeout = KERNEL_ANSWER_TIMEOUT
    border, size = _summary_cell(page, "Border layer"), _summary_cell(page, "Input")
    readout = page.locator(".rfw-resolution .widget-readout")
    expect(readout).to_have_text("224")
    expect(size).to_have_text("224x224")
    expect(border).to_have_text("none")  # no border layer in ResNet18 at 224

    dragged = _drag_resolution(page, TARGET_SIZE)
    # The mouse drag alone already moves the border layer (any size near 32 has one).
    expect(size).to_have_text(f"{dragged}x{dragged}", timeout=timeout)
    expect(border).not_to_have_text("none", timeout=timeout)
    expect(border).to_contain_text("layer", timeout=timeout)

    how = _fine_tune(page, dragged, TARGET_SIZE)
    print(f"drag reached {dragged}; fine-tuning to {TARGET_SIZE}: {how}")
    expect(readout).to_have_text(str(TARGET_SIZE), timeout=timeout)
    expect(page.locator(".widget-hbox:has(> .rfw-resolution) input[type='number']")).to_have_value(
        str(TARGET_SIZE), timeout=timeout
    )
    expect(size).to_have_text(f"{TARGET_SIZE}x{TARGET_SIZE}", timeout=timeout)
    expect(page.locator(".rfw-summary")).to_contain_text(BORDER_LAYER_AT_TARGET, timeout=timeout)
    expect(border).to_have_text(BORDER_LAYER_AT_TARGET, timeout=timeout)
    page.wait_for_timeout(500)  # let the JPEG of the new figure arrive before the screenshot
    page.screenshot(path=str(artifact), full_page=True)


def _open_notebook_and_run(page: Any, lab: Any) -> None:
    page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}&reset", timeout=FIRST_RENDER_TIMEOUT)
    page.wait_for_function(KERNEL_IDLE, timeout=FIRST_RENDER_TIMEOUT)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")


def _preview_trim(page: Any, artifact: Path) -> None:
    """Strategies tab at 32 px: Suggest, pick the trim, and see the summary describe the trimmed network."""
    from playwright.sync_api import expect

    timeout = KERNEL_ANSWER_TIMEOUT
    page.get_by_role("tab", name="Strategies").click()
    page.get_by_role("button", name="Suggest").click()
    choice = page.locator(".rfw-strategy select")
    expect(choice.locator("option", has_text=TRIM_TITLE)).to_have_count(1, timeout=timeout)
    expect(page.locator(".rfw-strategy-details")).to_contain_text("cut after", timeout=timeout)
    choice.select_option(label=TRIM_TITLE)
    expect(_summary_cell(page, "Model")).to_contain_text("(trimmed)", timeout=timeout)
    expect(page.locator(".rfw-message")).to_contain_text("previewing: trim", timeout=timeout)
    expect(_summary_cell(page, "Border layer")).to_have_text(BORDER_LAYER_AT_TARGET, timeout=timeout)
    expect(page.locator(".rfw-message.rfw-error")).to_have_count(0)
    for text in WIDGET_FAILURE_TEXTS:
        expect(page.locator("body")).not_to_contain_text(text)
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifact), full_page=True)


def _search_front_and_build(page: Any, artifact: Path) -> None:
    """Back to the original, Search front (budget 1x), preview the efficiency pick, build it."""
    from playwright.sync_api import expect

    timeout = KERNEL_ANSWER_TIMEOUT
    page.locator(".rfw-strategy select").select_option(label="(original)")
    expect(_summary_cell(page, "Border layer")).to_have_text(BORDER_LAYER_AT_TARGET, timeout=timeout)
    page.get_by_role("button", name="Search front").click()
    choice = page.locator(".rfw-front-choice select")
    pick = choice.locator("option", has_text="efficiency")
    expect(pick).to_have_count(1, timeout=FRONT_SEARCH_TIMEOUT)
    expect(page.locator(".rfw-front-plot")).to_be_visible()
    choice.select_option(label=pick.text_content())
    expect(_summary_cell(page, "Border layer")).to_have_text("none", timeout=timeout)
    expect(page.locator(".rfw-message")).to_contain_text("previewing: conv1 kernel 7 -> 3", timeout=timeout)
    page.get_by_role("button", name="Build module").click()
    expect(page.locator(".rfw-message")).to_contain_text("built ResNet", timeout=timeout)
    expect(page.locator(".rfw-message.rfw-error")).to_have_count(0)
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifact), full_page=True)


CLICK_LAYER = "layer1.0.conv1"  # 56x56 units at 224 px; fields inside the image for the units below
PRESSED_UNIT, DRAGGED_UNIT = (12, 20), (40, 31)


def _unit_positions() -> dict[tuple[int, int], tuple[float, float]]:
    """Where the centres of PRESSED_UNIT and DRAGGED_UNIT lie on the picture, as fractions of its width
    and height, in the same Explorer built here (same figure size and layout as in the kernel).

    The overlay's limits cover the image and the unit's boxes; for these units the boxes lie inside the
    image, so the limits, and these positions, do not change when the unit does.
    """
    torchvision = pytest.importorskip("torchvision")
    import rf_widgets as rfw

    ex = rfw.explore(torchvision.models.resnet18(), image="checkerboard", input_size=224)
    ex.controls["layer"].value = CLICK_LAYER
    ax = ex.renderer.overlay.ax
    width, height = ex.figure.canvas.get_width_height()
    positions = {}
    for unit in (PRESSED_UNIT, DRAGGED_UNIT):
        ex.state.set_unit(unit)
        row, col = ex.result.unit_box(CLICK_LAYER, unit, "max").centre
        x, y = ax.transData.transform((col, row))
        positions[unit] = (x / width, 1 - y / height)
    return positions


def _pick_units_on_the_picture(page: Any) -> None:
    """Press on the picture, then drag over it with the button held: the unit sliders follow."""
    from playwright.sync_api import expect

    timeout = KERNEL_ANSWER_TIMEOUT
    positions = _unit_positions()
    page.get_by_role("tab", name="Resolution and unit").click()
    page.locator(".rfw-layer select").select_option(label=CLICK_LAYER)
    readouts = [page.locator(f".rfw-unit-{a} .widget-readout") for a in (0, 1)]
    expect(readouts[0]).to_have_text("27", timeout=timeout)  # the centre unit (55 // 2) of the 56x56 map
    picture = page.locator(".rfw-picture")
    picture.scroll_into_view_if_needed()
    page.wait_for_timeout(300)  # the layer's picture has arrived: the layout does not move any more
    box = picture.bounding_box()

    def at(unit: tuple[int, int]) -> tuple[float, float]:
        fx, fy = positions[unit]
        return box["x"] + fx * box["width"], box["y"] + fy * box["height"]

    page.mouse.click(*at(PRESSED_UNIT))
    for readout, value in zip(readouts, PRESSED_UNIT, strict=True):
        expect(readout).to_have_text(str(value), timeout=timeout)
    # A move without the button picks nothing; with it held, the unit follows the mouse.
    page.mouse.move(*at(DRAGGED_UNIT), steps=5)
    page.wait_for_timeout(500)
    expect(readouts[0]).to_have_text(str(PRESSED_UNIT[0]))
    page.mouse.move(*at(PRESSED_UNIT))
    page.mouse.down()
    page.mouse.move(*at(DRAGGED_UNIT), steps=15)
    page.mouse.up()
    for readout, value in zip(readouts, DRAGGED_UNIT, strict=True):
        expect(readout).to_have_text(str(value), timeout=timeout)
    expect(page.locator(".rfw-message.rfw-error")).to_have_count(0)
    page.locator(".rfw-layer select").select_option(label="layer4.1.conv2")  # back to the default


def test_explorer_in_jupyterlab(page: Any, lab: Any, artifacts: Path) -> None:
    _open_notebook_and_run(page, lab)
    _assert_explorer_rendered(page)
    _pick_units_on_the_picture(page)
    _drag_to_border_change(page, artifacts / "explorer-lab.png")
    _assert_explorer_rendered(page, timeout=KERNEL_ANSWER_TIMEOUT)
    _preview_trim(page, artifacts / "explorer-lab-trim.png")
    _search_front_and_build(page, artifacts / "explorer-lab-front.png")


def test_explorer_in_notebook7(page: Any, notebook7: Any) -> None:
    """Notebook 7: the widget renders, and pressing and dragging on the picture picks units."""
    page.goto(f"{notebook7.url}/notebooks/{NOTEBOOK}?token={notebook7.token}", timeout=FIRST_RENDER_TIMEOUT)
    page.wait_for_function(KERNEL_IDLE, timeout=FIRST_RENDER_TIMEOUT)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    _assert_explorer_rendered(page)
    _pick_units_on_the_picture(page)


def test_explorer_in_voila(page: Any, voila: Any, artifacts: Path) -> None:
    # Voila answers only after it has run the notebook: do not wait for "load" with the default 30 s
    page.goto(f"{voila.url}/?token={voila.token}", wait_until="commit", timeout=FIRST_RENDER_TIMEOUT)
    _assert_explorer_rendered(page)
    _pick_units_on_the_picture(page)
    _drag_to_border_change(page, artifacts / "explorer-voila.png")
    _assert_explorer_rendered(page, timeout=KERNEL_ANSWER_TIMEOUT)


def test_rendering_check_fails_without_the_widget_front_end(page: Any, lab_without_widgets: Any) -> None:
    """Negative control: without the widget manager the output is the widget's plain-text repr."""
    from playwright.sync_api import expect

    _open_notebook_and_run(page, lab_without_widgets)
    output = page.locator(".jp-OutputArea-output")
    expect(output).to_contain_text("Explorer(children=", timeout=FIRST_RENDER_TIMEOUT)
    expect(page.locator(".rfw-summary")).to_have_count(0)
    with pytest.raises(AssertionError):
        _assert_explorer_rendered(page, timeout=2_000)
