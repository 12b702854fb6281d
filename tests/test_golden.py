"""The main jobs write exactly what they wrote when the golden files were taken (see tests/golden_cases.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from golden_cases import CASES, GOLDEN, Case, csv_difference, difference, json_difference, produce
from optional import HAS_TORCH


def _param(case: Case) -> object:
    marks = [pytest.mark.slow] if case.slow else []
    if case.needs_torch:
        marks.append(pytest.mark.skipif(not HAS_TORCH, reason="needs torch (the deep extra)"))
    return pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_outputs_equal_the_golden_files(case: Case, tmp_path: Path) -> None:
    folder = produce(case, tmp_path / "out")
    for name in case.files:
        golden = GOLDEN / case.name / name
        assert golden.is_file(), f"no golden file {golden}: run python3 tests/golden_cases.py {case.name}"
        found = difference(name, golden.read_text(), (folder / name).read_text())
        assert found is None, f"{case.name}/{name}: {found}"


def test_the_comparison_catches_a_changed_value_and_forgives_only_rounding() -> None:
    text = "step,price,name\n1,1.5,a\n2,1.25,b\n"
    assert csv_difference(text, text) is None
    assert csv_difference(text, text.replace("1.25", str(1.25 * (1 + 1e-14)))) is None
    assert "row 2, column price" in csv_difference(text, text.replace("1.25", "1.2500001"))
    assert "column name" in csv_difference(text, text.replace(",b", ",c"))
    assert "rows" in csv_difference(text, text + "3,1.0,c\n")
    assert json_difference({"a": [1.0, 2.0], "seconds": 3.0}, {"a": [1.0, 2.0], "seconds": 9.0}) is None
    assert json_difference({"a": [1.0, 2.0]}, {"a": [1.0, 2.5]}) == ".a[1]: 2.5 instead of 2.0"
    assert json_difference({"a": True}, {"a": 1}) is not None
    assert difference("x.json", '{"a": 1}', '{"a": 1, "b": 2}') == ".b: present in only one of them"
