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
