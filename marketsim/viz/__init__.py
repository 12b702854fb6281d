"""``marketsim viz``: watch a market live in the browser, on Mesa's SolaraViz (extra ``viz``).

``live`` is the Mesa model the page steps and rebuilds (a ``MarketModel`` whose keyword arguments are slider
values); ``charts`` turns its records into ECharts options (plain data, testable without a browser); ``app`` is
the Solara page; ``server`` serves it on a local port with the front-end assets installed from packages.
"""

import os
import warnings

# No usage reports from the page's server: Solara reads this when its settings are first imported.
os.environ.setdefault("SOLARA_TELEMETRY_MIXPANEL_ENABLE", "false")

# Mesa 3.3's ComponentsView trips Solara's check of hook order as it is imported (fixed in Mesa 3.4): nothing
# for the user to act on, so it is not shown. Set here, before ``app`` imports Mesa's visualisation.
warnings.filterwarnings("ignore", message=r".*ComponentsView: `use_state` found despite early return")
