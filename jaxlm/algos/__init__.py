"""One module per algorithm: a frozen Config, its networks and loss, and train_and_evaluate."""

from jaxlm.algos import bc
from jaxlm.algos import decoding
from jaxlm.algos import ilql
from jaxlm.algos import mc
from jaxlm.algos import offline
from jaxlm.algos import prm
from jaxlm.algos import search
from jaxlm.algos import sft

__all__ = ["bc", "decoding", "ilql", "mc", "offline", "prm", "search", "sft"]
