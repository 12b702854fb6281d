"""docs/envs.md runs as written: every Python block, each in a fresh interpreter from the repository root (in the
slow suite: several train a policy)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gymnasium", reason="the 'rl' extra is not installed")
pytest.importorskip("pettingzoo", reason="the 'rl' extra is not installed")

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "envs.md"


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a markdown text, in order."""
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _cases() -> list:
    """One slow case per Python block of the guide: each trains or steps in a fresh interpreter."""
    blocks = python_blocks(GUIDE.read_text())
    return [pytest.param(block, id=f"docs/envs.md-{k}", marks=[pytest.mark.slow]) for k, block in enumerate(blocks, 1)]


def test_the_guide_has_examples() -> None:
    blocks = python_blocks(GUIDE.read_text())
    assert len(blocks) >= 5
    assert any("stable_baselines3" in b for b in blocks) and any("make_vec" in b for b in blocks)


@pytest.mark.parametrize("block", _cases())
def test_example_runs_as_written(block: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(block)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, f"{block}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.stdout.strip(), "an example should show its result"
