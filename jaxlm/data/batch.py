"""The token-level RL batch (DESIGN.md) and its construction from text trajectories.

Alignment convention used by every loss: a causal model's output at position t is computed from
tokens[:t+1] and scores tokens[t+1]. So the Q-value of the action token at index t+1 is
q_BxTxV[:, t, tokens[:, t+1]], and V at position t is the value of the state right before token
t+1 is chosen. The first token (index 0) is never scored; `to_rl_batch` puts BOS there.

Long episodes are split into chained windows (`to_rl_batch`). A window holds an observation as
context, then as many (action, next observation) chunks as fit, and, when the episode goes on,
the NEXT action as look-ahead: its tokens have action_mask 1 but loss_mask 0. Q, BC and MC
losses use loss_mask, so the look-ahead action is trained only in the next window, which is the
next row and repeats the observation before it as context: no action is trained twice and none
is dropped. The TD target of a window's last trained action needs V of the state before the
look-ahead action. Read inside this window, that V would sit in a context (and at positions)
where Q is never trained, so its expectile target would be an untrained Q; the exact bootstrap
reads V in the next window instead, at its first trained action, where Q and V are trained on
the same context (`next_window_rows` pairs each row with its successor; ILQL does this).
Context older than the repeated observation is not visible in the next window (fine for fully
observed tasks; for partially observed ones choose `max_len` to fit whole episodes). Monte Carlo
returns need the rewards after a window, so each row carries `bootstrap_returns`: the
discounted return-to-go from the first action after the row (0 for an episode's last window).
"""

from typing import Sequence

import flax.struct
import jax
import numpy as np

from jaxlm.data.tokenizer import Tokenizer, as_tokenizer
from jaxlm.data.trajectory import TextTrajectory


@flax.struct.dataclass
class RLBatch:
  """Token-level offline RL batch; B sequences of length T, left-aligned, right-padded.

  Attributes:
    tokens: [B,T] int32 token ids (pad id after the sequence end).
    attention_mask: [B,T] float32, 1 on real tokens (a prefix of each row).
    action_mask: [B,T] float32, 1 on tokens produced by the agent.
    rewards: [B,T] float32, each action's reward on its last token, 0 elsewhere.
    dones: [B,T] float32, 1 on the last token of the episode's final action (terminal).
    bootstrap_returns: [B] float32 or None; discounted return-to-go after the row's last
      attended token (chained windows); None means 0.
    loss_mask: [B,T] float32 or None (= action_mask); the action tokens trained by Q, BC and MC
      losses and their weights (0 on look-ahead actions, which only serve V; module
      docstring), >= 0 and non-zero only on actions.
  """
  tokens: jax.Array
  attention_mask: jax.Array
  action_mask: jax.Array
  rewards: jax.Array
  dones: jax.Array
  bootstrap_returns: jax.Array | None = None
  loss_mask: jax.Array | None = None

  @property
  def shape(self) -> tuple[int, int]:
    return tuple(self.tokens.shape)

  def validate(self, vocab_size: int | None = None) -> "RLBatch":
    """Host-side checks; raises ValueError naming the field, row and position. Returns self.

    Args:
      vocab_size: when given, token ids must be < vocab_size (an id outside the embedding
        table gives NaN logits, not an error, inside a jitted model).
    """
    names = ("tokens", "attention_mask", "action_mask", "rewards", "dones")
    arrs = {n: np.asarray(getattr(self, n)) for n in names}
    shape = arrs["tokens"].shape
    if len(shape) != 2:
      raise ValueError(f"RLBatch field 'tokens' must be [B,T], got shape {shape}")
    for n, a in arrs.items():
      if a.shape != shape:
        raise ValueError(f"RLBatch field '{n}' has shape {a.shape}, 'tokens' has {shape}")
    if not np.issubdtype(arrs["tokens"].dtype, np.integer):
      raise ValueError(f"RLBatch field 'tokens' must be integer, got {arrs['tokens'].dtype}")
    if self.bootstrap_returns is not None:
      boot = np.asarray(self.bootstrap_returns)
      if boot.shape != shape[:1] or not np.all(np.isfinite(boot)):
        raise ValueError(f"RLBatch field 'bootstrap_returns' must be finite [B]={shape[:1]}, "
                         f"got shape {boot.shape}")

    def check(bad, field, what):  # `what` may show the offending value as "{}".
      if np.any(bad):
        b, t = np.argwhere(bad)[0]
        value = np.asarray(getattr(self, field))[b, t]
        raise ValueError(f"RLBatch row {b} position {t}: field '{field}' {what.format(value)}")

    check(arrs["tokens"] < 0, "tokens", "is negative ({})")
    if vocab_size is not None:
      check(arrs["tokens"] >= vocab_size, "tokens", f"is {{}} >= vocab_size={vocab_size}")
    for n in ("attention_mask", "action_mask", "dones"):
      check((arrs[n] != 0) & (arrs[n] != 1), n, "is not 0/1")
    check(~np.isfinite(arrs["rewards"]), "rewards", "is not finite")
    attn, act = arrs["attention_mask"], arrs["action_mask"]
    check(np.diff(attn, axis=1) > 0, "attention_mask",
          "turns back on after padding (rows must be left-aligned)")
    check(act > attn, "action_mask", "is 1 on a padding token")
    check(act[:, :1] > 0, "action_mask", "is 1 on the first token, which has no prediction")
    check((arrs["rewards"] != 0) & (act == 0), "rewards", "is non-zero on a non-action token")
    check(arrs["dones"] > act, "dones", "is 1 on a non-action token")
    if self.loss_mask is not None:
      loss = np.asarray(self.loss_mask)
      if loss.shape != shape:
        raise ValueError(f"RLBatch field 'loss_mask' has shape {loss.shape}, 'tokens' has {shape}")
      check((loss != 0) & (act == 0), "loss_mask", "is non-zero on a non-action token")
      check(loss < 0, "loss_mask", "is negative ({})")
    return self


def _encode(traj: TextTrajectory, index: int, tok: Tokenizer) -> list[list[int]]:
  ids = [list(tok.encode(t)) for t in traj.texts]
  for k, (seg, act) in enumerate(zip(ids, traj.is_action)):
    if act and not seg:
      raise ValueError(f"trajectory {index}: field 'texts'[{k}] (action) encodes to no tokens")
  return ids


def _action_returns(traj: TextTrajectory, ids: list[list[int]], gamma: float) -> dict[int, float]:
  """Return-to-go at the first token of each action segment, gamma per action token."""
  out, g_next = {}, 0.0
  for k in reversed(range(len(ids))):
    if traj.is_action[k]:
      g_last = traj.rewards[k] + gamma * g_next
      out[k] = g_next = gamma ** (len(ids[k]) - 1) * g_last
  return out


def _windows(traj: TextTrajectory, index: int, tok: Tokenizer, max_len: int, gamma: float,
             add_bos: bool, transitions: int | None) -> list[tuple[list[int], ...]]:
  """Splits one trajectory into chained windows with a look-ahead action (module docstring)."""
  if not traj.done and traj.is_action[-1]:
    raise ValueError(f"trajectory {index}: field 'done' is False but the last segment is an "
                     "action; append the next observation so its value can be bootstrapped")
  ids = _encode(traj, index, tok)
  starts = [k for k, a in enumerate(traj.is_action) if a]
  chunks = [range(s, e) for s, e in zip(starts, starts[1:] + [len(ids)])]  # action + its obs
  returns = _action_returns(traj, ids, gamma)
  last_action = starts[-1]
  size = lambda ks: sum(len(ids[k]) for k in ks)
  ahead = lambda c: len(ids[chunks[c + 1][0]]) if c + 1 < len(chunks) else 0
  prefix = [tok.bos_id] if add_bos else []
  rows, ctx, c = [], list(range(starts[0])), 0
  while c < len(chunks):
    segs, first = list(ctx), c
    n_tok = len(prefix) + size(ctx)
    while (c < len(chunks) and c - first != transitions
           and n_tok + size(chunks[c]) + ahead(c) <= max_len):
      n_tok += size(chunks[c])
      segs.extend(chunks[c])
      c += 1
    if transitions and c < len(chunks) and c - first < transitions:
      raise ValueError(f"trajectory {index}: {transitions} transitions after segment "
                       f"{chunks[first][0]} need more than max_len={max_len} tokens; increase "
                       "max_len")
    if c == first:
      need = n_tok + size(chunks[c]) + ahead(c)
      raise ValueError(f"trajectory {index}: action segment {chunks[c][0]} with its context "
                       f"and the next action needs {need} tokens > max_len={max_len}; "
                       "increase max_len")
    lookahead = [chunks[c][0]] if c < len(chunks) else []
    tokens, act, loss, rew, done = (list(prefix), [0] * len(prefix), [0] * len(prefix),
                                    [0.0] * len(prefix), [0] * len(prefix))
    for k in segs + lookahead:
      n = len(ids[k])
      tokens += ids[k]
      act += [int(traj.is_action[k])] * n
      loss += [int(traj.is_action[k] and k not in lookahead)] * n
      rew += [0.0] * n
      done += [0] * n
      if traj.is_action[k]:  # non-empty by _encode
        rew[-1] = float(traj.rewards[k])
        done[-1] = int(traj.done and k == last_action)
    boot = returns[chunks[c + 1][0]] if c + 1 < len(chunks) else 0.0
    rows.append((tokens, act, rew, done, boot, loss))
    ctx = [k for k in chunks[c - 1] if not traj.is_action[k]]
  return rows


def to_rl_batch(trajectories: Sequence[TextTrajectory], tokenizer, *, max_len: int,
                gamma: float = 1.0, pad_to_max_len: bool = True,
                add_bos: bool = True, transitions: int | None = None) -> RLBatch:
  """Tokenizes trajectories into an `RLBatch`, one row per window (see module docstring).

  Args:
    trajectories: validated on entry (errors name the trajectory index and field).
    tokenizer: a `Tokenizer` or a Hugging Face tokenizer (wrapped by `HFTokenizer`).
    max_len: window length T; an episode longer than this becomes several chained rows.
    gamma: per-action-token discount used only for `bootstrap_returns` (match the MC loss).
    pad_to_max_len: pad every row to max_len (fixed shapes for jit) instead of the longest row.
    add_bos: put the tokenizer's BOS first (the first token of a row is never scored).
    transitions: exactly this many (action, observation) chunks per window (the last window
      of an episode may hold fewer), so the context of decision k is known in advance:
      observations k - k % transitions .. k (what evaluation replays). None: as many as fit.

  Returns:
    RLBatch with numpy arrays (B = number of windows); call `jax.device_put` to move it.
  """
  tok = as_tokenizer(tokenizer)
  rows = []
  for i, traj in enumerate(trajectories):
    traj.validate(i)
    rows.extend(_windows(traj, i, tok, max_len, gamma, add_bos, transitions))
  if not rows:
    raise ValueError("no trajectories given")
  t_len = max_len if pad_to_max_len else max(len(r[0]) for r in rows)
  out = np.zeros((5, len(rows), t_len), np.float32)
  tokens = np.full((len(rows), t_len), tok.pad_id, np.int32)
  for b, (toks, act, rew, done, _, loss) in enumerate(rows):
    n = len(toks)
    tokens[b, :n] = toks
    out[0, b, :n] = 1.0
    out[1, b, :n], out[2, b, :n], out[3, b, :n], out[4, b, :n] = act, rew, done, loss
  boot = np.array([r[4] for r in rows], np.float32)
  return RLBatch(tokens=tokens, attention_mask=out[0], action_mask=out[1], rewards=out[2],
                 dones=out[3], bootstrap_returns=boot,
                 loss_mask=out[4]).validate(tok.vocab_size)


def next_window_rows(batch: RLBatch) -> np.ndarray:
  """Row of each window's successor (the same episode's next window), -1 for an episode's last.

  `to_rl_batch` emits an episode's windows in order, and a window continues exactly when it
  ends with a look-ahead action (action_mask 1, loss_mask 0), so the successor is the next row.
  """
  if batch.loss_mask is None:
    return np.full(batch.tokens.shape[0], -1, np.int64)
  ahead = (np.asarray(batch.action_mask) > np.asarray(batch.loss_mask)).any(-1)
  if ahead[-1:].any():
    raise ValueError("the last row has a look-ahead action but no successor row")
  rows = np.arange(len(ahead))
  return np.where(ahead, rows + 1, -1)


def stack_batches(batches: Sequence[RLBatch]) -> RLBatch:
  """Concatenates batches along B (all must have the same T)."""
  return jax.tree.map(lambda *xs: np.concatenate(xs, axis=0), *batches)
