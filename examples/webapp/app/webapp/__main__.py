"""``python -m webapp``."""

from webapp.cli import main

raise SystemExit(main())
