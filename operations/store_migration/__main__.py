"""``python -m operations.store_migration``: see ``cli``."""

from .cli import main

raise SystemExit(main())
