"""``python -m reelay_cli``: the same as the ``reelay`` console script."""

import sys

from reelay_cli.main import main

sys.exit(main())
