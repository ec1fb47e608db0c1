"""Shared fixtures: no widget callback may fail unnoticed."""

from __future__ import annotations

import logging
import os

import pytest

if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    # Under pytest-xdist (as `tasks.py test` runs it; it sets this too): one computing thread per core a
    # worker has, before any test imports torch. With torch's default, a thread per core in every worker,
    # the workers' OpenMP threads wait on each other: a small model's backward pass ran up to 100x slower.
    _workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _workers)))


class _CallbackErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "Exception in callback" in record.getMessage():
            self.records.append(record)


@pytest.fixture(autouse=True)
def fail_on_swallowed_callback_errors():
    """ipywidgets logs (and swallows) exceptions raised in click handlers: turn them into failures."""
    handler = _CallbackErrors()
    logger = logging.getLogger("traitlets")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
    if handler.records:
        pytest.fail("a widget callback raised: " + "; ".join(r.getMessage() for r in handler.records))


# Tests not marked slow in their files that took 4.4 CPU seconds or more (all their parameters together)
# in a run of `-m "not slow"` on 2026-12-07 (per-test CPU time, see BENCHMARKS.md "Testing"): they count
# as slow, so that `tasks.py test --quick` stays a quick loop. The whole suite runs them as before.
LONG_RUNNING = {
    ("test_prediction_parity.py", "test_every_candidate_within_budget_builds_as_predicted"),  # 42.8 s
    ("test_timm_swin.py", "test_tiny_swin_at_32_is_local_then_global"),  # 29.3 s
    ("test_explorer.py", "test_initial_unit_is_centred_named_model_and_linked_size_box"),  # 28.8 s
    ("test_resample_oracle.py", "test_bicubic_and_bilinear_two_dimensional"),  # 28.0 s
    ("test_keras_import.py", "test_every_unit_of_the_zoo_matches_the_gradient_support"),  # 27.3 s
    ("test_explorer_state.py", "test_random_actions_keep_controls_result_and_history_in_agreement"),  # 15.9
    ("test_resample_oracle.py", "test_one_dimensional_every_unit"),  # 14.4 s
    ("test_torch_import.py", "test_model_is_left_as_found"),  # 10.4 s
    ("test_timm_maxvit.py", "test_same_padding_layers_every_unit"),  # 9.0 s
    ("test_keras_import.py", "test_transposed_convolutions_with_output_padding_and_bicubic_upsampling"),
    ("test_timm_swin.py", "test_real_models_have_no_unknown_layer"),  # 7.1 s
    ("test_timm_swin.py", "test_dynamic_model_follows_its_fixed_windows_at_other_sizes"),  # 6.9 s
    ("test_timm_rules.py", "test_blur_pool_every_unit"),  # 6.7 s
    ("test_cli.py", "test_timm_spec"),  # 5.6 s
    ("test_evidence.py", "test_train_classifier_learns_a_separable_problem"),  # 5.5 s
    ("test_cli.py", "test_table_and_summary_for_resnet18_at_32"),  # 5.2 s
    ("test_oracle.py", "test_branching_networks_against_torch_gradients"),  # 5.1 s
    ("test_cli.py", "test_factory_spec"),  # 4.9 s
    ("test_cli.py", "test_json_document"),  # 4.8 s
    ("test_cli.py", "test_bad_specs_give_one_line"),  # 4.7 s
    ("test_zoo.py", "test_meta_and_cpu_builds_analyse_the_same"),  # 4.4 s
}


# The files that take longest, longest first, in seconds on an idle 2-core machine with two workers
# (2026-12-08, BENCHMARKS.md "Session 7"). Under `--dist loadfile` a worker takes the next file when it
# is done; handing out the long files first (and `--no-loadscope-reorder`, which keeps this order) leaves
# only short files for the end, so both workers finish close together. The order changes no result.
LONGEST_FIRST = (
    "tests/test_onnx_parity.py",  # 140
    "tests/test_budget.py",  # 78
    "tests/browser/test_explorer_browser.py",  # 72
    "tests/test_readme_shell.py",  # 66 (up to 100 when pip resolves slowly)
    "tests/test_coverage.py",  # 35
    "tests/test_dense_models.py",  # 29
    "tests/test_zoo.py",  # 21
    "notebooks/04_trim_and_train.ipynb",  # 21
    "tests/test_cli.py",  # 21
    "notebooks/06_which_network.ipynb",  # 20
    "tests/browser/test_readme_picture.py",  # 18
    "tests/test_model_integrity.py",  # 17
    "tests/test_export_tracer.py",  # 15
    "tests/test_keras_applications.py",  # 15
    "tests/test_strategies.py",  # 14
    "tests/test_explorer_state.py",  # 13
    "notebooks/05_does_the_border_predict_the_tail.ipynb",  # 13
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Real-browser tests (a Jupyter server and Chromium each) and ``LONG_RUNNING`` count as slow too;
    the files of ``LONGEST_FIRST`` go first, in that order (the rest keep theirs).

    So ``tasks.py test --quick`` (``-m "not slow"``) leaves them out; the whole suite runs them.
    """
    for item in items:
        name = getattr(item, "originalname", item.name)
        if item.get_closest_marker("browser") is not None or (item.path.name, name) in LONG_RUNNING:
            item.add_marker(pytest.mark.slow)
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}

    def place(item: pytest.Item) -> int:
        try:
            return rank.get(item.path.relative_to(config.rootpath).as_posix(), len(rank))
        except ValueError:  # a file outside the repository
            return len(rank)

    items.sort(key=place)
