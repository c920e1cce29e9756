"""``streamvision bench --`` options: defaults, ``--quick``, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.options import parse_options
from bench.scenarios import FAMILIES


def test_defaults_cover_every_family_and_the_documented_batch_sizes() -> None:
    options = parse_options([])
    assert options.families == FAMILIES
    assert options.batch_sizes == (1, 8, 16, 32)
    assert options.out is None and options.events is None and not options.quick
    assert options.yolo_size is None and options.image_size == (640, 480)  # None: chosen per device


def test_leading_double_dash_is_ignored_and_quick_shortens_the_run() -> None:
    options = parse_options(["--", "--quick", "--family", "clip", "--out", "x/y.json"])
    assert options.families == ("clip",)
    assert options.batch_sizes == (8,)
    assert options.out == Path("x/y.json")
    assert options.seconds < parse_options([]).seconds
    assert parse_options(["--yolo-size", "416"]).yolo_size == 416


def test_lists_and_sizes_parse() -> None:
    options = parse_options(
        ["--family", "classifier,yolo", "--batch-sizes", "2,4", "--image-size", "320x240"]
    )
    assert options.families == ("classifier", "yolo")
    assert options.batch_sizes == (2, 4)
    assert options.image_size == (320, 240)
    assert options.workers == 1 and parse_options(["--workers", "3"]).workers == 3


@pytest.mark.parametrize(
    "argv",
    [
        ["--family", "resnet"],
        ["--batch-sizes", "0,8"],
        ["--batch-sizes", "eight"],
        ["--events", "0"],
        ["--yolo-size", "300"],
        ["--image-size", "640"],
        ["--workers", "0"],
    ],
)
def test_invalid_options_exit(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_options(argv)
