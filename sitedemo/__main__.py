"""``python -m sitedemo``: what ``make demo`` runs."""

from sitedemo.cli import main

raise SystemExit(main())
