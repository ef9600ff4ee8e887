"""``python -m consumers.cli ...``: the ``riskgate`` command."""

import sys

from consumers.cli.main import main

sys.exit(main())
