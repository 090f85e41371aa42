"""``python -m gateway`` is the ``linegate`` command."""

from gateway.cli.main import main

raise SystemExit(main())
