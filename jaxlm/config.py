"""Run configuration: the shared `TrainConfig` and one dict <-> dataclass conversion.

Inside the library every configuration is a frozen dataclass whose defaults are the only
defaults. Each algorithm's config composes a `TrainConfig` (field `train`) for what every
training run has: steps, batch, optimizer and schedule, clipping, accumulation, seed, logging,
checkpointing and the device mesh (levanter's one `TrainerConfig` composed into every run).

`experiments/configs/*.py` start from `config_dict(Config())`, a ConfigDict holding every field
at its library default, and override what a preset changes; `from_dict(Config, d)` turns the
(overridden) dict back into the dataclass, naming any unknown key with the path to it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Union

from jaxlm import sharding as sharding_lib


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """One training run, as `jaxlm.train.fit` runs it.

  Attributes:
    num_steps: optimizer updates.
    batch_size: rows (windows, sequences) per update, global over all devices.
    lr: peak AdamW learning rate (linear warmup, then cosine decay to lr / 10).
    warmup: linear warmup steps.
    weight_decay: decoupled weight decay on matrices (rank >= 2).
    clip: global gradient-norm clip (0 = none).
    accum_steps: microbatches per update (gradient accumulation inside the jitted step).
    seed: initialisation, data order and step rngs (algorithms document what else it seeds).
    log_every: steps between logged metrics (the loop's only host syncs).
    checkpoint_every: steps between checkpoints (a final one is always written).
    keep_checkpoints: most recent checkpoints kept.
    mesh: (data, fsdp, tensor) sizes; -1 fills with the remaining devices. A ConfigDict gives
      it as {"data": .., "fsdp": .., "tensor": ..}.
    sharding_rules: logical-axis -> mesh-axes table (`jaxlm.sharding.DEFAULT_RULES`); a
      ConfigDict gives it as a dict.
    transfer_guard: run the step under `jax.transfer_guard("disallow")`, so an implicit
      host <-> device copy inside it is an error.
    on_nonfinite: "stop" (a FloatingPointError naming the step and the non-finite metrics,
      checked at each logged step and before each checkpoint, so no checkpoint holds the bad
      state) or "continue" (log a warning and go on).
    allow_config_change: on resume, continue although the checkpoint's config differs from
      this one (the differences are logged); otherwise they are an error naming the fields.
  """
  num_steps: int = 1000
  batch_size: int = 64
  lr: float = 1e-3
  warmup: int = 50
  weight_decay: float = 0.0
  clip: float = 1.0
  accum_steps: int = 1
  seed: int = 0
  log_every: int = 50
  checkpoint_every: int = 500
  keep_checkpoints: int = 2
  mesh: tuple[int, int, int] = (-1, 1, 1)
  sharding_rules: sharding_lib.Rules = sharding_lib.DEFAULT_RULES
  transfer_guard: bool = False
  on_nonfinite: str = "stop"
  allow_config_change: bool = False

  def __post_init__(self):
    # One canonical order (a ConfigDict sorts its keys; each logical axis has one rule).
    object.__setattr__(self, "sharding_rules",
                       tuple(sorted(map(tuple, self.sharding_rules), key=lambda r: r[0])))
    for name in ("num_steps", "batch_size", "accum_steps", "log_every", "keep_checkpoints"):
      if getattr(self, name) < 1:
        raise ValueError(f"TrainConfig.{name}={getattr(self, name)} must be >= 1")
    if self.warmup < 0 or self.checkpoint_every < 0:
      raise ValueError(f"TrainConfig.warmup={self.warmup} and checkpoint_every="
                       f"{self.checkpoint_every} must be >= 0")
    if self.batch_size % self.accum_steps:
      raise ValueError(f"TrainConfig.batch_size={self.batch_size} is not divisible by "
                       f"accum_steps={self.accum_steps}")
    if self.on_nonfinite not in ("stop", "continue"):
      raise ValueError(f"TrainConfig.on_nonfinite={self.on_nonfinite!r}; expected 'stop' or "
                       "'continue'")
    if len(self.mesh) != len(sharding_lib.MESH_AXES):
      raise ValueError(f"TrainConfig.mesh={self.mesh} must give sizes of "
                       f"{sharding_lib.MESH_AXES}")


# Fields whose ConfigDict form differs from the dataclass form: (to dict, from dict).
_MESH = (lambda t: dict(zip(sharding_lib.MESH_AXES, t)),
         lambda d: tuple(d[k] for k in sharding_lib.MESH_AXES) if isinstance(d, dict)
         else tuple(d))
_RULES = (lambda r: {name: list(a) if isinstance(a, tuple) else a for name, a in r},
          sharding_lib.rules_from_config)
_SPECIAL = {"mesh": _MESH, "sharding_rules": _RULES}


def from_dict(cls: type, d: dict[str, Any], *, path: str = "", base: Any = None):
  """Builds the frozen dataclass `cls` from a nested dict (e.g. `ConfigDict.to_dict()`).

  Nested dataclass fields take dicts, tuple fields take lists, `mesh` and `sharding_rules` take
  their dict forms; a missing key keeps the library default (for a nested field, the value in
  the enclosing default, e.g. SFT's own `TrainConfig`). An unknown key is a ValueError naming
  its full path and the known keys.
  """
  fields = {f.name: f for f in dataclasses.fields(cls)}
  unknown = sorted(set(d) - set(fields))
  if unknown:
    where = f" under {path.rstrip('.')!r}" if path else ""
    raise ValueError(f"unknown {cls.__name__} config key(s) {unknown}{where}; known: "
                     f"{sorted(fields)}")
  defaults = cls() if base is None else base
  kw = {}
  for k, v in d.items():
    default = getattr(defaults, k)
    if k in _SPECIAL and v is not None:
      v = _SPECIAL[k][1](v)
    elif dataclasses.is_dataclass(default) and isinstance(v, dict):
      v = from_dict(type(default), v, path=f"{path}{k}.", base=default)
    elif isinstance(default, tuple) and isinstance(v, (list, tuple)):
      v = tuple(tuple(x) if isinstance(x, list) else x for x in v)
    kw[k] = v
  return dataclasses.replace(defaults, **kw)


def to_dict(config: Any) -> dict[str, Any]:
  """The nested-dict form of a config dataclass (inverse of `from_dict`; None stays None)."""
  out = {}
  for f in dataclasses.fields(config):
    v = getattr(config, f.name)
    if f.name in _SPECIAL:
      v = _SPECIAL[f.name][0](v)
    elif dataclasses.is_dataclass(v):
      v = to_dict(v)
    out[f.name] = v
  return out


def _optional_type(annotation: Any) -> type | None:
  """`X` of an `X | None` annotation (None when the annotation is not optional)."""
  if typing.get_origin(annotation) in (Union, types.UnionType):
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(args) == 1:
      return typing.get_origin(args[0]) or args[0]
  return None


def config_dict(config: Any):
  """An `ml_collections.ConfigDict` with every field of `config` (a dataclass instance).

  Fields that default to None become typed placeholders (`X | None` annotations), so a preset
  or a `--config.x=...` override can still set them. Use `from_dict(type(config),
  c.to_dict())` to get the dataclass back.
  """
  import ml_collections  # pylint: disable=g-import-not-at-top
  hints = typing.get_type_hints(type(config))
  c = ml_collections.ConfigDict()
  for f in dataclasses.fields(config):
    v = getattr(config, f.name)
    if v is None:
      kind = _optional_type(hints[f.name])
      if kind is None:
        raise TypeError(f"{type(config).__name__}.{f.name} defaults to None but its annotation "
                        f"{hints[f.name]} is not optional")
      v = ml_collections.config_dict.placeholder(kind)
    elif f.name in _SPECIAL:
      v = ml_collections.ConfigDict(_SPECIAL[f.name][0](v))
    elif dataclasses.is_dataclass(v):
      v = config_dict(v)
    c[f.name] = v
  return c
