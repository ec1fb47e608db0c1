"""nbval runs every notebook here but notebook 01: tests/test_exercises.py executes that one once, compares
its checked outputs with the stored ones as nbval would, and tries the exercises' solutions in the same
kernel, so the notebook is not run a second time."""

collect_ignore = ["01_receptive_fields_from_scratch.ipynb"]
