"""The torch-free heart of rf_widgets: layers, the graph, the arithmetic, the verdicts, the results.

Everything in this package depends on the standard library (and numpy where it helps) only.
"""
