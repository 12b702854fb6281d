"""The markets as standard RL environments (extra ``rl``: Gymnasium and PettingZoo).

- ``parallel_env(scenario, ...)``: a PettingZoo ``ParallelEnv`` of the sellers named in ``agents``;
  ``aec_env`` is its AEC form through PettingZoo's ``parallel_to_aec``.
- ``gym_env(scenario, seller=NAME, ...)``: one seller as a Gymnasium ``Env``; the bundled scenarios are
  registered as ``marketsim/<Name>-v0`` ids, so ``gymnasium.make`` works after ``import marketsim.envs``.
- ``vector_env(scenario, seller=NAME, num_envs=N, ...)``: N markets stepped as arrays, a Gymnasium ``VectorEnv``.

The observation vector is documented in ``marketsim.envs.layout``.
"""

from __future__ import annotations

from typing import Any

from marketsim.exceptions import MissingExtraError

__all__ = [
    "EnvError",
    "MarketEnv",
    "MarketParallelEnv",
    "MarketVectorEnv",
    "ObservationLayout",
    "aec_env",
    "gym_env",
    "parallel_env",
    "vector_env",
]

try:
    import gymnasium  # noqa: F401
    import pettingzoo  # noqa: F401
except ImportError as exc:  # the layout module still imports (the sb3_policy seller needs only it)
    _MISSING: str | None = exc.name or "gymnasium"
else:
    _MISSING = None
    from marketsim.envs.core import EnvError
    from marketsim.envs.gym import MarketEnv, gym_env
    from marketsim.envs.layout import ObservationLayout
    from marketsim.envs.parallel import MarketParallelEnv, aec_env, parallel_env
    from marketsim.envs.registration import register_all
    from marketsim.envs.vector import MarketVectorEnv, vector_env

    register_all()


def __getattr__(name: str) -> Any:
    """Without the extra, asking for an env names the extra to install instead of failing obscurely."""
    if _MISSING is not None and name in __all__:
        raise MissingExtraError(
            f"marketsim.envs needs the 'rl' extra ({_MISSING} is not installed): pip install -e '.[rl]'"
        )
    raise AttributeError(f"module 'marketsim.envs' has no attribute {name!r}")
