"""The ``sb3_policy`` seller: a Stable-Baselines3 policy trained on ``marketsim.envs``, played greedily.

Loading is safe by construction: of the ``.zip`` that an SB3 model's ``save`` writes, only ``policy.pth`` is
read, with ``torch.load(weights_only=True)`` (named tensors only: a pickle that would build any other object is
refused), into a policy rebuilt with SB3's own class for the declared ``algo`` (``DQNPolicy`` or
``ActorCriticPolicy``), ``net_arch`` and ``activation``, on the spaces the env gave the seller. The zip's
pickled ``data`` entry and SB3's ``load`` are never used. The observation vector and the action's price are
``marketsim.envs.layout``'s, so the seller sees exactly the numbers the policy was trained on.

torch, SB3, Gymnasium and PettingZoo are imported when a seller is set up, never when the plugin is discovered.
"""

from __future__ import annotations

import io
import math
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from marketsim.exceptions import MissingExtraError
from marketsim.learning.checkpoint import CheckpointError
from marketsim.market.step import state_observations
from marketsim.strategy import MarketInfo, Observation, Strategy

if TYPE_CHECKING:  # marketsim.envs imports gymnasium and pettingzoo: loaded when a seller is set up, not at discovery
    from marketsim.envs.layout import ActionMap, ObservationLayout

__all__ = ["PolicyFileError", "SavedShape", "Sb3Policy", "build_policy", "read_weights", "saved_shape"]

ALGOS = ("dqn", "ppo", "a2c")
ACTIVATIONS = ("relu", "tanh")
DEFAULT_ACTIVATION = {"dqn": "relu", "ppo": "tanh", "a2c": "tanh"}  # SB3's defaults for each algorithm
DEFAULT_NET_ARCH = (64, 64)  # SB3's default hidden layers for DQN, and for PPO's and A2C's actor and critic
MAX_WEIGHTS_BYTES = 256 * 2**20  # a policy.pth larger than this is refused before it is decompressed


class PolicyFileError(CheckpointError):
    """A policy file cannot be played as declared: the message names the file, what is wrong and what to fix."""


def import_sb3() -> tuple[Any, Any]:
    """torch and stable_baselines3, or a ``MissingExtraError`` naming the ``sb3`` extra."""
    try:
        import stable_baselines3
        import torch
    except ImportError as exc:
        raise MissingExtraError(
            f"sb3_policy needs the 'sb3' extra ({exc.name} is not installed): pip install -e '.[sb3]'"
        ) from exc
    return torch, stable_baselines3


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (torch's refusals run to many lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _policy_bytes(path: Path) -> bytes:
    """The raw bytes of the zip's ``policy.pth`` entry; no other entry is opened."""
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                entry = archive.getinfo("policy.pth")
            except KeyError:
                raise PolicyFileError(
                    f"{path}: no policy.pth inside: not a zip written by an SB3 model's save()"
                ) from None
            if entry.file_size > MAX_WEIGHTS_BYTES:
                raise PolicyFileError(
                    f"{path}: policy.pth unpacks to {entry.file_size:,} bytes: too large to be a policy"
                )
            return archive.read(entry)
    except FileNotFoundError:
        raise PolicyFileError(
            f"{path}: no such file (sb3_policy's `path` names the .zip of an SB3 model.save)"
        ) from None
    except zipfile.BadZipFile:
        raise PolicyFileError(
            f"{path}: not a zip file (sb3_policy loads the .zip an SB3 model's save() writes)"
        ) from None
    except OSError as exc:
        raise PolicyFileError(f"{path}: cannot be read ({exc})") from None


def read_weights(path: str | Path) -> dict[str, Any]:
    """The named tensors of the zip's ``policy.pth``, read with ``torch.load(weights_only=True)`` on the CPU."""
    torch, _ = import_sb3()
    path = Path(path)
    blob = _policy_bytes(path)
    try:
        state = torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
    except Exception as exc:  # torch's UnpicklingError for a refused object, or a damaged file
        raise PolicyFileError(
            f"{path}: policy.pth was refused: only named tensors are loaded, never objects whose unpickling could "
            f"run code ({_first_line(exc)})"
        ) from exc
    named = isinstance(state, dict) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items())
    if not named or not state:
        raise PolicyFileError(f"{path}: policy.pth holds no state dict of named tensors (got {type(state).__name__})")
    return state


@dataclass(frozen=True)
class SavedShape:
    """What a saved policy's tensors say about it: input size, hidden layers, number of outputs, action kind."""

    inputs: int
    hidden: tuple[int, ...]
    outputs: int  # Q-values or action logits (discrete), or the action's dimension (continuous)
    continuous: bool


def _layers(state: Mapping[str, Any], prefix: str) -> list[Any]:
    """The weight matrices ``prefix<k>.weight`` in layer order (SB3's ``create_mlp`` numbering)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.weight")
    found = sorted((int(m.group(1)), v) for k, v in state.items() if (m := pattern.fullmatch(k)))
    return [w for _, w in found]


def _saved_algo(state: Mapping[str, Any]) -> str:
    """The algorithm family the tensor names point to (for an error message)."""
    if "q_net.q_net.0.weight" in state:
        return "a DQN policy (algo: dqn)"
    if "action_net.weight" in state:
        return "an actor-critic policy (algo: ppo or a2c)"
    return "no SB3 MLP policy this seller knows"


def saved_shape(state: Mapping[str, Any], algo: str, path: str | Path) -> SavedShape:
    """Read input size, hidden layers and outputs off the tensors of an ``algo`` policy (MLP, flattened input)."""
    if algo == "dqn":
        weights = _layers(state, "q_net.q_net.")
        if not weights or any(w.ndim != 2 for w in weights):
            raise PolicyFileError(
                f"{path}: no DQN q_net in policy.pth; its tensors are {_saved_algo(state)}: fix `algo`"
            )
        return SavedShape(
            int(weights[0].shape[1]), tuple(int(w.shape[0]) for w in weights[:-1]), int(weights[-1].shape[0]), False
        )
    action = state.get("action_net.weight")
    if action is None or action.ndim != 2:
        raise PolicyFileError(
            f"{path}: no actor-critic action_net in policy.pth; its tensors are {_saved_algo(state)}: fix `algo`"
        )
    hidden = _layers(state, "mlp_extractor.policy_net.")
    inputs = hidden[0].shape[1] if hidden else action.shape[1]
    return SavedShape(int(inputs), tuple(int(w.shape[0]) for w in hidden), int(action.shape[0]), "log_std" in state)


def declared_problem(saved: SavedShape, net_arch: Sequence[int], amap: ActionMap) -> str | None:
    """What in the declared parameters disagrees with the saved policy, and the parameter to fix; None if nothing."""
    if saved.hidden != tuple(net_arch):
        hidden = list(saved.hidden)
        return f"its hidden layers are {hidden}, not net_arch {list(net_arch)}: set net_arch: {hidden}"
    kind = "continuous" if saved.continuous else "discrete"
    if kind != amap.kind:
        return f"it acts with {kind} actions, not {amap.kind}: set action: {kind}"
    if kind == "discrete" and saved.outputs != len(amap.grid):
        n = saved.outputs
        return f"it chooses among {n} prices, not the {len(amap.grid)} of this grid: set grid_size: {n}"
    if kind == "continuous" and saved.outputs != 1:
        return f"its action has {saved.outputs} dimensions; a seller posts one price"
    return None


def build_policy(algo: str, obs_size: int, amap: ActionMap, net_arch: Sequence[int], activation: str) -> Any:
    """An untrained SB3 policy of ``algo``'s class on the env's spaces, built without touching torch's global RNG."""
    torch, _ = import_sb3()
    from gymnasium import spaces
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.dqn.policies import DQNPolicy

    observation_space = spaces.Box(-np.inf, np.inf, shape=(obs_size,), dtype=np.float32)
    action_space = amap.space()  # the env's own action space for this seller
    policy_class = DQNPolicy if algo == "dqn" else ActorCriticPolicy
    fn = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[activation]
    with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten; the global generator is left alone
        torch.manual_seed(0)
        policy = policy_class(observation_space, action_space, _zero_rate, net_arch=list(net_arch), activation_fn=fn)
    policy.set_training_mode(False)
    return policy


def _zero_rate(_progress: float) -> float:
    """The learning-rate schedule the rebuilt policy's (unused) optimiser is given."""
    return 0.0


def load_policy(
    path: str | Path, algo: str, amap: ActionMap, net_arch: Sequence[int], activation: str
) -> tuple[Any, int]:
    """The policy in ``path`` rebuilt as declared, and its observation size; PolicyFileError says what to fix."""
    state = read_weights(path)
    saved = saved_shape(state, algo, path)
    problem = declared_problem(saved, net_arch, amap)
    if problem is not None:
        raise PolicyFileError(f"{path}: the saved {algo} policy does not match the declared parameters: {problem}")
    policy = build_policy(algo, saved.inputs, amap, net_arch, activation)
    try:
        policy.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise PolicyFileError(
            f"{path}: the weights do not fit a {algo} policy with net_arch {list(net_arch)}; check `algo` and "
            f"`net_arch` ({_first_line(exc)})"
        ) from exc
    return policy, saved.inputs


class Sb3Policy(Strategy):
    """Play a Stable-Baselines3 policy trained on ``marketsim.envs`` greedily (its deterministic action each step).

    ``path``: the ``.zip`` an SB3 model's ``save`` wrote. Only its ``policy.pth`` is read, with
    ``torch.load(weights_only=True)``, into a policy rebuilt with SB3's own class for ``algo`` (``dqn``,
    ``ppo``, ``a2c``), hidden layers ``net_arch`` (default SB3's [64, 64]; for PPO and A2C the actor's and the
    critic's) and ``activation`` (``relu`` / ``tanh``, default SB3's for the algo); the pickled ``data`` entry
    is never read. ``action``, ``grid_size``, ``xi`` and ``seasons`` (each sinusoidal demand shock's
    ``[period, phase]``) must be the env's: they fix the action's price and the observation vector
    (``marketsim.envs.layout``), whose stock scale comes from the first observation the seller prices. It does
    not learn; ``greedy_table`` tabulates its greedy action over the grid states for the exact oracle.
    """

    name = "sb3_policy"
    classifier = {"learns": False, "stochastic": False, "needs_torch": True, "observes": ("own", "competitors")}

    def __init__(  # noqa: PLR0913 - the keyword parameters are the strategy's public API (scenario params)
        self,
        path: str,
        algo: str = "dqn",
        net_arch: list[int] | None = None,
        activation: str | None = None,
        action: str = "discrete",
        grid_size: int = 15,
        xi: float = 0.1,
        seasons: list[tuple[float, float]] | None = None,
    ) -> None:
        self.path, self.algo, self.net_arch, self.activation = path, algo, net_arch, activation
        self.action, self.grid_size, self.xi, self.seasons = action, grid_size, xi, seasons
        _check_params(self)
        self.layout: ObservationLayout | None = None
        self.opening: tuple[float, float] | None = None  # stock and capacity of the first observation priced

    @property
    def layers(self) -> tuple[int, ...]:
        """The hidden layers declared (``net_arch``, else SB3's default)."""
        return tuple(self.net_arch) if self.net_arch is not None else DEFAULT_NET_ARCH

    @property
    def activation_name(self) -> str:
        """The activation declared (``activation``, else SB3's default for the algo)."""
        return self.activation or DEFAULT_ACTIVATION[self.algo]

    def policy_file(self) -> Path:
        """The policy file this seller loads: ``path`` (a subclass may pick one per market after ``setup``)."""
        return Path(self.path)

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        """Rebuild the policy from the file's weights (any mismatch with the declared parameters is an error)."""
        import_sb3()  # first: without the extra, say so before anything else can fail
        from marketsim.envs.layout import ActionMap

        super().setup(market, rng)
        self.actions = ActionMap.for_seller(market, self.action, self.grid_size, self.xi)
        self.prices = self.actions.grid
        self.policy, self.inputs = load_policy(
            self.policy_file(), self.algo, self.actions, self.layers, self.activation_name
        )
        self.layout, self.opening = None, None

    @property
    def grid_params(self) -> dict[str, object]:
        """The parameters that rebuild this seller's grid (as the oracle's stand-in learner needs them)."""
        return {"grid_size": self.grid_size, "xi": self.xi}

    def price(self, obs: Observation) -> float:
        """The price of the policy's deterministic action on the observation's vector."""
        if self.layout is None:
            self._open(obs.inventory, obs.capacity)
        action, _ = self.policy.predict(self.layout.encode(obs), deterministic=True)
        return self.actions.price(action)

    def greedy_actions(self, observations: Sequence[Observation]) -> np.ndarray:
        """The policy's deterministic action on each observation (grid indices, or prices when continuous)."""
        layout = self.layout if self.layout is not None else self._layout(math.inf, math.inf)
        vectors = np.stack([layout.encode(obs) for obs in observations])
        actions, _ = self.policy.predict(vectors, deterministic=True)
        return np.asarray(actions).reshape(len(observations), -1)[:, 0]

    def greedy_table(self, grids: np.ndarray) -> np.ndarray:
        """The greedy grid action in every memory-1 grid state, as ``marketsim.market.oracle`` policies are indexed.

        ``grids`` (n, m) are all sellers' price grids (this seller's must be its own); the observations are
        ``state_observations``'. A continuous policy's price is snapped to the nearest grid price. Before the
        seller has priced, the layout is that of a seller without stock or capacity limits (the oracle's markets).
        """
        actions = self.greedy_actions(state_observations(self.market, grids))
        if self.actions.kind == "discrete":
            return actions.astype(np.int64)
        return np.abs(self.prices[None, :] - actions[:, None]).argmin(axis=1).astype(np.int64)

    def state_dict(self) -> dict[str, Any]:
        """The stock and capacity of the first observation priced (the layout's scales); empty before it."""
        if self.opening is None:
            return {}
        return {"inventory": self.opening[0], "capacity": self.opening[1]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the layout's scales from ``state_dict()`` (the weights come from ``path``, not from the state)."""
        if not state:
            self.layout, self.opening = None, None
            return
        if set(state) != {"inventory", "capacity"}:
            raise ValueError(f"sb3_policy state must have keys inventory and capacity, got {sorted(state)}")
        self._open(float(state["inventory"]), float(state["capacity"]))

    def _open(self, inventory: float, capacity: float) -> None:
        """Fix the layout from the first observation's stock and capacity."""
        self.layout, self.opening = self._layout(inventory, capacity), (inventory, capacity)

    def _layout(self, inventory: float, capacity: float) -> ObservationLayout:
        """This seller's observation layout given its opening stock and capacity; it must fit the policy's input."""
        from marketsim.envs.layout import ObservationLayout

        m = self.market
        opening = Observation(
            step=0, own_price=m.price_min, cost=m.costs[m.index], last_units=0.0, last_profit=0.0,
            inventory=inventory, capacity=capacity, competitor_prices=(m.price_min,) * (m.n_sellers - 1),
            price_min=m.price_min, price_max=m.price_max,
        )  # fmt: skip
        layout = ObservationLayout.for_seller(m, opening, [tuple(s) for s in self.seasons or ()])
        if layout.size != self.inputs:
            raise PolicyFileError(
                f"{self.policy_file()}: the policy takes {self.inputs} observation features but this seller's have "
                f"{layout.size} ({', '.join(layout.names)}): the vector depends on the number of sellers, finite "
                "stock and capacity, and `seasons`; set seasons as the env had them, or use a policy trained on this "
                "market"
            )
        return layout


def _check_params(policy: Sb3Policy) -> None:
    """Refuse parameters no policy could be loaded with, naming the parameter."""
    if not isinstance(policy.path, str | Path) or not str(policy.path):
        raise ValueError("path must name the .zip an SB3 model's save() wrote")
    if policy.algo not in ALGOS:
        raise ValueError(f"algo must be one of {', '.join(ALGOS)}, got {policy.algo!r}")
    if policy.activation is not None and policy.activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {policy.activation!r}")
    if policy.action not in ("discrete", "continuous"):
        raise ValueError(f"action must be 'discrete' or 'continuous', got {policy.action!r}")
    if policy.algo == "dqn" and policy.action == "continuous":
        raise ValueError("action 'continuous' needs algo ppo or a2c: SB3's DQN acts on a discrete grid")
    if policy.net_arch is not None and not all(isinstance(k, int) and k > 0 for k in policy.net_arch):
        raise ValueError(f"net_arch must be a list of positive layer widths, got {policy.net_arch!r}")
    if policy.grid_size < 2:
        raise ValueError(f"grid_size must be >= 2, got {policy.grid_size}")
    for season in policy.seasons or ():
        if len(season) != 2 or not season[0] > 0:
            raise ValueError(f"seasons are [period, phase] pairs with period > 0, got {season!r}")
