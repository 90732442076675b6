"""jaxlm: reinforcement learning on language models and the science of scaling it, in JAX.

Subpackages: `models` (one decoder, value heads, policies, HF interop), `losses` (pure RL/LM
losses), `rl` (returns and advantages), `algos` (BC, filtered BC, MC returns, ILQL, SFT,
test-time compute), `envs` (Maze, Wordle, Countdown and the task registry), `data`
(token-level trajectories and iterators), `search` (test-time compute), `scaling` (laws and
fitting); `config` (TrainConfig, dict <-> dataclass), `train` (the one training driver),
`evaluation` (policies in environments), `sharding`, `checkpoint`, `distributed`; `generate`
is the KV-cache decoder.
"""

from jaxlm import algos
from jaxlm import checkpoint
from jaxlm import config
from jaxlm import data
from jaxlm import distributed
from jaxlm import envs
from jaxlm import evaluation
from jaxlm import losses
from jaxlm import models
from jaxlm import rl
from jaxlm import scaling
from jaxlm import search
from jaxlm import sharding
from jaxlm import train
from jaxlm.generation import GenerationOutput, generate
from jaxlm.processors import StepState

__version__ = "0.1.0"

__all__ = [
    "GenerationOutput", "StepState", "algos", "checkpoint", "config", "data", "distributed",
    "envs", "evaluation", "generate", "losses", "models", "rl", "scaling", "search", "sharding",
    "train",
]
