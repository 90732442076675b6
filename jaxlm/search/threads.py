"""Spawn / join decoding of parent and child threads (Adaptive Parallel Reasoning).

Pan et al. 2025 ("Learning Adaptive Parallel Reasoning with Language Models", APR) let a parent
thread write a spawn block; child threads then decode in parallel, and the parent resumes from a
join context that holds only the children's outcomes. ``run`` orchestrates a batch of rollouts:

  1. decode every active parent until <eos> or the spawn-end token (one batched call);
  2. for each parent that spawned, read its children's prompts from the spawn block and decode
     ALL children of ALL rollouts as one batch (same decode function, one call);
  3. append each parent's join context (``fmt.join``, the one definition the training traces
     are written with) and resume; repeat until no parent spawns or a budget is hit.

A child's context is its own prompt (its starting state): in APR a child never sees the parent's
trace, so children share only the batched decode call. Children may not spawn (one level).

Decoding is injected: ``decode(prompts, max_new_tokens, stop_ids, key) -> completions`` with
token-id lists in and out (a completion keeps its stop token; a ``Completion`` also carries the
sampler's log-prob of each id, which RL compares with the trainer's). ``decoding.make_decode``
wraps ``jaxlm.generate`` (jitted KV-cache sampling) on a transformer; tests inject a scripted
decoder.
The format is injected too (``ThreadFormat``; Countdown's is ``countdown_traces.APR_THREADS``),
so nothing here knows a task. This lives in ``search/`` beside the other test-time decoders
(budget forcing in ``search/lm.py``); RL rollouts will call it.

Accounting per rollout (``Rollout``): decoded tokens over all threads (stop tokens included; the
total-token budget), the longest thread (bos, prompt, join blocks and decoded tokens: what the
per-thread context cap bounds), sequential decode rounds it took part in (the latency proxy),
sequential tokens (per round the longest segment it decoded, summed) and children spawned.

``interleave`` is the same machinery without children: one thread whose segments alternate
between the model and the environment. The model decodes until <eos> or a trigger token; the
environment then writes its segment (e3's verdict after each attempt) and the model resumes.
Environment tokens are context, not decoded (RL does not train on them).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Protocol, Sequence

import jax

DecodeFn = Callable[[Sequence[Sequence[int]], Sequence[int], Sequence[int], jax.Array],
                    list[list[int]]]
BUDGET_STOPS = ("context", "tokens", "rounds")  # Rollout.stop when a budget ended it


class Completion(list):
  """A decoded id list with the sampler's log-prob of each id (under the distribution it sampled
  from) in `logprobs`; a plain list from a decoder means the log-probs are unknown."""

  def __init__(self, ids: Sequence[int], logprobs: Sequence[float]):
    super().__init__(ids)
    if len(logprobs) != len(self):
      raise ValueError(f"Completion: {len(logprobs)} log-probs for {len(self)} ids")
    self.logprobs = list(logprobs)


class ThreadFormat(Protocol):
  """Text hooks of a spawn / join format.

  Attributes:
    spawn_end: the one-token string that closes a spawn block (decoding stops on it).
  """
  spawn_end: str

  def child_prompts(self, parent_text: str) -> list[str]:
    """The children's prompts from the spawn block that ends ``parent_text``."""

  def child_outcome(self, child_text: str) -> Any:
    """What the parent may read of a finished (or cut) child."""

  def join(self, parent_text: str, outcomes: Sequence[Any]) -> str:
    """The text the parent resumes from; it starts with ``parent_text``."""


class Tokenizer(Protocol):
  bos_id: int
  eos_id: int

  def encode(self, text: str) -> list[int]: ...

  def decode(self, ids: Sequence[int]) -> str: ...


@dataclasses.dataclass(frozen=True)
class Budget:
  """Limits of one rollout.

  Attributes:
    max_rounds: sequential decode rounds (a spawn costs two more: children, then the parent's
      resumption; a spawn that no longer fits ends the rollout).
    max_total_tokens: decoded tokens over all its threads.
    max_thread_tokens: per-thread context cap: bos, prompt, join blocks and decoded tokens.
  """
  max_rounds: int = 8
  max_total_tokens: int = 8192
  max_thread_tokens: int = 1024

  def __post_init__(self):
    if min(self.max_rounds, self.max_total_tokens, self.max_thread_tokens) < 1:
      raise ValueError(f"every Budget field must be >= 1, got {self}")


@dataclasses.dataclass(frozen=True)
class Rollout:
  """One finished rollout.

  Attributes:
    parent: the parent's text: prompt, decoded segments and join blocks (no bos / eos).
    children: each child's text (prompt + decoded), in spawn order over all rounds.
    decoded_tokens: tokens decoded over all threads (stop tokens included).
    longest_thread: tokens in the longest thread (bos, prompt, joins, decoded tokens).
    rounds: sequential decode rounds (parent segments + child batches).
    sequential_tokens: per round, the longest segment this rollout decoded, summed.
    stop: "eos" (the parent finished), one of BUDGET_STOPS (a budget ended it), or
      "malformed" (a spawn block the format could not read).
    thread_ids: each thread's context ids as decoded (bos, prompt, decoded segments with their
      stop tokens, join blocks), the parent first, then the children in spawn order.
    thread_decoded: per thread, True at the ids the model decoded (what RL trains on), False at
      bos, prompts and join blocks.
    thread_logp: per thread, the sampler's log-prob of each decoded id (NaN when the decoder
      returned plain lists), 0 at the others.
  """
  parent: str
  children: tuple[str, ...]
  decoded_tokens: int
  longest_thread: int
  rounds: int
  sequential_tokens: int
  stop: str
  thread_ids: tuple[tuple[int, ...], ...] = ()
  thread_decoded: tuple[tuple[bool, ...], ...] = ()
  thread_logp: tuple[tuple[float, ...], ...] = ()

  @property
  def num_children(self) -> int:
    return len(self.children)


@dataclasses.dataclass
class _Thread:
  ids: list[int]
  text: str
  decoded: list[bool] = dataclasses.field(default_factory=list)
  logp: list[float] = dataclasses.field(default_factory=list)

  def __post_init__(self):
    self.decoded = self.decoded or [False] * len(self.ids)
    self.logp = self.logp or [0.0] * len(self.ids)


@dataclasses.dataclass
class _State:
  parent: _Thread
  children: list[_Thread] = dataclasses.field(default_factory=list)
  decoded: int = 0
  rounds: int = 0
  sequential: int = 0
  stop: str | None = None

  def room(self, thread: _Thread, budget: Budget, share: int = 1) -> tuple[int, str]:
    """(tokens the thread may decode, the budget that binds)."""
    context = budget.max_thread_tokens - len(thread.ids)
    tokens = (budget.max_total_tokens - self.decoded) // share
    return (context, "context") if context <= tokens else (tokens, "tokens")


def _decode_round(decode: DecodeFn, tok: Tokenizer, jobs: list[tuple[_State, _Thread, int]],
                  stop_ids: Sequence[int], key: jax.Array) -> list[list[int]]:
  """Decode each (rollout, thread, room) job in one call; append and account the tokens."""
  outs = decode([t.ids for _, t, _ in jobs], [n for _, _, n in jobs], list(stop_ids), key)
  if len(outs) != len(jobs):
    raise ValueError(f"decode returned {len(outs)} completions for {len(jobs)} prompts")
  longest = {}
  for (state, thread, room), out in zip(jobs, outs):
    if len(out) > room:
      raise ValueError(f"decode returned {len(out)} tokens for a budget of {room}")
    thread.ids += out
    thread.decoded += [True] * len(out)
    thread.logp += getattr(out, "logprobs", [math.nan] * len(out))
    thread.text += tok.decode([i for i in out if i != tok.eos_id])
    state.decoded += len(out)
    longest[id(state)] = max(longest.get(id(state), 0), len(out))
  for state in {id(s): s for s, _, _ in jobs}.values():
    state.rounds += 1
    state.sequential += longest[id(state)]
  return outs


def run(decode: DecodeFn, tok: Tokenizer, fmt: ThreadFormat, prompts: Sequence[str],
        budget: Budget, key: jax.Array) -> list[Rollout]:
  """Spawn / join rollouts of ``prompts`` (see the module docstring).

  Args:
    decode: ``(prompt id lists, max new tokens per prompt, stop ids, key) -> completion id
      lists`` (each at most its budget, ending at the first stop id if one was sampled).
    tok: encodes thread texts (contexts are [bos] + encode(text)) and decodes completions.
    fmt: the spawn / join format.
    prompts: the parents' prompt texts.
    budget: per-rollout limits.
    key: PRNG key, split once per decode call.

  Returns:
    One Rollout per prompt.
  """
  spawn_ids = tok.encode(fmt.spawn_end)
  if len(spawn_ids) != 1:
    raise ValueError(f"spawn_end {fmt.spawn_end!r} must be one token, got ids {spawn_ids}")
  thread = lambda text: _Thread([tok.bos_id] + tok.encode(text), text)
  states = [_State(thread(p)) for p in prompts]
  active = list(states)
  while active:
    key, k_parents, k_children = jax.random.split(key, 3)
    spawning = _parents(decode, tok, fmt, active, budget, spawn_ids[0], k_parents)
    spawning = [(s, [thread(p) for p in texts]) for s, texts in spawning]
    jobs = []
    for s, kids in spawning:
      s.children += kids
      rooms = [s.room(kid, budget, share=len(kids))[0] for kid in kids]
      jobs += [(s, kid, room) for kid, room in zip(kids, rooms) if room > 0]
    if jobs:
      _decode_round(decode, tok, jobs, [tok.eos_id], k_children)
    active = [s for s, kids in spawning if _join(tok, fmt, s, kids, budget)]
  return [Rollout(s.parent.text, tuple(k.text for k in s.children), s.decoded,
                  max(len(t.ids) for t in [s.parent] + s.children), s.rounds, s.sequential,
                  s.stop, tuple(tuple(t.ids) for t in [s.parent] + s.children),
                  tuple(tuple(t.decoded) for t in [s.parent] + s.children),
                  tuple(tuple(t.logp) for t in [s.parent] + s.children))
          for s in states]


def _parents(decode, tok, fmt, active, budget, spawn_id, key) -> list[tuple[_State, list[str]]]:
  """Decode the active parents to <eos> or a spawn; set ``stop`` of those that end here and
  return (rollout, child prompts) of those that spawn."""
  jobs, binding_of = [], {}
  for s in active:
    room, binding = s.room(s.parent, budget)
    if s.rounds >= budget.max_rounds:
      s.stop = "rounds"
    elif room <= 0:
      s.stop = binding
    else:
      jobs.append((s, s.parent, room))
      binding_of[id(s)] = binding
  if not jobs:
    return []
  spawning = []
  for (s, _, room), out in zip(jobs, _decode_round(decode, tok, jobs, [tok.eos_id, spawn_id],
                                                    key)):
    if out and out[-1] == tok.eos_id:
      s.stop = "eos"
    elif not out or out[-1] != spawn_id:
      if len(out) < room:
        raise ValueError(f"decode returned {len(out)} < {room} tokens without a stop token")
      s.stop = binding_of[id(s)]
    elif s.rounds + 2 > budget.max_rounds:  # children and the resumption would not fit
      s.stop = "rounds"
    else:
      try:
        spawning.append((s, fmt.child_prompts(s.parent.text)))
      except ValueError:
        s.stop = "malformed"
  return spawning


def _join(tok, fmt, s: _State, kids: list[_Thread], budget: Budget) -> bool:
  """Append the join context to the parent; False (and ``stop`` set) if it cannot resume."""
  try:
    text = fmt.join(s.parent.text, [fmt.child_outcome(k.text) for k in kids])
  except ValueError:
    s.stop = "malformed"
    return False
  if not text.startswith(s.parent.text):
    raise ValueError("fmt.join must extend the parent's text")
  join_ids = tok.encode(text[len(s.parent.text):])
  resumed = _Thread(s.parent.ids + join_ids, text, s.parent.decoded + [False] * len(join_ids),
                    s.parent.logp + [0.0] * len(join_ids))
  room, binding = s.room(resumed, budget)
  if room <= 0:  # the parent could not decode after the join block: end at the spawn
    s.stop = binding
    return False
  s.parent = resumed
  return True


RespondFn = Callable[[int, str], tuple[str, bool]]


def interleave(decode: DecodeFn, tok: Tokenizer, prompts: Sequence[str], max_new_tokens: int,
               key: jax.Array, *, trigger: str | None = None, respond: RespondFn | None = None,
               max_rounds: int = 64) -> list[Rollout]:
  """Rollouts of one thread each, the environment writing a segment at each `trigger`.

  Args:
    decode, tok: as for ``run``.
    prompts: the prompt texts (contexts are [bos] + encode(text)).
    max_new_tokens: the trace budget: tokens after the prompt, the model's and the
      environment's (an environment segment that does not fit is cut and ends the rollout).
    key: PRNG key, split once per decode round.
    trigger: a one-token string that hands the turn to the environment (None: decode to <eos>
      in one round).
    respond: ``(rollout index, its text so far, ending with the trigger) -> (text to append,
      done)``; done appends <eos> after the text and ends the rollout. A ValueError from it
      ends the rollout as "malformed".
    max_rounds: model segments per rollout.

  Returns:
    One single-thread Rollout per prompt; ``stop`` is "eos" (the model ended it), "env" (the
    environment did), "tokens" (the budget), "rounds" or "malformed".
  """
  if max_new_tokens < 1:
    raise ValueError(f"interleave: max_new_tokens={max_new_tokens} must be >= 1")
  stops = [tok.eos_id]
  if trigger is not None:
    ids = tok.encode(trigger)
    if len(ids) != 1 or respond is None:
      raise ValueError(f"trigger {trigger!r} must be one token (ids {ids}) and come with "
                       "respond")
    stops.append(ids[0])
  states = [_State(_Thread([tok.bos_id] + tok.encode(p), p)) for p in prompts]
  ends = [len(s.parent.ids) + max_new_tokens for s in states]
  active = list(range(len(states)))
  while active:
    key, k = jax.random.split(key)
    jobs = [(states[i], states[i].parent, ends[i] - len(states[i].parent.ids)) for i in active]
    outs = _decode_round(decode, tok, jobs, stops, k)
    turn = []
    for i, out in zip(active, outs):
      if out and out[-1] == tok.eos_id:
        states[i].stop = "eos"
      elif not out or out[-1] != stops[-1]:  # with no trigger, stops[-1] is <eos>
        states[i].stop = "tokens"
      else:
        turn.append(i)
    active = [i for i in turn if _env_turn(tok, states[i], respond, i, ends[i], max_rounds)]
  return [Rollout(s.parent.text, (), s.decoded, len(s.parent.ids), s.rounds, s.sequential,
                  s.stop, (tuple(s.parent.ids),), (tuple(s.parent.decoded),),
                  (tuple(s.parent.logp),)) for s in states]


def _env_turn(tok, s: _State, respond: RespondFn, index: int, end: int, max_rounds: int
              ) -> bool:
  """Append the environment's segment (cut at `end` tokens); False (and ``stop`` set) if the
  model does not decode again."""
  try:
    text, done = respond(index, s.parent.text)
  except ValueError:
    s.stop = "malformed"
    return False
  ids = tok.encode(text) + [tok.eos_id] * done
  fit = ids[:end - len(s.parent.ids)]
  s.parent.ids += fit
  s.parent.decoded += [False] * len(fit)
  s.parent.logp += [0.0] * len(fit)
  s.parent.text += tok.decode([t for t in fit if t != tok.eos_id])
  if len(fit) < len(ids) or (not done and len(s.parent.ids) >= end):
    s.stop = "tokens"
  elif done:
    s.stop = "env"
  elif s.rounds >= max_rounds:
    s.stop = "rounds"
  return s.stop is None
