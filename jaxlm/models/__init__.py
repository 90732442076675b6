"""Transformer policies and their value heads."""
from jaxlm.models.transformer import (Transformer, TransformerConfig, TransformerOutput,
                                      gpt2_config, init_cache, llama_config,
                                      positions_from_mask)

__all__ = ["Transformer", "TransformerConfig", "TransformerOutput", "gpt2_config",
           "init_cache", "llama_config", "positions_from_mask"]
