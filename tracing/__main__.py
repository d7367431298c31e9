"""``python -m tracing``: the same as the ``tracing`` command."""

import sys

from .cli import main

sys.exit(main())
