"""Orbax checkpoints of the train state, the data-iterator position and the config.

One checkpoint per saved step `<dir>/<step>/` holds three items: `state` (the TrainState pytree,
rng included, via tensorstore), `data` (iterator position, JSON) and `config` (JSON). Orbax writes
into a temporary directory and renames it only after every item is committed, so a process
killed mid-save leaves no half-written step: the next run restores the last complete one (stale
temporary directories are removed on start-up). Only the last `keep` steps are kept.

Restoring takes a target state (concrete or `jax.ShapeDtypeStruct`s, optionally with shardings)
and checks every saved array's shape against it first, so a checkpoint from a different model
config fails with a ValueError naming the parameter rather than a tensorstore error. A complete
step whose files were damaged later (truncated, emptied or deleted) is skipped with a warning
naming the step and the error, set aside as `<step>.corrupt.<time>` (never deleted; a resumed run
saves that step again) and the next older intact step is restored.

Orbax reports every save step by step at INFO level; `quiet_orbax_logs()` (called by the
experiments' launcher, never at import) drops those records (warnings and errors pass), so a
training log shows our own progress lines.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any

from absl import logging as absl_logging
import jax
import orbax.checkpoint as ocp


_TMP_SUFFIX = ".orbax-checkpoint-tmp"  # Names orbax's unfinished saves (`<step>.<suffix>`).


class _DropOrbaxInfo(logging.Filter):
  """Passes warnings and errors, and INFO records that do not come from orbax's modules."""

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or f"{os.sep}orbax{os.sep}" not in record.pathname


def quiet_orbax_logs() -> None:
  """Drops orbax's INFO records from the absl logger (idempotent)."""
  logger = logging.getLogger("absl")
  if not any(isinstance(f, _DropOrbaxInfo) for f in logger.filters):
    logger.addFilter(_DropOrbaxInfo())


class CheckpointNotFoundError(FileNotFoundError, ValueError):
  """No complete checkpoint where one was required (e.g. --resume)."""


class CheckpointMismatchError(ValueError):
  """A checkpoint does not fit the current config (an array's shape or presence differs)."""


class CorruptCheckpointError(ValueError):
  """A checkpoint that cannot be read (damaged files); names the step and the error."""


def _path_name(path) -> str:
  parts = []
  for k in path:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
  return ".".join(parts)


def to_json(config: Any) -> Any:
  """A JSON-able copy of a config (dataclass, ConfigDict, dict or None)."""
  if config is None:
    return {}
  if dataclasses.is_dataclass(config):
    config = dataclasses.asdict(config)
  elif hasattr(config, "to_dict"):
    config = config.to_dict()
  if isinstance(config, dict):
    return {str(k): to_json(v) if isinstance(v, dict) or dataclasses.is_dataclass(v)
            else (list(v) if isinstance(v, tuple) else v) for k, v in config.items()}
  return config


class Checkpointer:
  """Saves and restores (state, data position, config) with an orbax CheckpointManager.

  Args:
    directory: checkpoint root (created on the first save).
    keep: number of most recent checkpoints kept.
    async_save: write in a background thread (the device->host copy is still synchronous,
      so donating the state right after `save` is safe).
  """

  def __init__(self, directory: str, *, keep: int = 3, async_save: bool = False):
    if keep < 1:
      raise ValueError(f"keep={keep} must be >= 1")
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, cleanup_tmp_directories=True,
        enable_async_checkpointing=async_save)
    handlers = {"state": ocp.StandardCheckpointHandler(), "data": ocp.JsonCheckpointHandler(),
                "config": ocp.JsonCheckpointHandler()}
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_handlers=handlers)

  def save(self, step: int, state: Any, *, data_state: dict | None = None,
           config: Any = None, force: bool = True) -> bool:
    """Writes checkpoint `step` (atomic). Returns whether a save was started."""
    args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                              data=ocp.args.JsonSave(data_state or {}),
                              config=ocp.args.JsonSave(to_json(config)))
    return self._manager.save(int(step), args=args, force=force)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()

  def _check_shapes(self, step: int, target: Any) -> None:
    saved = {}
    for _, meta in jax.tree_util.tree_flatten_with_path(
        self._manager.item_metadata(step)["state"].tree)[0]:
      saved[meta.name] = tuple(meta.shape)
    for path, leaf in jax.tree_util.tree_flatten_with_path(target)[0]:
      name = _path_name(path)
      if name not in saved:
        raise CheckpointMismatchError(
            f"checkpoint step {step} in {self.directory} has no entry {name!r} required by the "
            "current config")
      if saved[name] != tuple(leaf.shape):
        raise CheckpointMismatchError(
            f"checkpoint step {step} in {self.directory}: {name!r} has shape {saved[name]} but "
            f"the current config expects {tuple(leaf.shape)}")

  def restore(self, target: Any, shardings: Any = None, step: int | None = None
              ) -> tuple[Any, dict, dict]:
    """Restores (state, data_state, config) at `step` (default: the newest intact one).

    Args:
      target: a state pytree (arrays or ShapeDtypeStructs) giving structure, shapes, dtypes.
      shardings: matching tree of shardings for the restored arrays (default: the target's
        own `.sharding` where present, else single-device).
      step: which checkpoint; None = the newest complete one that can be read: unreadable
        newer ones are skipped (warning) and moved aside (module docstring).

    Raises:
      CheckpointNotFoundError: no complete checkpoint in the directory.
      CheckpointMismatchError: a saved array's shape differs from the target's (names it).
      CorruptCheckpointError: `step` (or, with step=None, every step) cannot be read.
    """
    steps = self.all_steps()
    if not steps or (step is not None and step not in steps):
      raise CheckpointNotFoundError(
          f"no complete checkpoint{'' if step is None else f' for step {step}'} in "
          f"{self.directory} (found steps {steps})")
    skipped = []
    for s in [step] if step is not None else sorted(steps, reverse=True):
      try:
        out = self._restore(s, target, shardings)
      except CheckpointMismatchError:
        raise
      except Exception as e:  # pylint: disable=broad-except  # Any damage: try an older step.
        why = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"
        skipped.append((s, why))
        if step is None:
          absl_logging.warning("checkpoint step %d in %s cannot be read (%s); trying an older "
                               "one", s, self.directory, why)
        continue
      self._set_aside([s for s, _ in skipped])
      return out
    raise CorruptCheckpointError(f"no readable checkpoint in {self.directory}: " + "; ".join(
        f"step {s}: {why}" for s, why in skipped))

  def _restore(self, step: int, target: Any, shardings: Any) -> tuple[Any, dict, dict]:
    self._check_shapes(step, target)
    if shardings is None:
      abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(
          x.shape, x.dtype, sharding=getattr(x, "sharding", None)), target)
    else:
      abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                              target, shardings)
    out = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore(),
        config=ocp.args.JsonRestore()))
    return out["state"], dict(out["data"] or {}), dict(out["config"] or {})

  def _set_aside(self, steps: list[int]) -> None:
    """Renames unreadable steps to `<step>.corrupt.<time>` so that their step can be saved."""
    if not steps:
      return
    if jax.process_index() == 0:
      stamp = time.strftime("%Y%m%d-%H%M%S")
      for s in steps:
        aside = os.path.join(self.directory, f"{s}.corrupt.{stamp}")
        os.rename(os.path.join(self.directory, str(s)), aside)
        absl_logging.warning("moved unreadable checkpoint step %d to %s", s, aside)
    self._manager.reload()


def require_checkpoint(*directories: str) -> None:
  """Raises CheckpointNotFoundError unless one of `directories` holds a complete checkpoint.

  A directory holding only a save interrupted by a kill (an orbax temporary directory) passes
  with a warning: the run started there and resumes from step 0.
  """
  why = []
  for d in directories:
    if not os.path.isdir(d):
      why.append(f"checkpoint directory {d} does not exist")
      continue
    manager = ocp.CheckpointManager(os.path.abspath(d),
                                    options=ocp.CheckpointManagerOptions(read_only=True))
    latest = manager.latest_step()
    manager.close()
    if latest is not None:
      return
    if any(_TMP_SUFFIX in name for name in os.listdir(d)):
      absl_logging.warning("--resume: the only checkpoint save in %s was interrupted; the run "
                           "restarts from step 0", d)
      return
    why.append(f"{d} holds none")
  raise CheckpointNotFoundError(f"--resume: no complete checkpoint: {'; '.join(why)}")


# TrainConfig fields that do not change what a run computes: a resume may change them.
_RUN_POLICY = ("allow_config_change", "on_nonfinite", "log_every", "checkpoint_every",
               "keep_checkpoints", "transfer_guard")


def config_changes(saved: dict, current: Any) -> list[str]:
  """`"path: saved -> current"` for each field where a checkpoint's config and `current` differ.

  Fields in `_RUN_POLICY` are not compared.
  """
  def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
      if isinstance(v, dict) and v:
        out.update(flat(v, f"{prefix}{k}."))
      elif k not in _RUN_POLICY:
        out[prefix + k] = v
    return out
  old, new = flat(saved), flat(json.loads(json.dumps(to_json(current))))
  missing = "<absent>"
  return [f"{k}: {old.get(k, missing)!r} -> {new.get(k, missing)!r}"
          for k in sorted(old.keys() | new.keys()) if old.get(k, missing) != new.get(k, missing)]
