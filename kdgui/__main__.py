"""``python -m kdgui`` runs the same entry point as the ``kdgui`` command."""

from kdgui.launcher import main

raise SystemExit(main())
