"""Typed layout roles (rf_widgets.frontends.layout) through the ONNX reshape grouping, by hand.

Each case is a Reshape or Flatten a converter writes, with the roles worked out on paper: a Swin window
partition of a 56 x 56 map into 7 x 7 windows, its reversal, a space-to-depth, a whole-axis partition.
"""

from __future__ import annotations

from rf_widgets.frontends.layout import Block, Cut, Extended, Partition, Phase, Whole, Windows, describe
from rf_widgets.onnx_import.layout import merged, mixing, plain, regroup

NCHW = ("N", "C", 0, 1)
NHWC = ("N", 0, 1, "C")


def test_a_window_partition_is_blocks_then_a_partition_and_back() -> None:
    # (1, 56, 56, 96) -> (1, 8, 7, 8, 7, 96): block index and position within blocks of 7, per axis
    split = regroup(NHWC, (1, 56, 56, 96), (1, 8, 7, 8, 7, 96), 2)
    assert split == ("N", Block("G", 0, 7), Block("W", 0, 7), Block("G", 1, 7), Block("W", 1, 7), "C")
    # transpose to (1, 8, 8, 7, 7, 96), then (64, 49, 96): windows, positions within windows
    moved = (split[0], split[1], split[3], split[2], split[4], split[5])
    windows = regroup(moved, (1, 8, 8, 7, 7, 96), (64, 49, 96), 2)
    assert windows == (Partition("Pg", 7), Partition("Pw", 7), "C")
    assert mixing([windows[1]]) == Windows(7)
    assert mixing([windows[0]]) == "global"
    # and back: (64, 49, 96) -> (1, 8, 8, 7, 7, 96) -> transpose -> (1, 56, 56, 96)
    back = regroup(windows, (64, 49, 96), (1, 8, 8, 7, 7, 96), 2)
    assert back == ("N", Block("G", 0, 7), Block("G", 1, 7), Block("W", 0, 7), Block("W", 1, 7), "C")
    restored = (back[0], back[1], back[3], back[2], back[4], back[5])
    assert regroup(restored, (1, 8, 7, 8, 7, 96), (1, 56, 56, 96), 2) == NHWC


def test_a_padded_rolled_axis_carries_its_extent_and_shift_into_the_partition() -> None:
    rolled = ("N", Extended(0, 57, 3), Extended(1, 57, 3), "C")
    split = regroup(rolled, (1, 63, 63, 8), (1, 9, 7, 9, 7, 8), 2)
    assert split == (
        "N", Block("G", 0, 7, (57, 3)), Block("W", 0, 7, (57, 3)),
        Block("G", 1, 7, (57, 3)), Block("W", 1, 7, (57, 3)), "C",
    )  # fmt: skip
    moved = (split[0], split[1], split[3], split[2], split[4], split[5])
    windows = regroup(moved, (1, 9, 9, 7, 7, 8), (81, 49, 8), 2)
    assert windows == (Partition("Pg", 7, (57, 57), (3, 3)), Partition("Pw", 7, (57, 57), (3, 3)), "C")
    assert mixing([windows[1]]) == Windows(7, (3, 3))
    assert str(windows[1]) == "Pw:7/57,57>3,3"


def test_space_to_depth_records_the_block_and_mixing_a_piece_of_an_axis_is_unknown() -> None:
    blocks: dict[str, dict[int, int]] = {}
    split = regroup(NCHW, (1, 3, 8, 8), (1, 3, 4, 2, 4, 2), 2, blocks)
    assert split == ("N", "C", Block("G", 0, 2), Block("W", 0, 2), Block("G", 1, 2), Block("W", 1, 2))
    # positions within blocks moved next to channels and merged into them: space to depth by 2 x 2
    moved = ("N", "C", split[3], split[5], split[2], split[4])
    assert regroup(moved, (1, 3, 2, 2, 4, 4), (1, 12, 4, 4), 2, blocks)[1] == "C"  # type: ignore[index]
    assert blocks["split"] == {0: 2, 1: 2}
    for piece in (Block("W", 0, 2), Extended(0, 57), Cut(0, 3, 57), Phase(0, 2, 1, 57)):
        assert mixing([piece]) == "unknown"


def test_a_whole_axis_read_as_one_block_is_the_axis_to_everything_else() -> None:
    # (1, 7, 7, 64) -> (1, 1, 7, 1, 7, 64) with constant 7s: one window of 7 x 7 per axis
    fixed = (True, True, True, True, True, True)
    split = regroup(NHWC, (1, 7, 7, 64), (1, 1, 7, 1, 7, 64), 2, fixed=fixed)
    assert split == ("N", "N", Whole("W", 0, 7), "N", Whole("W", 1, 7), "C")
    assert plain(split) == ("N", "N", 0, "N", 1, "C")  # type: ignore[arg-type]
    assert merged([Whole("W", 0, 7), Whole("W", 1, 7)], 1, 2) == Partition("Pw", 7, whole=True)
    assert describe(("N", "C", 0, Partition("Pw", 7, whole=True))) == "(batch, channels, spatial 0, Pw:7!)"
