"""Evidence beside the prediction: measure what the receptive-field analysis predicts.

The paper (Richter et al., arXiv 2106.12307) predicts that layers after the border layer add little; its
ResNet18/CIFAR-10 figure shows it with two measurements of a trained network, both available here:

- :func:`saturation`: the share of eigen-directions of a layer's output covariance needed to explain 99%
  of its variance (low saturation: the layer passes on a few directions only);
- :func:`probes`: the test accuracy of a linear classifier on each layer's spatially pooled output
  (flat from the border layer on: the tail adds no linearly usable information);
- :func:`effective_field`: the gradient-based effective receptive field of one unit (SPEC section 8),
  which is much smaller than the theoretical box;
- :func:`measure`: all of it per layer joined with :func:`rf_widgets.analyze`, JSON-exportable, and
  :func:`plot_evidence` to draw the paper's figure from it.

:func:`shape_pairs` generates a 10-class image set that needs spatial context; :func:`load_cifar10` and
:func:`load_image_folder` read data the user already has. This sub-package imports torch; ``import
rf_widgets`` does not import it.
"""

from rf_widgets.evidence.datasets import (
    SHAPE_PAIR_CLASSES,
    ImageSet,
    load_cifar10,
    load_image_folder,
    shape_pairs,
)
from rf_widgets.evidence.effective_field import EffectiveField, effective_field, erf_map, erf_size
from rf_widgets.evidence.measure import accuracy, measure, train_classifier
from rf_widgets.evidence.plots import EvidencePlot, plot_evidence
from rf_widgets.evidence.probes import LayerProbe, probes
from rf_widgets.evidence.results import EvidenceResult, LayerEvidence
from rf_widgets.evidence.saturation import LayerSaturation, saturation

__all__ = [
    "SHAPE_PAIR_CLASSES",
    "EffectiveField",
    "EvidencePlot",
    "EvidenceResult",
    "ImageSet",
    "LayerEvidence",
    "LayerProbe",
    "LayerSaturation",
    "accuracy",
    "effective_field",
    "erf_map",
    "erf_size",
    "load_cifar10",
    "load_image_folder",
    "measure",
    "plot_evidence",
    "probes",
    "saturation",
    "shape_pairs",
    "train_classifier",
]
