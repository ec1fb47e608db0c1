"""What the model importers (torch, ONNX, Keras) share, and which of them reads a model.

Importing this package imports no framework. :func:`resolve` says what a model is and which registered
:class:`Frontend` imports it (:mod:`rf_widgets.frontends.registry`; docs/frontends.md shows how a
frontend is written). Each importer evaluates its graph into the records of
:mod:`rf_widgets.frontends.records`: an :class:`Act` for an activation (the layer that made it and the
role of each of its dimensions, :mod:`rf_widgets.frontends.layout`), :data:`CONST` for a value that does
not depend on the image, and :class:`ShapeOf` for entries read off an activation's shape.
"""

from rf_widgets.frontends.records import CONST, Act, ShapeOf
from rf_widgets.frontends.registry import Frontend, Resolved, frontend, frontends, register, resolve

__all__ = ["CONST", "Act", "Frontend", "Resolved", "ShapeOf", "frontend", "frontends", "register", "resolve"]
