"""``python -m kdgui`` runs the same entry point as the ``kdgui`` command."""

from kdgui.cli.main import main

raise SystemExit(main())
