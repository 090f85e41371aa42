"""``python -m gateway`` is the ``linegate`` command."""

from gateway.cli import main

raise SystemExit(main())
