"""The student drawing editor: a Qt-free model (``model``) observed by Qt views (``qt_*``)."""

from kdgui.gui.student_editor.qt_student_editor import StudentEditor

__all__ = ["StudentEditor"]
