"""``python -m gateway.cli``: what the ``gateway`` console script runs (used for child processes)."""

import sys

from gateway.cli.main import main

sys.exit(main())
