"""``python -m vectorstore``: the same command line as the ``vectorstore`` script."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
