"""``measure()``: the analysis of a model joined with what its layers actually do on data."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn

from rf_widgets.errors import DataError, ResolutionError
from rf_widgets.evidence._running import (
    BATCH,
    as_labelled,
    check_batch_size,
    check_images,
    class_count,
    forward_batches,
    left_as_found,
    resolve_layers,
)
from rf_widgets.evidence.probes import pooled_features, probe_features
from rf_widgets.evidence.results import EvidenceResult, LayerEvidence
from rf_widgets.evidence.saturation import saturation

__all__ = ["accuracy", "measure", "train_classifier"]


def accuracy(model: nn.Module, data: Any, *, batch_size: int = BATCH) -> float:
    """Share of ``data`` (an ``ImageSet`` or ``(images, labels)``) that ``model`` classifies correctly.

    The model runs in eval mode and is left as found.
    """
    images, labels = as_labelled(data, "data")
    check_images(model, images, None, "data")
    predictions: list[torch.Tensor] = []
    with left_as_found(model):
        forward_batches(
            model,
            images,
            {},
            lambda name, out: None,
            batch_size=batch_size,
            logits=lambda out: predictions.append(out.argmax(dim=1).cpu()),
        )
    return float((torch.cat(predictions) == labels).double().mean())


def measure(
    model: nn.Module,
    train: Any,
    test: Any,
    input_size: int | Sequence[int],
    *,
    layers: Sequence[str] | None = None,
    name: str | None = None,
    meta: dict[str, Any] | None = None,
    batch_size: int = BATCH,
) -> EvidenceResult:
    """Analyse ``model`` at ``input_size`` and measure saturation, probes and accuracy per layer.

    Parameters
    ----------
    model
        A trained (or untrained, as a baseline) ``torch.nn.Module``, left exactly as found.
    train, test
        ``ImageSet`` or ``(images, labels)`` pairs of ``input_size`` images. Probes are fitted on
        ``train`` and scored on ``test``; saturation and model accuracy are measured on ``test``.
    input_size
        The resolution of the images (one int for a square), which is also where the analysis is done.
    layers
        Module names to measure; by default every convolution with a kernel larger than 1.
    name, meta
        What to call the model, and anything to keep beside the result (the training recipe, say).

    Returns
    -------
    EvidenceResult
        JSON-exportable; ``plot_evidence(result)`` draws the paper's figure.

    Examples
    --------
    >>> import torchvision
    >>> from rf_widgets.evidence import measure, shape_pairs
    >>> data = shape_pairs(60, 32, seed=0)
    >>> train, test = data.split(40)
    >>> result = measure(torchvision.models.resnet18(num_classes=10), train, test, 32)
    >>> result.border_layer is not None, len(result.layers)
    (True, 17)
    """
    from rf_widgets._api import analyze

    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or any(not isinstance(n, int) or n < 1 for n in size):
        raise ResolutionError(f"input_size must be a positive int or (H, W), got {input_size!r}")
    x_train, y_train = as_labelled(train, "train")
    x_test, y_test = as_labelled(test, "test")
    check_images(model, x_train, size, "train")
    check_images(model, x_test, size, "test")
    classes = class_count(y_train, y_test)
    check_batch_size(batch_size)
    modules = resolve_layers(model, layers)
    names = list(modules)
    analysis = analyze(model, size, name=name)

    sat = saturation(model, x_test, names, batch_size=batch_size)
    with left_as_found(model):
        features_train = pooled_features(model, x_train, modules, batch_size)
        features_test = pooled_features(model, x_test, modules, batch_size)
    layers_out = []
    for layer_name in names:
        train_acc, test_acc = probe_features(
            features_train[layer_name], y_train, features_test[layer_name], y_test, classes
        )
        s = sat[layer_name]
        layers_out.append(
            LayerEvidence(
                layer_name,
                None,
                None,
                None,
                None,
                s.channels,
                s.saturation,
                s.rank_limited,
                train_acc,
                test_acc,
            )
        )
    model_accuracy = accuracy(model, (x_test, y_test), batch_size=batch_size)
    base = EvidenceResult(
        model=analysis.model,
        input_size=size,
        layers=tuple(layers_out),
        model_accuracy=model_accuracy,
        border_layer=None,
        unproductive_layers=(),
        meta=dict(meta or {}),
    )
    return base.with_analysis(analysis)


def train_classifier(
    model: nn.Module,
    train: Any,
    epochs: int,
    *,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place with Adam and cross-entropy (the paper's recipe: Adam, batch 64).

    Unlike every other function here this changes the model: that is its purpose. It leaves the model in
    eval mode. Returns per epoch the mean training loss, training accuracy and seconds taken.
    """
    images, labels = as_labelled(train, "train")
    check_images(model, images, None, "train")
    class_count(labels)
    check_batch_size(batch_size)
    if epochs < 1:
        raise DataError(f"epochs must be at least 1, got {epochs}")
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    model.train()
    for epoch in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(images), generator=generator)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, len(images), batch_size):
            index = order[i : i + batch_size]
            x, y = images[index], labels[index]
            optimiser.zero_grad()
            out = model(x)
            loss = nn.functional.cross_entropy(out, y)
            loss.backward()
            optimiser.step()
            loss_sum += loss.item() * len(y)
            correct += int((out.argmax(1) == y).sum())
            total += len(y)
        row = {
            "epoch": epoch + 1,
            "loss": loss_sum / total,
            "train_accuracy": correct / total,
            "seconds": time.perf_counter() - start,
        }
        history.append(row)
        if log is not None:
            log(
                f"epoch {epoch + 1}/{epochs}: loss {row['loss']:.3f}, train accuracy "
                f"{row['train_accuracy']:.3f}, {row['seconds']:.1f} s"
            )
    model.eval()
    return history
