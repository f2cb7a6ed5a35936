"""Declarations of every built-in component: names, parameters and implementation paths.

Imported once by :mod:`kdgui.core.registry` before the first lookup. Each submodule declares one
family; the implementations live in ``kdgui.engine`` and are imported only when used.
"""

from kdgui.core.components import compression as compression
from kdgui.core.components import distill as distill
from kdgui.core.components import export as export
