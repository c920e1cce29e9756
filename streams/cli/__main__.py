"""``python -m streams.cli``: the ``streamvision`` command."""

import sys

from streams.cli.main import main

sys.exit(main())
