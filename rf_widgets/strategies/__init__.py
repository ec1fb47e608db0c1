"""Design strategies: from the border layer to a better architecture, without training.

Richter et al. end their paper with strategies a person applies by hand once the analysis shows
unproductive layers. :func:`suggest` evaluates them for a network at a target input size and predicts
the effect of each from the analysis alone; :meth:`Suggestion.apply` builds the modified network
(torch.fx surgery on a copy for a torch model).

* ``"trim"``: cut the network after its last productive block and attach a new head (global average
  pooling and a linear layer of the right width);
* ``"slow-downsampling"``: reduce strides, each step where it leaves the fewest layers unproductive, so
  the existing layers become productive;
* ``"resolution"``: feed inputs inside the feasible range.
"""

from rf_widgets.strategies.budget import EDIT_KINDS, PICKS, Candidate, Edit, Front, search
from rf_widgets.strategies.suggestions import KINDS, PICK_KINDS, Suggestion, Suggestions, suggest

__all__ = [
    "EDIT_KINDS",
    "KINDS",
    "PICKS",
    "PICK_KINDS",
    "Candidate",
    "Edit",
    "Front",
    "Suggestion",
    "Suggestions",
    "search",
    "suggest",
]
