"""The Explorer's picture: what a change redraws, and the cache key that decides it."""

from __future__ import annotations

import pytest

from rf_widgets.widgets.renderer import same_key


def test_same_key_forgives_float_noise_only():
    key = ((-27.240000000000002, 469.24), "linear", ("conv1", "fc"), 3)
    noisy = ((-27.24000000000001, 469.2400000000001), "linear", ("conv1", "fc"), 3)
    assert same_key(key, noisy)
    assert not same_key(key, ((-27.24, 469.25), "linear", ("conv1", "fc"), 3))  # a real change
    assert not same_key(key, ((-27.24, 469.24), "log", ("conv1", "fc"), 3))
    assert not same_key(key, ((-27.24, 469.24), "linear", ("conv1",), 3))
    assert not same_key(key, key[:3])


def test_a_size_change_on_resnet18_redraws_only_the_changed_artists():
    """Autoscaling ResNet18's growth plot after another input size gives y-limits that differ in the
    14th digit; the whole figure (about 0.5 s) must not be drawn again for that."""
    torchvision = pytest.importorskip("torchvision")
    import rf_widgets as rfw

    ex = rfw.explore(torchvision.models.resnet18(), image="checkerboard", input_size=224)
    canvas = ex.figure.canvas
    full_draws = []
    draw = canvas.draw
    canvas.draw = lambda: (full_draws.append(1), draw())[1]
    pictures = set()
    for size in (216, 208, 200, 120, 64):
        ex.controls["resolution"].value = size
        pictures.add(ex.picture.value)
    assert full_draws == []
    assert len(pictures) == 5  # each size still got its own picture
    ex.controls["log"].value = True  # a new y scale is a new background
    assert full_draws == [1]


class _Loop:
    """Stands in for the kernel's event loop: keeps what is scheduled until ``run``."""

    def __init__(self) -> None:
        self.callbacks: list = []

    def call_soon(self, callback) -> None:
        self.callbacks.append(callback)

    def run(self) -> None:
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()


def test_changes_from_the_browser_during_a_draw_are_coalesced_into_one_draw_of_the_latest(monkeypatch):
    import rf_widgets as rfw
    from rf_widgets.widgets import explorer as explorer_module

    stack = rfw.Stack([rfw.conv("c1", 3, stride=2, padding=1), rfw.conv("c2", 3, padding=1)], name="tiny")
    ex = explorer_module.Explorer(stack, image="checkerboard", input_size=32)
    drawn = []
    render = ex.renderer.render
    monkeypatch.setattr(
        ex.renderer, "render", lambda views=(): (drawn.append(ex.result.input_size), render(views))[1]
    )
    loop = _Loop()
    monkeypatch.setattr(explorer_module, "_front_end_loop", lambda: loop)
    before = ex.picture.value
    for size in (30, 28, 26):  # three messages handled before the kernel gets back to its loop
        ex.controls["resolution"].value = size
    ex.controls["unit_0"].value = 2
    assert ex.result.input_size == (26, 26)  # the state and the controls follow every message at once
    assert ex.controls["resolution_text"].value == 26
    assert ex.picture.value == before  # nothing drawn yet
    assert len(loop.callbacks) == 1  # one draw scheduled for all of them
    loop.run()
    assert drawn == [(26, 26)]  # once, the latest state only
    assert ex.picture.value != before
    assert ex.renderer.overlay.unit == ex.state.unit == (2, 7)

    monkeypatch.setattr(explorer_module, "_front_end_loop", lambda: None)  # a change from code: drawn now
    ex.controls["resolution"].value = 20
    assert drawn[-1] == (20, 20)
    assert loop.callbacks == []


def test_sizes_past_the_last_field_rescale_the_growth_plot_rarely():
    """When the input-size line is the tallest thing on the growth plot (a vision transformer's fields
    are global; here the fields end at 5 px), a drag over sizes must not draw the whole figure at
    every step: the y-limits are kept while the data fills half of them, and grow with headroom."""
    import rf_widgets as rfw
    from rf_widgets.widgets import Explorer

    ex = Explorer(rfw.Stack([rfw.conv("c1", 3), rfw.conv("c2", 3)], name="tiny"), input_size=64)
    canvas = ex.figure.canvas
    full_draws = []
    draw = canvas.draw
    canvas.draw = lambda: (full_draws.append(ex.result.input_size[0]), draw())[1]
    for size in (62, 60, 56, 48):  # smaller, still more than half of the plotted range
        ex.controls["resolution"].value = size
    assert full_draws == []
    for size in range(72, 100, 4):  # past the top: one rescale with room, then the steps fit
        ex.controls["resolution"].value = size
    assert full_draws == [72]
    bottom, top = ex.renderer.growth.ax.get_ylim()
    assert bottom <= 0
    assert top >= 96  # the input line stays in view
    ex.controls["resolution"].value = 20  # the data now fills less than half: rescaled to fit
    assert full_draws == [72, 20]
    assert ex.renderer.growth.ax.get_ylim()[1] < 40
    ex.controls["log"].value = True
    assert ex.renderer.growth.ax.get_ylim()[0] > 0  # a log axis autoscales to positive limits


def test_strip_recolours_when_a_verdict_moves_and_only_then():
    import matplotlib.colors as mcolors

    import rf_widgets as rfw
    from rf_widgets.plotting import STATUS_COLOURS, plot_architecture

    stack = rfw.Stack(
        [rfw.conv("c1", 3, stride=2, padding=1), *(rfw.conv(f"c{i}", 3, padding=1) for i in (2, 3, 4))]
    )
    strip = plot_architecture(rfw.analyze(stack, 64))

    def colours():
        return [mcolors.to_hex(c) for c in strip.artists["cell_patches"].get_facecolor()]

    assert colours() == [mcolors.to_hex(STATUS_COLOURS["productive"])] * 4
    strip.update(rfw.analyze(stack, 6))  # c2, c3, c4 unproductive (c2 the border layer)
    expected = ["productive", "unproductive", "unproductive", "unproductive"]
    assert colours() == [mcolors.to_hex(STATUS_COLOURS[s]) for s in expected]
    assert strip.artists["border_label"].get_text() == "border: c2"
    assert strip.artists["border_label"].get_visible()
    strip.update(rfw.analyze(stack, 64))
    assert colours() == [mcolors.to_hex(STATUS_COLOURS["productive"])] * 4
    assert not strip.artists["border_label"].get_visible()
