"""Text rendering of an env's market: one line per step (``ansi`` returns it, ``human`` prints it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from marketsim.envs.core import SeatedMarket

RENDER_MODES = ("human", "ansi")


def render_line(core: SeatedMarket) -> str:
    """``t=12  firm_1 1.623 (0.47)  firm_2 1.701 (0.39)``: each seller's last price and units."""
    s = core.market.state
    parts = [f"{n} {p:.3f} ({u:.3g})" for n, p, u in zip(core.names, s.prices.tolist(), s.units.tolist())]
    return f"t={core.market.t}  " + "  ".join(parts)
