"""Interactive widgets: the :class:`Explorer` and the ``%rfa`` IPython magic."""

from rf_widgets.widgets.explorer import Explorer, explore

__all__ = ["Explorer", "explore"]
