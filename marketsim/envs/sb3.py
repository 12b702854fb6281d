"""Our batched Gymnasium ``VectorEnv`` as a Stable-Baselines3 ``VecEnv`` (extra ``sb3``).

SB3 does not take Gymnasium vector envs: its on-policy algorithms step a ``VecEnv``, which returns
``(obs, rewards, dones, infos)`` with one info dict per row and, on a row whose episode ended, the last
observation in ``info["terminal_observation"]`` and ``info["TimeLimit.truncated"]``. ``as_sb3_vec_env``
wraps a vector env that resets in the step an episode ends (``AutoresetMode.SAME_STEP``, as
``marketsim.envs.vector_env`` does), so PPO or A2C train on N markets cleared in one numpy step::

    venv = as_sb3_vec_env(marketsim.envs.vector_env("scenarios/deep_duopoly.yaml", seller="learner", num_envs=64))
    PPO("MlpPolicy", venv, gamma=0.95).learn(100_000)

The N rows share one env underneath: ``get_attr`` / ``env_method`` read or call it once for all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from marketsim.exceptions import MissingExtraError

try:
    from stable_baselines3.common.vec_env import VecEnv
except ImportError as exc:  # pragma: no cover - exercised where the extra is not installed
    raise MissingExtraError(
        f"marketsim.envs.sb3 needs the 'sb3' extra ({exc.name} is not installed): pip install -e '.[sb3]'"
    ) from exc

__all__ = ["Sb3VecEnv", "as_sb3_vec_env"]

FINAL_KEYS = ("final_obs", "_final_obs", "final_info", "_final_info")  # what SAME_STEP autoreset adds to infos


def row_infos(infos: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Gymnasium's batched info dict (arrays with ``_key`` masks) as one dict per row, masked-out keys left out."""
    rows: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, value in infos.items():
        if key.startswith("_") or key in FINAL_KEYS:
            continue
        mask = np.asarray(infos.get(f"_{key}", np.ones(n, dtype=bool)), dtype=bool)
        nested = row_infos(value, n) if isinstance(value, dict) else None
        for i in np.flatnonzero(mask):
            rows[i][key] = nested[i] if nested is not None else value[i]
    return rows


class Sb3VecEnv(VecEnv):
    """SB3's ``VecEnv`` API over a Gymnasium ``VectorEnv`` that autoresets in the same step (see the module)."""

    def __init__(self, venv: VectorEnv) -> None:
        mode = venv.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"as_sb3_vec_env needs a vector env with autoreset_mode SAME_STEP (the last observation of an "
                f"episode in infos['final_obs']); this one has {mode!r}"
            )
        self.venv = venv
        self.actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    def reset(self) -> np.ndarray:
        """Reset every row; the seed of a preceding ``seed(s)`` opens the batch (the N rows share one seed)."""
        seed, options = self._seeds[0], self._options[0] or None
        obs, infos = self.venv.reset(seed=seed, options=options)
        self.reset_infos = row_infos(infos, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Remember the actions for ``step_wait`` (the batch steps synchronously)."""
        self.actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Step every row; on rows that ended, the reset observation and the last one in the row's info."""
        obs, rewards, terminations, truncations, infos = self.venv.step(self.actions)
        terminations, truncations = np.asarray(terminations, dtype=bool), np.asarray(truncations, dtype=bool)
        dones = terminations | truncations
        rows = row_infos(infos, self.num_envs)
        final = np.asarray(infos.get("_final_obs", np.zeros(self.num_envs, dtype=bool)), dtype=bool)
        final_rows = row_infos(infos["final_info"], self.num_envs) if "final_info" in infos else None
        for i in np.flatnonzero(dones):
            if final_rows is not None:
                rows[i].update(final_rows[i])
            if final[i]:
                rows[i]["terminal_observation"] = infos["final_obs"][i]
            rows[i]["TimeLimit.truncated"] = bool(truncations[i] and not terminations[i])
        return obs, np.asarray(rewards, dtype=np.float32), dones, rows

    def close(self) -> None:
        """Close the vector env."""
        self.venv.close()

    def _count(self, indices: None | int | Iterable[int]) -> int:
        """How many rows ``indices`` names (all of them for None)."""
        if indices is None:
            return self.num_envs
        return 1 if isinstance(indices, int) else len(list(indices))

    def get_attr(self, attr_name: str, indices: None | int | Iterable[int] = None) -> list[Any]:
        """The vector env's attribute, once per row asked for (the rows share it)."""
        return [getattr(self.venv, attr_name)] * self._count(indices)

    def set_attr(self, attr_name: str, value: Any, indices: None | int | Iterable[int] = None) -> None:
        """Set the attribute on the vector env (for every row: they share it)."""
        setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: None | int | Iterable[int] = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call the vector env's method once; its result stands for every row asked for."""
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result] * self._count(indices)

    def env_is_wrapped(self, wrapper_class: type, indices: None | int | Iterable[int] = None) -> list[bool]:
        """No row is a wrapped ``gymnasium.Env`` (the batch has no per-row env objects)."""
        return [False] * self._count(indices)

    def get_images(self) -> Sequence[np.ndarray | None]:
        """No images: the markets render as text."""
        return [None] * self.num_envs


def as_sb3_vec_env(venv: VectorEnv) -> Sb3VecEnv:
    """An SB3 ``VecEnv`` over a Gymnasium ``VectorEnv`` with same-step autoreset (``marketsim.envs.vector_env``)."""
    return Sb3VecEnv(venv)
