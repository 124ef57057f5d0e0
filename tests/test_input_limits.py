"""Input that cannot explode: size caps, YAML alias rules, linear validation, one-line refusals."""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import promoter.config.load
from promoter.config.load import load_config

# -- validation stays linear -----------------------------------------------------------------------


def _pipeline(folder: Path, count: int) -> Path:
    """A promoter.yaml of ``count`` environments in one chain, written last stage first.

    Each environment promotes from the one after it in the file: the longest possible chain, and the
    file order farthest from pipeline order, which is the worst case for both checks and ordering.
    """
    lines = ["environments:"]
    for index in range(count):
        lines += [
            f"  env-{index}:",
            f"    overlay: overlays/env-{index}",
            f"    registry: r{index}.example.com",
        ]
        if index < count - 1:
            lines.append(f"    promotesFrom: env-{index + 1}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "promoter.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _lines_run_in_load_module(path: Path) -> int:
    """How many lines of promoter/config/load.py run while loading ``path``: the work validation does."""
    module_file = promoter.config.load.__file__
    counted = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal counted
        if event == "line":
            counted += 1
        return local

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == module_file else None

    sys.settrace(on_call)
    try:
        load_config(path)
    finally:
        sys.settrace(None)
    return counted


def test_validation_work_grows_linearly_with_environments(tmp_path: Path) -> None:
    """Four times the environments costs about four times the validation work, not sixteen."""
    small = _lines_run_in_load_module(_pipeline(tmp_path / "small", 1000))
    large = _lines_run_in_load_module(_pipeline(tmp_path / "large", 4000))
    assert large < 5 * small, (small, large)


def test_three_thousand_environments_load_in_pipeline_order(tmp_path: Path) -> None:
    """A chain of 3000 environments validates and comes back source before receiver."""
    config = load_config(_pipeline(tmp_path, 3000))
    assert list(config.environments) == [f"env-{index}" for index in reversed(range(3000))]
    assert config.source_of("env-0") == config.environments["env-1"]
