"""``python -m tradekit``: the ``tradekit`` command."""

from .cli import main

raise SystemExit(main())
