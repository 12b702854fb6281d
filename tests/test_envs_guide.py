"""docs/envs.md and the README's section on other RL libraries run as written: every Python block, each in a
fresh interpreter from the repository root (in the slow suite: several train a policy)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gymnasium", reason="the 'rl' extra is not installed")
pytest.importorskip("pettingzoo", reason="the 'rl' extra is not installed")

ROOT = Path(__file__).resolve().parents[1]
README_SECTION = "## Use the markets from other RL libraries"


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a markdown text, in order."""
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(README_SECTION)
    end = text.find("\n## ", start + len(README_SECTION))
    return text[start:end]


def _cases() -> list:
    cases = []
    for source, text in (("docs/envs.md", (ROOT / "docs" / "envs.md").read_text()), ("README", readme_section())):
        for k, block in enumerate(python_blocks(text), start=1):
            cases.append(pytest.param(block, id=f"{source}-{k}", marks=[pytest.mark.slow]))  # a fresh interpreter each
    return cases


def test_the_guides_have_examples() -> None:
    assert len(python_blocks((ROOT / "docs" / "envs.md").read_text())) >= 2
    readme = python_blocks(readme_section())
    assert len(readme) >= 3 and any("stable_baselines3" in b for b in readme) and any("make_vec" in b for b in readme)


@pytest.mark.parametrize("block", _cases())
def test_example_runs_as_written(block: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(block)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, f"{block}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.stdout.strip(), "an example should show its result"
