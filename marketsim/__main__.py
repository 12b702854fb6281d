"""``python -m marketsim`` runs the CLI."""

import sys

from marketsim.cli import main

sys.exit(main())
