"""The markets as PettingZoo and Gymnasium environments (issue #13): the peers' own conformance suites on the
bundled scenarios, step-for-step equality with ``marketsim run``, the batched vector env against the single one,
and the env's own promises (truncation, termination, infos, rivals that learn or are frozen, clear errors)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium", reason="the 'rl' extra is not installed")
pytest.importorskip("pettingzoo", reason="the 'rl' extra is not installed")

from gymnasium.utils.env_checker import check_env  # noqa: E402
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test  # noqa: E402

from marketsim.config.scenario import Scenario  # noqa: E402
from marketsim.config.validate import load_scenario  # noqa: E402
from marketsim.config.yamlsource import SourceError  # noqa: E402
from marketsim.envs import EnvError, aec_env, gym_env, parallel_env, vector_env  # noqa: E402
from marketsim.envs.registration import BUNDLED  # noqa: E402
from marketsim.hookspecs import hookimpl  # noqa: E402
from marketsim.market.run import simulate  # noqa: E402
from marketsim.registry import load_registry  # noqa: E402
from marketsim.strategy import Observation, Strategy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"

#: (scenario, options): discrete and continuous, expected and sampled demand, capacities, stock, seasons, a network
#: (the last two, a 5,000-consumer network and a 50,000-consumer oligopoly, in the slow suite)
CASES = [
    ("deep_duopoly.yaml", {}),
    ("calvano2020.yaml", {"action": "continuous", "reward": "profit_gain"}),
    ("quickstart.yaml", {}),
    pytest.param("social_network.yaml", {"action": "continuous"}, marks=pytest.mark.slow),
    pytest.param("oligopoly.yaml", {"max_steps": 120}, marks=pytest.mark.slow),
]
IDS = [
    "deep_duopoly-discrete",
    "calvano2020-continuous",
    "quickstart-discrete",
    "social_network-continuous",
    "oligopoly",
]


@pytest.fixture(autouse=True)
def _quiet_checkers():
    with warnings.catch_warnings():  # the checkers warn about unbounded or unnormalised spaces; not failures
        warnings.simplefilter("ignore")
        yield


# --- A. the peers' own suites -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_pettingzoo_parallel_api_and_seed_tests_pass(name: str, options: dict) -> None:
    path = SCENARIOS / name
    parallel_api_test(parallel_env(path, **options), num_cycles=150)
    parallel_seed_test(lambda: parallel_env(path, **options), num_cycles=60)


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_pettingzoo_api_test_passes_on_the_aec_form(name: str, options: dict) -> None:
    api_test(aec_env(SCENARIOS / name, **options), num_cycles=60)


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_gymnasium_env_checker_passes_on_the_single_seller_env(name: str, options: dict) -> None:
    env = gym_env(SCENARIOS / name, **options)
    check_env(env, skip_render_check=False)
    check_env(gym_env(SCENARIOS / name, render_mode="ansi", **options), skip_render_check=False)


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_stable_baselines3_env_checker_passes(name: str, options: dict) -> None:
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker", reason="the 'sb3' extra")
    sb3_checker.check_env(gym_env(SCENARIOS / name, **options), warn=True)


@pytest.mark.parametrize("env_id", sorted(BUNDLED))
def test_every_bundled_id_makes_a_checked_env(env_id: str) -> None:
    env = gymnasium.make(env_id, max_steps=40)  # through Gymnasium's own checker wrapper
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    for _ in range(40):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert np.isfinite(reward) and not terminated
    assert truncated and info["step"] == 40


# --- A. the same seed and actions give the same trajectory as `marketsim run` -----------------------------


class Replay(Strategy):
    """Posts the prices it was given, one per step (stands in for the env's agent inside `marketsim run`)."""

    name = "replay"

    def __init__(self, prices: list[float] | None = None) -> None:
        self.prices = list(prices or [])

    def price(self, obs: Observation) -> float:
        return self.prices[obs.step]


class ReplayPlugin:
    @hookimpl
    def register_strategies(self, register) -> None:  # noqa: ANN001
        register(Replay)


def _replayed(scenario: Scenario, prices: dict[str, list[float]], steps: int) -> Scenario:
    data = scenario.model_dump(by_alias=True)
    data["sellers"] = [s.model_dump(by_alias=True) for s in scenario.expanded_sellers()]  # firm → firm_1, firm_2
    for seller in data["sellers"]:
        if seller["name"] in prices:
            seller["strategy"], seller["params"] = "replay", {"prices": prices[seller["name"]]}
    return Scenario.model_validate({**data, "steps": steps})


@pytest.mark.parametrize(
    ("name", "agents", "steps"),
    [
        ("quickstart.yaml", ["steady", "oracle"], 60),  # sampled demand, rules around the agents
        ("social_network.yaml", ["entrant"], 60),  # a word-of-mouth network
        ("oligopoly.yaml", ["premium", "clearance"], 60),  # capacity, stock and restocking, seasons, a shock
        ("calvano2020.yaml", ["firm_1"], 300),  # a Q-learning rival that explores and learns
    ],
)
def test_same_seed_and_actions_give_the_trajectory_of_marketsim_run(name: str, agents: list[str], steps: int) -> None:
    registry = load_registry(plugins=[("replay", ReplayPlugin())])
    scenario = load_scenario(SCENARIOS / name, registry)
    env = parallel_env(scenario, agents=agents, registry=registry)
    env.reset(seed=scenario.seed)
    rng = np.random.default_rng(0)
    posted: dict[str, list[float]] = {a: [] for a in agents}
    rows = []
    for _ in range(steps):
        actions = {a: int(rng.integers(env.action_space(a).n)) for a in agents}
        for a, k in actions.items():
            posted[a].append(float(env.core.actions[a].grid[k]))
        *_, infos = env.step(actions)
        rows.append(infos[agents[0]])
    run = simulate(_replayed(scenario, posted, steps), registry).steps
    for seller in run.filter(like=".price").columns.str.removesuffix(".price"):
        for field, key in (("price", "prices"), ("units", "units"), ("profit", "profits")):
            mine = [row[key][seller] for row in rows]
            assert np.array_equal(run[f"{seller}.{field}"].to_numpy(), mine), (seller, field)
    assert np.array_equal(run["consumer_surplus"].to_numpy(), [row["consumer_surplus"] for row in rows])


# --- the batched vector env ------------------------------------------------------------------------------


@pytest.mark.parametrize("reward", ["profit", "profit_gain"])
@pytest.mark.parametrize("action", ["discrete", "continuous"])
def test_vector_env_rows_equal_the_single_env(action: str, reward: str) -> None:
    path, options = SCENARIOS / "deep_duopoly.yaml", {"seller": "learner", "action": action, "reward": reward}
    single = gym_env(path, max_steps=25, **options)
    batched = vector_env(path, num_envs=4, max_steps=25, **options)
    obs, _ = single.reset(seed=9)
    vobs, _ = batched.reset(seed=9)
    actions = batched.action_space.sample()
    for _ in range(60):
        assert np.allclose(vobs[0], obs, rtol=0, atol=1e-6)  # row 0 gets the single env's actions
        obs, reward_, _, truncated, _ = single.step(actions[0])
        vobs, rewards, terminated, truncations, infos = batched.step(actions)
        assert rewards[0] == pytest.approx(reward_, rel=1e-12, abs=1e-12)
        assert not terminated.any() and truncations.all() == truncated
        if truncated:  # same-step autoreset: the last observation is in the infos
            assert np.allclose(infos["final_obs"][0], obs, atol=1e-6)
            obs, _ = single.reset()
        actions = batched.action_space.sample()  # other rows, other prices: rows must not leak into each other


def test_vector_env_is_made_by_gymnasium_and_reproducible() -> None:
    venv = gymnasium.make_vec("marketsim/DeepDuopoly-v0", num_envs=16, vectorization_mode="vector_entry_point")
    assert venv.num_envs == 16 and venv.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.SAME_STEP
    runs = []
    for _ in range(2):
        obs, _ = venv.reset(seed=4)
        actions = np.random.default_rng(1).integers(0, 15, size=(30, 16))
        runs.append([venv.step(a)[1] for a in actions])
    assert np.array_equal(runs[0], runs[1])


def test_vector_env_samples_demand_when_the_scenario_does() -> None:
    venv = vector_env(SCENARIOS / "quickstart.yaml", seller="oracle", num_envs=8, max_steps=10)
    venv.reset(seed=2)
    _, rewards, *_ = venv.step(np.full(8, 7))
    assert len(set(rewards.tolist())) > 1  # the same prices, different consumers' draws per row


@pytest.mark.parametrize(
    ("name", "seller", "why"),
    [
        ("social_network.yaml", "entrant", "network"),
        ("oligopoly.yaml", "premium", "shocks"),
        ("calvano2020.yaml", "firm_1", "reactive rule"),
    ],
)
def test_vector_env_refuses_what_the_batched_backend_cannot_clear(name: str, seller: str, why: str) -> None:
    with pytest.raises(EnvError, match=why) as info:
        vector_env(SCENARIOS / name, seller=seller, num_envs=2)
    assert "SyncVectorEnv" in str(info.value)


# --- the env's own promises ---------------------------------------------------------------------------------


def test_episodes_truncate_at_max_steps_and_never_terminate_a_continuing_market() -> None:
    env = parallel_env(SCENARIOS / "deep_duopoly.yaml", max_steps=30)
    env.reset(seed=0)
    for t in range(1, 31):
        _, _, terminations, truncations, _ = env.step({a: 3 for a in env.agents})
        assert not any(terminations.values())
        assert all(truncations.values()) == (t == 30)
    assert env.agents == []


def test_an_agent_whose_stock_runs_out_for_good_is_terminated() -> None:
    scenario = Scenario.model_validate(
        {
            "name": "sell_out",
            "steps": 100,
            "consumers": {"size": 1000, "wtp": {"distribution": "uniform", "low": 0, "high": 1}},
            "sellers": [
                {"name": "shop", "strategy": "fixed_price", "params": {"price": 1.0}, "inventory": {"initial": 900}},
                {"name": "other", "strategy": "fixed_price", "params": {"price": 2.0}},
            ],
        }
    )
    env = parallel_env(scenario, agents=["shop", "other"])
    obs, _ = env.reset(seed=1)
    assert "inventory" in env.core.layouts["shop"].names and obs["shop"][-1] == pytest.approx(1.0)
    for _ in range(100):
        _, _, terminations, truncations, _ = env.step({a: 0 for a in env.agents})
        if terminations.get("shop"):
            break
    assert terminations["shop"] and not truncations["shop"] and env.agents == ["other"]
    assert env.core.market.state.inventory[0] == 0


def test_infos_carry_every_sellers_books_and_the_profit_gain() -> None:
    env = parallel_env(SCENARIOS / "deep_duopoly.yaml", reward="profit_gain")
    _, opening = env.reset(seed=0)
    assert all(np.isnan(g) for g in opening["learner"]["profit_gain"].values())  # nothing sold yet: no Δ
    _, rewards, _, _, infos = env.step({"learner": 14, "rival": 0})
    info = infos["learner"]
    assert set(info) >= {"prices", "units", "profits", "profit_gain", "consumer_surplus", "step"}
    bench = env.core.market.benchmarks
    profits = np.array([info["profits"]["learner"], info["profits"]["rival"]])
    assert np.allclose(list(info["profit_gain"].values()), bench.profit_gain(profits))
    assert rewards["learner"] == pytest.approx(info["profit_gain"]["learner"])
    assert info["prices"]["learner"] == pytest.approx(env.core.actions["learner"].grid[14])


def test_observation_vector_follows_the_documented_layout() -> None:
    env = gym_env(SCENARIOS / "deep_duopoly.yaml", seller="learner")
    env.reset(seed=0)
    obs, *_ = env.step(14)
    layout, market = env.core.layouts["learner"], env.core.market
    assert layout.names == ["own_price", "rival_price_1", "own_units", "own_profit"]
    state = market.state
    span = market.price_max[0] - market.price_min[0]
    assert obs[0] == pytest.approx((state.prices[0] - market.price_min[0]) / span, abs=1e-6)
    assert obs[1] == pytest.approx((state.prices[1] - market.price_min[0]) / span, abs=1e-6)
    assert obs[2] == pytest.approx(state.units[0] / layout.unit_scale, rel=1e-6)
    assert obs[3] == pytest.approx(state.profits[0] / layout.profit_scale, rel=1e-6)
    nash = np.asarray(market.benchmarks.nash.prices)
    assert layout.profit_scale == pytest.approx(market.demand.profits(nash)[0])


def _rival_q(env) -> np.ndarray:  # noqa: ANN001
    return env.core.rivals[1].q.copy()


@pytest.mark.parametrize("frozen", [False, True])
def test_learning_rivals_keep_learning_unless_frozen(frozen: bool) -> None:
    env = gym_env(SCENARIOS / "calvano2020.yaml", seller="firm_1", freeze_rivals=frozen, max_steps=500)
    env.reset(seed=0)
    before = _rival_q(env)
    for _ in range(200):
        env.step(env.action_space.sample())
    assert np.array_equal(_rival_q(env), before) == frozen


def test_unseeded_resets_are_reproducible_and_distinct() -> None:
    def first_rewards(env) -> list[float]:  # noqa: ANN001
        out = []
        for _ in range(3):
            env.reset()
            out.append(env.step(0)[1])
        return out

    path = SCENARIOS / "quickstart.yaml"
    a, b = first_rewards(gym_env(path, seller="oracle")), first_rewards(gym_env(path, seller="oracle"))
    assert a == b and len(set(a)) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seller": "lerner"}, "no seller named 'lerner' (did you mean 'learner'?)"),
        ({"reward": "revenue"}, "reward must be one of profit, profit_gain"),
        ({"action": "box"}, "action must be 'discrete' or 'continuous'"),
        ({"max_steps": 0}, "max_steps must be >= 1"),
    ],
)
def test_bad_options_get_a_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(EnvError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        gym_env(SCENARIOS / "deep_duopoly.yaml", **kwargs)


def test_a_bad_action_is_refused_with_its_range() -> None:
    env = gym_env(SCENARIOS / "deep_duopoly.yaml")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside 0..14"):
        env.step(15)


def test_a_missing_extra_is_named(tmp_path: Path) -> None:
    probe = "\n".join(
        [
            "import sys; sys.modules['pettingzoo'] = None",  # as if the extra were not installed
            "import marketsim.envs.layout",  # what the sb3_policy seller needs still imports
            "try:\n from marketsim.envs import gym_env",
            "except ImportError as e:\n print(type(e).__name__, e)",
        ]
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.startswith("MissingExtraError") and "'rl' extra" in out and "pip install" in out


def test_render_shows_every_sellers_price() -> None:
    env = gym_env(SCENARIOS / "deep_duopoly.yaml", render_mode="ansi")
    env.reset(seed=0)
    env.step(0)
    line = env.render()
    assert line.startswith("t=1") and "learner" in line and "rival" in line


def test_spaces_hold_every_observation_of_a_long_random_run() -> None:
    env = parallel_env(SCENARIOS / "oligopoly.yaml", max_steps=150)
    obs, _ = env.reset(seed=5)
    seen = SimpleNamespace(n=0)
    while env.agents:
        obs, *_ = env.step({a: env.action_space(a).sample() for a in env.agents})
        for a, o in obs.items():
            assert env.observation_space(a).contains(o), (a, o)
            seen.n += 1
    assert seen.n == 150 * 6


def test_an_agents_seat_may_name_a_strategy_that_is_not_installed(tmp_path: Path) -> None:
    """The agent prices its own seat, so the seat's strategy is never built: deep_duopoly's `dqn` learner seat
    needs no torch, while the rival's strategy (and everything else) is still validated with located errors."""
    text = (SCENARIOS / "deep_duopoly.yaml").read_text().replace("strategy: dqn", "strategy: not_installed_here")
    path = tmp_path / "duopoly.yaml"
    path.write_text(text)
    env = gym_env(path, seller="learner")
    env.reset(seed=0)
    assert env.step(3)[1] > 0 and type(env.core.rivals[1]).name == "match_lowest"
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("strategy: match_lowest", "strategy: match_lowst"))
    with pytest.raises(
        SourceError, match=r"bad.yaml:21:.*unknown strategy 'match_lowst' \(did you mean 'match_lowest'\?\)"
    ):
        gym_env(bad, seller="learner")
