"""Offline RL data: text trajectories, tokenizers and the token-level RL batch."""

from jaxlm.data.batch import RLBatch, next_window_rows, stack_batches, to_rl_batch
from jaxlm.data.tokenizer import HFTokenizer, SimpleTokenizer, Tokenizer, as_tokenizer
from jaxlm.data.trajectory import (TextTrajectory, read_jsonl, top_fraction_by_return,
                                   validate_trajectories, write_jsonl)

__all__ = [
    "HFTokenizer", "RLBatch", "SimpleTokenizer", "TextTrajectory", "Tokenizer", "as_tokenizer",
    "next_window_rows", "read_jsonl", "stack_batches", "to_rl_batch", "top_fraction_by_return",
    "validate_trajectories", "write_jsonl",
]
