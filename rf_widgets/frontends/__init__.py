"""What the model importers (torch, ONNX, Keras) share: the values a rule reads and returns.

Importing this package imports no framework. Each importer evaluates its graph into these records:
an :class:`~rf_widgets.frontends.records.Act` for an activation (the layer that made it and the role of
each of its dimensions), :data:`~rf_widgets.frontends.records.CONST` for a value that does not depend on
the image, and :class:`~rf_widgets.frontends.records.ShapeOf` for entries read off an activation's shape.
"""

from rf_widgets.frontends.records import CONST, Act, ShapeOf

__all__ = ["CONST", "Act", "ShapeOf"]
