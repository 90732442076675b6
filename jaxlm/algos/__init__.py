"""One module per algorithm: a frozen Config, its networks and loss, train and train_and_evaluate.

Every algorithm trains through `jaxlm.train.fit` with a `jaxlm.config.TrainConfig`; the offline
ones (bc, mc, ilql) share their config fields and data through `offline`; `test_time` trains
the Countdown policy and PRM and runs the search strategies of `jaxlm.search` on them; `pg` is
online policy-gradient RL (PPO, GRPO and relatives) and `online` its experiments; `e3` trains
in-context exploration on Countdown; `ktiw` reproduces single-head attention dynamics;
`context_distill` (with the paper's experiments in `context_distill_experiments`) and `calm`
learn from context (distillation, CALM's relabeling and auxiliary head).
"""

from jaxlm.algos import bc
from jaxlm.algos import calm
from jaxlm.algos import context_distill
from jaxlm.algos import context_distill_experiments
from jaxlm.algos import e3
from jaxlm.algos import ilql
from jaxlm.algos import ktiw
from jaxlm.algos import mc
from jaxlm.algos import offline
from jaxlm.algos import online
from jaxlm.algos import pg
from jaxlm.algos import sft
from jaxlm.algos import test_time

__all__ = [
    "bc", "calm", "context_distill", "context_distill_experiments", "e3", "ilql", "ktiw", "mc",
    "offline", "online", "pg", "sft", "test_time",
]
