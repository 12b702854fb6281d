"""``python -m marketsim`` runs the CLI."""

import sys

from marketsim.cli.app import main

sys.exit(main())
