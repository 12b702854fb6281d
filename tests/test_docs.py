"""The README and the documentation site (docs/, built by MkDocs) say what is true: the site builds with warnings as
errors (strict mode checks every internal link and anchor), the README's links point at files, the generated
reference covers every field and strategy, and every code block on every page runs as written.

Code blocks follow one convention (docs/hooks.py shows the notes on the site): ``<!-- file: PATH -->`` before a
block writes it to PATH; ``<!-- not run: REASON -->`` skips it, visibly; ``<!-- budget: COMMAND ARGS; ... -->``
appends ARGS to that ``marketsim COMMAND``'s lines. Otherwise a ``bash`` block's lines are run, a ``python`` block
is run in a fresh interpreter, a ``yaml`` block is checked with ``marketsim validate``, and a ``text`` block that
starts with ``$ `` is a transcript: the command is run and must print what the page shows. Each page runs in a
fresh folder holding a link to ``scenarios/``. docs/plugins.md and docs/envs.md have their own tests
(tests/test_plugin_guide.py, tests/test_envs_guide.py).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
#: Pages whose code blocks another test runs, and the generated contract reference (no code blocks).
RUN_ELSEWHERE = {"plugins.md", "envs.md", "reference.md"}
RUNNABLE = {"bash", "python", "yaml", "text"}

_BLOCK = re.compile(r"(?:^<!-- (?P<note>[^\n]+?) -->\n)?^```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.M | re.S)


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page, with the note written right above it."""

    lang: str
    body: str
    note: str


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a markdown text, in order."""
    return [Block(m["lang"], m["body"], m["note"] or "") for m in _BLOCK.finditer(text)]


def pages() -> list[Path]:
    """Every page of the site, then the README."""
    return [*sorted(DOCS.glob("*.md")), README]


def _why_not_runnable(block: Block) -> str | None:
    """None when the tests run this block or it says why not; else what is wrong with it."""
    if block.note.startswith("not run:"):
        return None if block.note.removeprefix("not run:").strip() else "a 'not run' note gives no reason"
    if block.note.startswith(("file: ", "budget: ")) or block.note == "run":
        return None
    if block.lang not in RUNNABLE:
        return f"a ```{block.lang or '(no language)'} block neither runs nor says why not"
    return None


def test_every_code_block_runs_or_says_why_not() -> None:
    problems = []
    for page in pages():
        for k, block in enumerate(blocks(page.read_text()), 1):
            why = _why_not_runnable(block)
            if why:
                problems.append(f"{page.relative_to(ROOT)} block {k}: {why}")
    assert not problems, "\n".join(problems)


def test_the_block_parser_sees_notes_and_languages() -> None:
    text = "<!-- not run: slow -->\n```bash\nsleep 1\n```\n\n```text\n$ marketsim x\nout\n```\n"
    assert blocks(text) == [Block("bash", "sleep 1\n", "not run: slow"), Block("text", "$ marketsim x\nout\n", "")]
    assert _why_not_runnable(Block("toml", "", "")) and _why_not_runnable(Block("bash", "", "not run: "))


def _relative_links(text: str) -> list[str]:
    """The targets of the markdown links and images in ``text`` that are paths, not URLs or anchors."""
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def test_the_readme_links_point_at_files() -> None:
    links = _relative_links(README.read_text())
    assert len(links) >= 10
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_the_readme_is_short_and_has_what_a_newcomer_needs() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 180
    for heading in ("## Who it is for", "## Set-up: two commands", "## In Python", "## On the command line"):
        assert heading in text
    assert not re.search(r"issue #?\d|this machine|this project's", text, re.I), "write for a reader, not a ticket"


def test_the_readme_set_up_commands_are_what_ci_runs() -> None:
    readme = [b.body.strip() for b in blocks(README.read_text()) if b.lang == "bash"]
    install_and_run, install_and_test = readme[0], readme[1]
    assert install_and_run.startswith("python3 -m pip install -e ") and "marketsim run scenarios/" in install_and_run
    assert (ROOT / install_and_run.split("marketsim run ")[1]).is_file()
    ci = (ROOT / ".ci" / "run").read_text()
    extras = re.search(r'-e "(\.\[[a-z0-9,]+\])"', install_and_test)[1]
    test_command = install_and_test.split(" && ")[1]
    assert f'-e "{extras}' in ci, "CI installs what the README installs"
    assert f"\n{test_command}\n" in ci, "CI runs the README's test command"


def test_no_page_or_bundled_file_mentions_an_issue_number() -> None:
    files = [*pages(), *(ROOT / "scenarios").glob("*.yaml"), *(ROOT / "benchmarks").glob("*.py")]
    found = [str(f.relative_to(ROOT)) for f in files if re.search(r"\bissue #?\d+|#1\d\b", f.read_text(), re.I)]
    assert not found, found


# --- the generated reference -------------------------------------------------------------------------------


def hooks() -> ModuleType:
    """docs/hooks.py, the MkDocs hook module that generates the reference parts."""
    spec = importlib.util.spec_from_file_location("marketsim_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ["scenario", "tournament", "family", "sweep"])
def test_the_file_reference_has_every_field_of_the_schema(kind: str) -> None:
    from marketsim.config.schema import file_schema

    schema = file_schema(kind)
    page = hooks().SCHEMA_PAGES[kind]
    text = hooks().schema_markdown(kind, page)
    assert f"<!-- generated: schema {kind} -->" in (DOCS / page).read_text()
    shared = set(file_schema("scenario")["$defs"]) if kind != "scenario" else set()
    models = [schema, *(model for name, model in schema["$defs"].items() if name not in shared | {"Scenario"})]
    for model in models:
        for field in model.get("properties", {}):
            assert f"| `{field}` |" in text, f"{kind}: {model.get('title')}.{field} is missing"
    for name in set(schema["$defs"]) - shared - {"Scenario"}:
        assert f"{{#{kind}-{name.lower()}}}" in text


def test_the_file_reference_spells_types_limits_and_defaults() -> None:
    text = hooks().schema_markdown("scenario", "scenarios.md")
    assert "| `seed` | integer (≥ 0) | `0` |" in text
    assert "| `sellers` | list of [Seller](#scenario-seller) (at least 1 item) | required |" in text
    assert '| `mode` | one of `"agents"`, `"expected"` | `"agents"` |' in text
    family = hooks().schema_markdown("family", "meta.md")
    assert "[Scenario](scenarios.md#scenario-scenario)" in family  # the scenario's types are linked, not repeated
    assert "{uniform: [number, number]}" in family


def test_the_strategy_page_lists_every_bundled_strategy_with_its_parameters() -> None:
    from marketsim.registry import default_registry
    from marketsim.strategy import parameters

    assert "<!-- generated: strategies -->" in (DOCS / "strategies.md").read_text()
    text = hooks().strategies_markdown()
    bundled = [e for e in default_registry().table("strategy").entries() if e.distribution == "marketsim"]
    assert len(bundled) >= 10  # the rules at least; the learners whose extra is installed too
    for entry in bundled:
        section = text.split(f"### `{entry.name}` ")[1].split("\n### ")[0]
        for p in parameters(entry.cls):
            assert f"| `{p.name}` |" in section, f"{entry.name}: parameter {p.name} is missing"


def test_an_unknown_generated_part_stops_the_build() -> None:
    with pytest.raises(ValueError, match="unknown generated part"):
        hooks().generate("schema", "bogus", "x.md")


# --- the site builds, and its pages run ---------------------------------------------------------------------


@pytest.mark.slow
def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the 'docs' extra is not installed")
    pytest.importorskip("material", reason="the 'docs' extra is not installed")
    env = {**os.environ, "PYTHONPATH": _pythonpath(), "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    strategies = (tmp_path / "site" / "strategies" / "index.html").read_text()
    assert 'id="q_learning"' in strategies and "convergence_steps" in strategies  # the hook ran
    assert "fonts.googleapis" not in (tmp_path / "site" / "index.html").read_text()  # nothing fetched from a CDN


def _pythonpath() -> str:
    """This checkout first on the path of every child process, so the pages run the code under test."""
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def _budgets(note: str) -> dict[str, str]:
    """A budget note as {command: arguments to append}."""
    if not note.startswith("budget: "):
        return {}
    parts = [part.strip().split(" ", 1) for part in note.removeprefix("budget: ").split(";") if part.strip()]
    return {command: args for command, args in parts}


def _shell_line(line: str, budgets: dict[str, str]) -> str:
    """A documented command line as the test runs it: this interpreter, and the budget's arguments."""
    line = re.sub(r"\s+#.*$", "", line)
    words = shlex.split(line)
    if words[0] == "marketsim":
        extra = budgets.get(words[1], "")
        return shlex.join([sys.executable, "-m", "marketsim", *words[1:]]) + (f" {extra}" if extra else "")
    if words[0] == "python3":
        return shlex.join([sys.executable, *words[1:]])
    return line


def _run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run one shell command of a page in its folder; wide enough that tables are not wrapped."""
    env = {**os.environ, "PYTHONPATH": _pythonpath(), "COLUMNS": "200", "MPLBACKEND": "Agg"}
    return subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def _words(text: str) -> str:
    """Text with every run of white space made one space: what a transcript is compared on."""
    return " ".join(text.split())


def _play(block: Block, k: int, work: Path) -> None:
    """Write, run or check one block of a page in ``work``."""
    if block.note.startswith("not run:") or (block.lang == "text" and not block.body.startswith("$ ")):
        return
    if block.note.startswith("file: "):
        (work / block.note.removeprefix("file: ")).write_text(block.body)
        return
    if block.lang == "python":
        (work / f"block{k}.py").write_text(block.body)
        commands = [shlex.join([sys.executable, f"block{k}.py"])]
    elif block.lang == "yaml":
        (work / f"block{k}.yaml").write_text(block.body)
        commands = [_shell_line(f"marketsim validate block{k}.yaml", {})]
    elif block.lang == "text":
        command, _, shown = block.body.partition("\n")
        done = _run(_shell_line(command.removeprefix("$ "), {}), work)
        assert _words(shown) in _words(done.stdout + done.stderr), f"{command}\n{done.stdout}\n{done.stderr}"
        return
    else:
        lines = [line for line in block.body.splitlines() if line.strip() and not line.startswith("#")]
        commands = [_shell_line(line, _budgets(block.note)) for line in lines]
    for command in commands:
        done = _run(command, work)
        assert done.returncode == 0, f"block {k}: {command}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


def _runnable_pages() -> list:
    """One slow case per page with a block to run (each runs marketsim in fresh processes)."""
    cases = []
    for page in pages():
        if page.name in RUN_ELSEWHERE or page.parent != DOCS and page != README:
            continue
        todo = [b for b in blocks(page.read_text()) if not b.note.startswith("not run:")]
        if any(b.lang != "text" or b.body.startswith("$ ") for b in todo):
            cases.append(pytest.param(page, id=str(page.relative_to(ROOT)), marks=[pytest.mark.slow]))
    return cases


@pytest.mark.parametrize("page", _runnable_pages())
def test_every_code_block_of_the_page_runs_as_written(page: Path, tmp_path: Path) -> None:
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    for k, block in enumerate(blocks(page.read_text()), 1):
        _play(block, k, tmp_path)
