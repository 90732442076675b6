"""Transformer policies, their value heads, Hugging Face and GGUF interop."""

from jaxlm.models.convert import config_from_hf, config_to_hf, from_hf, to_hf
from jaxlm.models.heads import ILQLHeads, MLPHead
from jaxlm.models.llama_cpp import from_gguf, to_gguf
from jaxlm.models.networks import lm_networks, load_pretrained
from jaxlm.models.transformer import (Transformer, TransformerConfig, TransformerOutput,
                                      gpt2_config, init_cache, llama_config,
                                      output_matrix, positions_from_mask)

__all__ = [
    "ILQLHeads", "MLPHead", "Transformer", "TransformerConfig", "TransformerOutput",
    "config_from_hf", "config_to_hf", "from_gguf", "from_hf", "gpt2_config", "init_cache",
    "llama_config", "lm_networks", "load_pretrained", "output_matrix", "positions_from_mask",
    "to_gguf", "to_hf",
]
