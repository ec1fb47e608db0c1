"""Linear probes: how much of the label a linear classifier can read from each layer's output.

Each layer's output is averaged over its spatial positions (one C-vector per image, so every layer costs
the same whatever its map size and no activation map is kept), standardised with the training features'
mean and standard deviation, and fed to a multinomial logistic regression with a small L2 penalty,
fitted by torch's L-BFGS in float64 (scikit-learn is not a dependency; with the same penalty its
``LogisticRegression(multi_class="multinomial")`` solves the same convex problem). The probe's accuracy
on the test images is the number reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

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

__all__ = ["LayerProbe", "fit_logistic", "pooled_features", "probes"]

L2 = 1e-3
MAX_ITER = 100


@dataclass(frozen=True)
class LayerProbe:
    """Train and test accuracy of the linear probe on one layer."""

    layer: str
    train_accuracy: float
    test_accuracy: float
    features: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "train_accuracy": self.train_accuracy,
            "test_accuracy": self.test_accuracy,
            "features": self.features,
        }


def pooled_features(
    model: nn.Module, images: torch.Tensor, modules: dict[str, nn.Module], batch_size: int = BATCH
) -> dict[str, torch.Tensor]:
    """Spatially averaged outputs (N, C) of every module, float64; the model must be in left_as_found."""
    chunks: dict[str, list[torch.Tensor]] = {name: [] for name in modules}

    def consume(name: str, output: torch.Tensor) -> None:
        dims = tuple(range(2, output.ndim))
        pooled = output.mean(dim=dims) if dims else output
        chunks[name].append(pooled.to(torch.float64).cpu())

    forward_batches(model, images, modules, consume, batch_size=batch_size)
    return {name: torch.cat(parts) for name, parts in chunks.items()}


def fit_logistic(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    classes: int,
    *,
    l2: float = L2,
    max_iter: int = MAX_ITER,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (F, K) and bias (K) of an L2-penalised multinomial logistic regression (L-BFGS, float64)."""
    x_train = x_train.to(torch.float64)
    weight = torch.zeros(x_train.shape[1], classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        logits = x_train @ weight + bias
        loss = nn.functional.cross_entropy(logits, y_train) + 0.5 * l2 * (weight * weight).sum()
        loss.backward()
        return loss

    # The problem is small (F x K weights): extra threads only add synchronisation, which on a shared
    # machine costs several times the work itself. The caller's thread count is restored.
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.enable_grad():
            optimiser.step(closure)
    finally:
        torch.set_num_threads(threads)
    return weight.detach(), bias.detach()


def _standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = train.mean(dim=0)
    std = train.std(dim=0)
    # A constant feature carries nothing; dividing by 1 keeps it at zero instead of making NaNs.
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    return (train - mean) / std, (test - mean) / std


def probe_features(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, classes: int
) -> tuple[float, float]:
    """Train and test accuracy of a probe fitted on feature matrices (N, F)."""
    a, b = _standardise(train_x, test_x)
    weight, bias = fit_logistic(a, train_y, classes)
    train_acc = ((a @ weight + bias).argmax(1) == train_y).double().mean().item()
    test_acc = ((b @ weight + bias).argmax(1) == test_y).double().mean().item()
    return train_acc, test_acc


def probes(
    model: nn.Module,
    train: Any,
    test: Any,
    layers: Sequence[str] | str | None = None,
    *,
    batch_size: int = BATCH,
) -> dict[str, LayerProbe]:
    """Linear-probe accuracy of each layer (see the module docstring for the method).

    Parameters
    ----------
    model
        A ``torch.nn.Module``; it is run in eval mode and left exactly as found.
    train, test
        ``ImageSet`` or ``(images, labels)`` pairs; the probe is fitted on ``train``, scored on ``test``.
    layers
        Module names; by default every convolution with a kernel larger than 1.

    Examples
    --------
    >>> import torch, torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    >>> x, y = torch.randn(40, 3, 8, 8), torch.arange(40) % 2
    >>> round(probes(net, (x, y), (x, y))["0"].train_accuracy, 1) >= 0.5
    True
    """
    x_train, y_train = as_labelled(train, "train")
    x_test, y_test = as_labelled(test, "test")
    modules = resolve_layers(model, layers)
    check_images(model, x_train, None, "train")
    check_images(model, x_test, tuple(x_train.shape[2:]), "test")
    classes = class_count(y_train, y_test)
    check_batch_size(batch_size)
    with left_as_found(model):
        features_train = pooled_features(model, x_train, modules, batch_size)
        features_test = pooled_features(model, x_test, modules, batch_size)
    out = {}
    for name in modules:
        train_acc, test_acc = probe_features(
            features_train[name], y_train, features_test[name], y_test, classes
        )
        out[name] = LayerProbe(name, train_acc, test_acc, features_train[name].shape[1])
    return out
