"""``python -m polyroute`` runs the command line."""

from __future__ import annotations

from polyroute.cli import main

raise SystemExit(main())
