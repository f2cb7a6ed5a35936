"""PyInstaller's entry script: the frozen ``kdgui`` executable is the ``kdgui`` console script.

With no arguments it opens the window; with a subcommand it is the CLI (see ``kdgui --help``).
``freeze_support`` lets DataLoader worker processes start in a frozen app on Windows and macOS,
where multiprocessing spawns a fresh copy of the executable instead of forking.
"""

import multiprocessing

from kdgui.launcher import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    raise SystemExit(main())
