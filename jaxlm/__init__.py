"""jaxlm: reinforcement learning on language models and the science of scaling it, in JAX.

Subpackages: `models` (one decoder, value heads, HF interop), `losses` (pure RL/LM losses),
`algos` (BC, filtered BC, MC returns, ILQL, SFT), `envs` (Maze, Wordle, Countdown), `data`
(token-level trajectories), `search` (test-time compute), `scaling` (laws and fitting),
`train`, `sharding`, `checkpoint`, `distributed`; `generate` is the KV-cache decoder.
"""

from jaxlm import algos
from jaxlm import checkpoint
from jaxlm import data
from jaxlm import distributed
from jaxlm import envs
from jaxlm import losses
from jaxlm import models
from jaxlm import scaling
from jaxlm import search
from jaxlm import sharding
from jaxlm import train
from jaxlm.generation import GenerationOutput, StepState, generate

__version__ = "0.1.0"

__all__ = [
    "GenerationOutput", "StepState", "algos", "checkpoint", "data", "distributed", "envs",
    "generate", "losses", "models", "scaling", "search", "sharding", "train",
]
