"""The family registry: lazy imports, dispatch on spec.family, unknown families."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from inference.base import ModelSpec
from inference.families import FAMILIES, family_class, load_model


def test_importing_the_package_imports_no_heavy_library() -> None:
    code = (
        "import sys, inference.families, inference.decode, inference.device, inference.builders;"
        "heavy = {'transformers', 'ultralytics', 'torchvision'} & {m.split('.')[0] for m in sys.modules};"
        "assert not heavy, heavy"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path.cwd(), timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_every_family_resolves() -> None:
    assert set(FAMILIES) == {"classifier", "clip", "yolo"}
    assert family_class("classifier").family == "classifier"


def test_unknown_family_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown model family"):
        family_class("segmenter")
    spec = ModelSpec("classifier", "classification", 64, ("a",), "w.pt")
    (tmp_path / "model_spec.json").write_text(spec.to_json().replace('"classifier"', '"segmenter"'))
    with pytest.raises(ValueError, match="unknown model family"):
        load_model(tmp_path)


def test_missing_spec(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path)
