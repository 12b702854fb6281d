"""The sweep file: validation against its base (located, one line per problem, did-you-mean, valid paths listed),
the design's expansion (grid, zip, random, Latin hypercube) and its JSON Schema."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from marketsim.cli.app import main
from marketsim.config.schema import file_schema
from marketsim.config.sweep import Range, Sweep, load_sweep
from marketsim.config.yamlsource import SourceError

ROOT = Path(__file__).resolve().parents[1]
HEAD = "name: s\nbase: q.yaml\n"
GOOD = HEAD + "axes:\n  consumers.mu: [0.1, 0.25]\n  sellers[0].params.price: {low: 1.5, high: 2.5, num: 3}\n"

#: malformed sweep → (line, the field the problem names, a phrase of its message)
MALFORMED = {
    HEAD + "axes:\n  consumer.mu: [0.1]\n": (4, "axes.consumer.mu", "did you mean 'consumers.mu'?"),
    HEAD + "axes:\n  consumers.mu: [-1]\n": (4, "axes.consumers.mu", "greater than or equal to 0"),
    HEAD + "axes:\n  sellers[0].params.prize: [1.0]\n": (4, "axes.sellers[0].params.prize", "did you mean 'price'?"),
    HEAD + "axes:\n  sellers[9].cost: [1.0]\n": (4, "axes.sellers[9].cost", "no item 9"),
    HEAD + "axes:\n  sellers[3].params.grid: [1]\n": (4, "axes.sellers[3].params.grid", "grid must be >= 3"),
    HEAD + "axes:\n  sellers[0].cost: [5.0]\n": (4, "axes.sellers[0].cost", "above price_max"),
    HEAD + "axes:\n  consumers..mu: [1]\n": (4, "axes.consumers..mu", "is not a dotted path"),
    HEAD + "axes:\n  consumers.mu: []\n": (4, "axes.consumers.mu", "at least one value"),
    HEAD + "axes: {}\n": (3, "axes", "at least 1"),
    HEAD + "axes:\n  consumers.mu: {low: 0.5, high: 0.1, num: 3}\n": (4, "axes.consumers.mu.high", "below low"),
    HEAD + "axes:\n  consumers.mu: {low: 0.1, high: 0.5}\n": (4, "axes.consumers.mu", "needs num"),
    HEAD + "axes:\n  consumers.mu: {low: 0, high: 1, num: 3, scale: log}\n": (4, "axes.consumers.mu.low", "log scale"),
    HEAD + "combine: zip\naxes:\n  consumers.mu: [0.1, 0.2]\n  consumers.arrival: [1.0]\n": (
        3,
        "combine",
        "one length",
    ),
    HEAD + "combine: random\naxes:\n  consumers.mu: {low: 0.1, high: 0.5}\n": (3, "combine", "random needs samples"),
    HEAD + "combine: latin_hypercube\nsamples: 4\naxes:\n  consumers.mu: [0.1]\n": (6, "axes.consumers.mu", "ranges"),
    HEAD + "combin: zip\naxes:\n  consumers.mu: [0.1]\n": (3, "combin", "did you mean 'combine'?"),
    HEAD + "job: tournament\naxes:\n  consumers.mu: [0.1]\n": (3, "job", "runs run or experiment"),
    HEAD + "metrics: [delta, mean_prise]\naxes:\n  consumers.mu: [0.1]\n": (3, "metrics[1]", "'mean_price'"),
    HEAD + "repetitions: 0\naxes:\n  consumers.mu: [0.1]\n": (3, "repetitions", "greater than or equal to 1"),
    HEAD + "seed: '7'\naxes:\n  consumers.mu: [0.1]\n": (3, "seed", "not text"),
    "name: s\nbase: missing.yaml\naxes:\n  consumers.mu: [0.1]\n": (2, "base", "no such file: missing.yaml"),
    "name: s\nbase: other.yaml\naxes:\n  consumers.mu: [0.1]\n": (2, "base", "a sweep varies one of those"),
    HEAD + "search: {metric: delta, trials: 0}\naxes:\n  consumers.mu: {low: 0.1, high: 0.5}\n": (
        3,
        "search.trials",
        "greater than or equal to 1",
    ),
    HEAD + "search: {metric: dleta, trials: 5}\naxes:\n  consumers.mu: {low: 0.1, high: 0.5}\n": (
        3,
        "search.metric",
        "did you mean 'delta'?",
    ),
    "name: s\nbase: t.yaml\naxes:\n  market.consumers.muu: [0.1]\n": (4, "axes.market.consumers.muu", "'mu'"),
    "name: s\nbase: t.yaml\naxes:\n  entrants[1].params.markupp: [0.1]\n": (
        4,
        "axes.entrants[1].params.markupp",
        "'markup'",
    ),
    "name: s\nbase: t.yaml\naxes:\n  entrants[12].params.markup: [0.1]\n": (
        4,
        "axes.entrants[12].params.markup",
        "no item 12",
    ),
    "name: s\nbase: f.yaml\naxes:\n  family.horizon: [0, 10]\n": (4, "axes.family.horizon", "value 0"),
    "name: s\nbase: f.yaml\naxes:\n  horizon: [10]\n": (4, "axes.horizon", "unknown field 'horizon'"),
}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with the quickstart as q.yaml, a tournament as t.yaml, a family as f.yaml and another sweep as
    other.yaml."""
    shutil.copy(ROOT / "scenarios" / "quickstart.yaml", tmp_path / "q.yaml")
    shutil.copy(ROOT / "scenarios" / "tournament_quick.yaml", tmp_path / "t.yaml")
    shutil.copy(ROOT / "scenarios" / "meta_pricing.yaml", tmp_path / "f.yaml")
    (tmp_path / "other.yaml").write_text(GOOD)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_at_least_fifteen_malformed_sweeps_are_covered() -> None:
    assert len(MALFORMED) >= 15


@pytest.mark.parametrize("text", list(MALFORMED), ids=[f"case{k}" for k in range(len(MALFORMED))])
def test_a_malformed_sweep_gets_one_located_line_and_nothing_is_written(
    text: str, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line, field, phrase = MALFORMED[text]
    (folder / "sweep.yaml").write_text(text)
    before = sorted(p.name for p in folder.iterdir())
    assert main(["validate", "sweep.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"sweep.yaml:{line}:"), err[0]
    assert f": {field}: " in err[0] and phrase in err[0], err[0]
    assert sorted(p.name for p in folder.iterdir()) == before


def test_a_good_sweep_validates_and_names_its_job_and_metrics(folder: Path) -> None:
    (folder / "sweep.yaml").write_text(GOOD)
    loaded = load_sweep(folder / "sweep.yaml")
    assert (loaded.job, loaded.base_kind, loaded.metrics) == ("run", "scenario", ("delta", "mean_price"))
    assert loaded.base_path == (folder / "q.yaml").resolve()
    experiment = load_sweep_text(folder, GOOD.replace("axes:", "job: experiment\naxes:"))
    assert experiment.job == "experiment" and experiment.metrics == ("delta", "convergence_steps")


def load_sweep_text(folder: Path, text: str):
    (folder / "sweep.yaml").write_text(text)
    return load_sweep(folder / "sweep.yaml")


def _sweep(**fields) -> Sweep:
    return Sweep.model_validate({"name": "s", "base": "q.yaml", **fields})


def test_grid_is_every_combination_in_a_fixed_order() -> None:
    sweep = _sweep(axes={"a": [1, 2], "b": {"low": 0.0, "high": 1.0, "num": 3}})
    assert sweep.points() == [
        {"a": 1, "b": 0.0},
        {"a": 1, "b": 0.5},
        {"a": 1, "b": 1.0},
        {"a": 2, "b": 0.0},
        {"a": 2, "b": 0.5},
        {"a": 2, "b": 1.0},
    ]


def test_zip_pairs_the_axes_and_ranges_can_be_logarithmic_or_whole() -> None:
    sweep = _sweep(combine="zip", axes={"a": [1, 2, 3], "b": {"low": 1e-6, "high": 1e-4, "num": 3, "scale": "log"}})
    assert [p["a"] for p in sweep.points()] == [1, 2, 3]
    assert [p["b"] for p in sweep.points()] == pytest.approx([1e-6, 1e-5, 1e-4])
    counts = _sweep(axes={"sellers[0].count": {"low": 2, "high": 4, "num": 3, "integer": True}}).points()
    assert [p["sellers[0].count"] for p in counts] == [2, 3, 4]
    assert all(isinstance(p["sellers[0].count"], int) for p in counts)


@pytest.mark.parametrize("combine", ["random", "latin_hypercube"])
def test_samples_are_seeded_inside_their_ranges(combine: str) -> None:
    axes = {"a": {"low": 0.0, "high": 1.0}, "b": {"low": 10.0, "high": 20.0}}
    first = _sweep(combine=combine, samples=50, seed=3, axes=axes).points()
    assert first == _sweep(combine=combine, samples=50, seed=3, axes=axes).points()  # reproducible
    assert first != _sweep(combine=combine, samples=50, seed=4, axes=axes).points()
    assert len(first) == 50 and all(0 <= p["a"] < 1 and 10 <= p["b"] < 20 for p in first)
    if combine == "latin_hypercube":  # one sample in each of the 50 strata of every axis
        assert sorted(int(p["a"] * 50) for p in first) == list(range(50))
        assert sorted(int((p["b"] - 10) / 10 * 50) for p in first) == list(range(50))


def test_a_range_value_at_a_quantile() -> None:
    linear, log = Range(low=1.0, high=3.0), Range(low=1.0, high=100.0, scale="log")
    assert (linear.at(0.0), linear.at(0.5)) == (1.0, 2.0)
    assert log.at(0.5) == pytest.approx(10.0)
    assert Range(low=1, high=4, integer=True).at(0.99) == 4


def test_the_sweep_schema_is_draft_2020_12_and_accepts_what_validates() -> None:
    schema = file_schema("sweep")
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    import yaml

    good = yaml.safe_load(GOOD)
    assert not list(validator.iter_errors(good))
    assert list(validator.iter_errors({**good, "repetitions": 0}))
    assert list(validator.iter_errors({**good, "combine": "spiral"}))
    assert json.loads(json.dumps(schema))["title"] == "Sweep"


def test_a_sweep_over_a_tournament_or_a_family_names_its_job(folder: Path) -> None:
    tour = load_sweep_text(folder, "name: s\nbase: t.yaml\naxes:\n  repetitions: [1, 2]\n")
    assert (tour.job, tour.base_kind) == ("tournament", "tournament")
    meta = load_sweep_text(folder, "name: s\nbase: f.yaml\naxes:\n  family.horizon: [25, 50]\n")
    assert (meta.job, meta.base_kind) == ("meta-eval", "family")
    with pytest.raises(SourceError, match="a tournament base runs tournament, not run"):
        load_sweep_text(folder, "name: s\nbase: t.yaml\njob: run\naxes:\n  repetitions: [1]\n")
