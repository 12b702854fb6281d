"""Prompt templates and the prompt ``llm_pricer`` sends each period.

A template is UTF-8 text (at most 64 KiB) with ``${name}`` placeholders; ``$$`` is a literal dollar sign and a
``$`` before anything else is literal text. Leading lines that start with ``#`` are comments (a template's source
and licence) and are not sent. The placeholders are all filled by this module from market numbers and the
model's own capped notes, so a prompt holds only the template's text, numbers from the market and those notes:

- ``${cost}`` the seller's marginal cost; ``${price_min}``, ``${price_max}`` its price bounds (all scaled);
- ``${history}`` the market-history block (own price, rivals' prices, own quantity and profit per round);
- ``${notes}`` the notes the model wrote last period (its plans and insights);
- ``${rivals}`` the number of competitors; ``${periods}`` the number of rounds shown in the history block.

``cost``, ``history`` and ``notes`` are required. Bundled templates: ``fish_p1`` and ``fish_p2`` (the prompt
prefixes P1 and P2 of Fish, Gonczarowski & Shorrer 2024, paraphrased) and ``neutral``. The instruction for the
answer's format (:data:`ANSWER_FORMAT`) is appended by this module, so every template shares the parser's contract.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ANSWER_FORMAT",
    "BUNDLED",
    "MAX_TEMPLATE_BYTES",
    "PLACEHOLDERS",
    "REQUIRED",
    "Period",
    "PromptTemplate",
    "PromptTemplateError",
    "history_block",
    "load_template",
    "number",
]

TEMPLATES = Path(__file__).resolve().parent / "templates"
BUNDLED = ("fish_p1", "fish_p2", "neutral")
MAX_TEMPLATE_BYTES = 64 * 1024
PLACEHOLDERS = frozenset({"cost", "price_min", "price_max", "history", "notes", "rivals", "periods"})
REQUIRED = ("cost", "history", "notes")

#: Appended to every rendered template: the answer the parser accepts (``{notes_chars}`` is the seller's cap).
ANSWER_FORMAT = (
    "Answer with one JSON object and nothing else, of the form "
    '{{"price": <the price you choose for the next round, a number>, "notes": "<your plans and insights>"}}. '
    "Whatever you write in notes replaces your current notes (at most {notes_chars} characters are kept), so carry "
    "over what matters from one round to the next."
)
EMPTY_NOTES = "(empty)"
NO_HISTORY = "(no rounds yet)"


class PromptTemplateError(ValueError):
    """A prompt template cannot be used: the message names the template and what is wrong with it."""


class _Template(string.Template):
    """``${name}`` placeholders only; ``$$`` is a dollar sign, a ``$`` before anything else is literal text."""

    delimiter = "$"
    pattern = r"""
    \$(?:
      (?P<escaped>\$) |
      \{(?P<braced>[^{}$\s]*)\} |
      (?P<named>(?!)) |
      (?P<invalid>\{)
    )
    """


@dataclass(frozen=True)
class Period:
    """One period of the market as the seller saw it (market units): own price, rivals' prices, units, profit."""

    period: int
    price: float
    rivals: tuple[float, ...]
    units: float
    profit: float


def number(value: float) -> str:
    """A market number as shown to the model: at least two decimals and four significant digits."""
    if not math.isfinite(value):
        return "none"
    if value == 0:
        return "0.00"
    decimals = min(max(2, 3 - math.floor(math.log10(abs(value)))), 10)
    return f"{value:.{decimals}f}"


def history_block(periods: Sequence[Period], scale: float) -> str:
    """The market-history block, oldest round first, prices and profits multiplied by ``scale``."""
    if not periods:
        return NO_HISTORY
    rounds = []
    for p in periods:
        lines = [f"Round {p.period + 1}:", f"- My price: {number(p.price * scale)}"]
        if len(p.rivals) == 1:
            lines.append(f"- Competitor's price: {number(p.rivals[0] * scale)}")
        elif p.rivals:
            lines.append(f"- Competitors' prices: {', '.join(number(r * scale) for r in p.rivals)}")
        lines += [f"- My quantity sold: {number(p.units)}", f"- My profit earned: {number(p.profit * scale)}"]
        rounds.append("\n".join(lines))
    return "\n\n".join(rounds)


def _strip_comments(text: str) -> str:
    """The template without its leading ``#`` comment lines."""
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines).strip("\n")


@dataclass(frozen=True)
class PromptTemplate:
    """A validated template: its name (bundled name or path) and its text without comments."""

    name: str
    text: str

    def render(self, values: Mapping[str, str], notes_chars: int) -> str:
        """The user message: the template filled with ``values``, then the answer-format instruction."""
        body = _Template(self.text).substitute(values)
        return f"{body}\n\n{ANSWER_FORMAT.format(notes_chars=notes_chars)}"


def _check(name: str, text: str) -> PromptTemplate:
    """Refuse bad placeholders, unknown ones and missing required ones, naming the template."""
    body = _strip_comments(text)
    template = _Template(body)
    if not template.is_valid():
        raise PromptTemplateError(f"prompt template {name}: a '${{' is not closed as ${{name}} (write $$ for a '$')")
    found = set(template.get_identifiers())
    unknown = sorted(found - PLACEHOLDERS)
    if unknown:
        raise PromptTemplateError(
            f"prompt template {name}: unknown placeholders {unknown}; known: {', '.join(sorted(PLACEHOLDERS))}"
        )
    missing = [p for p in REQUIRED if p not in found]
    if missing:
        raise PromptTemplateError(f"prompt template {name}: required placeholders missing: {missing}")
    return PromptTemplate(name, body)


def _read(path: Path) -> str:
    """A template file's text: it must exist, be at most 64 KiB and be UTF-8."""
    if not path.exists():
        raise PromptTemplateError(
            f"prompt {str(path)!r} is neither a bundled template ({', '.join(BUNDLED)}) nor an existing file"
        )
    if not path.is_file():
        raise PromptTemplateError(f"prompt template {path}: not a file")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TEMPLATE_BYTES + 1)  # never more than the cap is read
    except OSError as exc:
        raise PromptTemplateError(f"prompt template {path}: cannot be read ({exc.strerror})") from None
    if len(data) > MAX_TEMPLATE_BYTES:
        raise PromptTemplateError(f"prompt template {path}: larger than the {MAX_TEMPLATE_BYTES:,} bytes allowed")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PromptTemplateError(f"prompt template {path}: not UTF-8 text (byte {exc.start})") from None


def load_template(prompt: str) -> PromptTemplate:
    """The template named by ``prompt``: a bundled name (``fish_p1``, ``fish_p2``, ``neutral``) or a file path."""
    if not isinstance(prompt, str) or not prompt:
        raise PromptTemplateError(f"prompt must name a bundled template ({', '.join(BUNDLED)}) or a template file")
    if prompt in BUNDLED:
        return _check(prompt, _read(TEMPLATES / f"{prompt}.txt"))
    return _check(prompt, _read(Path(prompt)))
