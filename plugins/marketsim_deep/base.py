"""What the deep-RL sellers share: the observation encoder, the learner base class (grid, device, seeded
network construction, the ``checkpoint`` / ``mode`` parameters) over the torch helpers of
``marketsim.learning.torchkit`` and the grid of ``marketsim.learning.tabular.seller_grid``.

Randomness: a learner draws everything from the numpy generator handed to ``setup``. Network
initialisation runs inside ``seeded`` (``torch.random.fork_rng``), so torch's global generator is left
as it was, and sampling uses a ``torch.Generator`` seeded from the same numpy generator.

torch is imported where it is used, never at module level: discovering the plugin (the registry imports
it) must not pay for importing torch; a learner loads it in ``setup``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Literal

import numpy as np

from marketsim.learning.tabular import seller_grid
from marketsim.learning.torchkit import load_owned_checkpoint, pick_device, seeded
from marketsim.market.step import state_observations
from marketsim.strategy import MarketInfo, Observation, Strategy

Mode = Literal["train", "eval"]

__all__ = ["DeepLearner", "Mode", "ObservationEncoder"]


class ObservationEncoder:
    """A fixed-length feature vector from the last ``history`` observations.

    Per remembered step: own price and every rival's price, scaled so the seller's grid spans [0, 1]; own
    units sold, scaled by its units at the Nash prices; and, when finite, inventory and capacity (scaled by
    the first finite inventory / the capacity). ``period`` adds sin/cos of the step for seasonal markets.
    """

    def __init__(self, market: MarketInfo, grid: np.ndarray, history: int = 1, period: int | None = None) -> None:
        self.history, self.period = history, period
        self.low, self.span = float(grid.min()), float(max(grid.max() - grid.min(), 1e-9))
        i, nash = market.index, np.asarray(market.nash_prices, float)
        margin = nash[i] - market.costs[i]
        units = market.expected_profit(nash)[i] / margin if margin > 0 else 1.0
        self.unit_scale = float(units) if np.isfinite(units) and units > 0 else 1.0
        self.n_rivals = market.n_sellers - 1
        self.stock_scale: float | None = None
        self.frames: deque[np.ndarray] = deque(maxlen=max(history - 1, 1))  # the frames before the current one

    @property
    def size(self) -> int:
        """Length of the encoded vector."""
        return self.history * (self.n_rivals + 4) + (2 if self.period else 0)

    def frame(self, obs: Observation) -> np.ndarray:
        """One step's features (no history): prices, units, inventory and capacity."""
        if self.stock_scale is None and math.isfinite(obs.inventory) and obs.inventory > 0:
            self.stock_scale = obs.inventory
        prices = (np.array((obs.own_price, *obs.competitor_prices)) - self.low) / self.span
        stock = obs.inventory / self.stock_scale if self.stock_scale and math.isfinite(obs.inventory) else 0.0
        cap = 1.0 if math.isfinite(obs.capacity) else 0.0
        return np.concatenate([prices, [obs.last_units / self.unit_scale, stock, cap]]).astype(np.float32)

    def steady(self, obs: Observation) -> np.ndarray:
        """Features as if ``obs`` had repeated for ``history`` steps (for tabulating a policy by state)."""
        parts = [np.tile(self.frame(obs), self.history)]
        if self.period:
            angle = 2 * math.pi * obs.step / self.period
            parts.append(np.array([math.sin(angle), math.cos(angle)], np.float32))
        return np.concatenate(parts).astype(np.float32)

    def encode(self, obs: Observation, remember: bool = True) -> np.ndarray:
        """Features of ``obs`` after those of the previous ``history − 1`` remembered observations.

        Before enough steps have been seen, the oldest available frame is repeated. ``remember=False``
        encodes without storing (for hypothetical observations, e.g. tabulating a policy).
        """
        frame = self.frame(obs)
        window = [*self.frames, frame] if self.history > 1 else [frame]
        window = [window[0]] * (self.history - len(window)) + window
        if remember and self.history > 1:
            self.frames.append(frame)
        parts = [np.concatenate(window)]
        if self.period:
            angle = 2 * math.pi * obs.step / self.period
            parts.append(np.array([math.sin(angle), math.cos(angle)], np.float32))
        return np.concatenate(parts).astype(np.float32)


class DeepLearner(Strategy):
    """Base of the torch learners: grid, encoder, device, torch generator, ``checkpoint`` and ``mode``.

    Subclasses take ``grid_size, xi, grid, history, period, device, checkpoint, mode`` among their
    parameters, build their networks in ``build`` (called inside ``seeded``) and implement
    ``state_dict`` / ``load_state_dict``. ``mode: eval`` freezes learning and acts greedily.
    Every deep learner is ``GreedyTabulable`` (``prices``, ``discount``, ``grid_params``, ``greedy_table``):
    ``marketsim train`` scores its greedy policy against the oracle; subclasses define ``gamma``.
    """

    classifier = {"learns": True, "stochastic": True, "needs_torch": True, "observes": ("own", "competitors")}

    grid_size: int
    xi: float
    grid: list[float] | None
    history: int
    period: int | None
    device: str
    checkpoint: str | None
    mode: Mode
    gamma: float
    prices: np.ndarray  # this seller's price grid, after setup

    def setup(self, market: MarketInfo, rng: np.random.Generator) -> None:
        """Build grid, encoder and networks; then load ``checkpoint`` and apply ``mode``."""
        import torch

        super().setup(market, rng)
        if self.mode not in ("train", "eval"):
            raise ValueError(f"mode must be 'train' or 'eval', got {self.mode!r}")
        self.prices = seller_grid(market, grid_size=self.grid_size, xi=self.xi, grid=self.grid)
        self.encoder = ObservationEncoder(market, self.prices, self.history, self.period)
        self.torch_device = pick_device(self.device)
        if self.torch_device.type == "cpu" and torch.get_num_threads() > 1:
            # These networks are tiny: one intra-op thread is several times faster than torch's default
            # on a small machine (and 10x when the other core is busy). Process-wide, as torch allows.
            torch.set_num_threads(1)
        seed = int(rng.integers(2**63 - 1))
        self.generator = torch.Generator().manual_seed(seed)
        with seeded(seed):
            self.build()
        if self.checkpoint:
            self.load_checkpoint(self.checkpoint)
        if self.mode == "eval":
            self.set_training(False)

    def build(self) -> None:
        """Create the networks and optimiser (runs under a seeded torch generator)."""
        raise NotImplementedError

    def load_checkpoint(self, path: str) -> None:
        """Load a checkpoint written for this strategy (refusing one written for another)."""
        state, _ = load_owned_checkpoint(path, self.name)
        self.load_state_dict(state)

    @property
    def discount(self) -> float:
        """The discount factor of the returns this learner maximises (``gamma``)."""
        return float(self.gamma)

    @property
    def grid_params(self) -> dict[str, object]:
        """The parameters that rebuild this learner's grid: ``{"grid"}`` when explicit, else ``{"grid_size", "xi"}``."""
        if self.grid is not None:
            return {"grid": [float(p) for p in self.grid]}
        return {"grid_size": self.grid_size, "xi": self.xi}

    def greedy_actions(self, features: np.ndarray) -> np.ndarray:
        """Greedy action index for each row of ``features`` (k, encoder.size), without exploring."""
        raise NotImplementedError

    def greedy_table(self, grids: np.ndarray) -> np.ndarray:
        """The greedy action in every memory-1 grid state, as ``marketsim.market.oracle`` policies are indexed.

        ``grids`` (n, m) are all sellers' price grids (this seller's must be its own); state k is last
        period's joint action with seller 0 the most significant digit; own units and profit are the
        expected ones at those prices, so the observation is exactly what the market would show.
        """
        rows = [self.encoder.steady(obs) for obs in state_observations(self.market, grids)]
        return np.asarray(self.greedy_actions(np.stack(rows)), dtype=np.int64)

    def action_price(self, action: int) -> float:
        """The grid price of an action index."""
        return float(self.prices[action])
