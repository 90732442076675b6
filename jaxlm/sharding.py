"""Device meshes, logical-axis rules and shardings derived from abstract state.

Parameters carry logical axis names (`embed`, `mlp`, `heads`, `kv_heads`, `kv`, `vocab`,
`layers`) as flax `nn.Partitioned` boxes. One rule table maps each logical name to mesh axes of
a (`data`, `fsdp`, `tensor`) mesh, in the style of MaxText/levanter:

  * `data`   pure data parallelism (parameters replicated),
  * `fsdp`   data parallelism whose parameters/optimizer state are sharded on `embed`
             (ZeRO-3 / FSDP, Rajbhandari et al. 2020),
  * `tensor` Megatron-style tensor parallelism over heads, MLP width and vocabulary
             (Shoeybi et al. 2019).

The batch is split over (`data`, `fsdp`). Shardings come from `jax.eval_shape` of the init, so
the state is created directly sharded (`init_sharded`) and never materialised on one device.

A dimension that a mesh axis does not divide evenly is replicated over that axis instead (one
logged warning per parameter) rather than failing: correctness is kept, memory savings are lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import math
from typing import Any

from absl import logging
import flax.linen as nn
import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
import numpy as np

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

Rules = tuple[tuple[str, str | tuple[str, ...] | None], ...]

DEFAULT_RULES: Rules = (
    ("batch", BATCH_AXES),  # activations / data batches
    ("embed", "fsdp"),      # residual width: FSDP storage axis
    ("mlp", "tensor"),      # MLP hidden width
    ("heads", "tensor"),    # query heads
    ("kv_heads", "tensor"),  # key/value heads (GQA)
    ("vocab", "tensor"),    # embedding rows / logits
    ("kv", None),           # head dim
    ("layers", None),       # scanned layer axis
    ("length", None),       # sequence axis
)


def make_mesh(data: int = -1, fsdp: int = 1, tensor: int = 1,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A (`data`, `fsdp`, `tensor`) mesh; one size may be -1 to take the remaining devices.

  Args:
    data, fsdp, tensor: mesh axis sizes; at most one is -1 (fill).
    devices: devices to use (default `jax.devices()`, i.e. all processes' devices).

  Returns:
    A `jax.sharding.Mesh` with axis names MESH_AXES.
  """
  devices = list(jax.devices() if devices is None else devices)
  sizes = [data, fsdp, tensor]
  fills = [i for i, s in enumerate(sizes) if s == -1]
  if len(fills) > 1:
    raise ValueError(f"at most one mesh axis may be -1, got (data, fsdp, tensor)={tuple(sizes)}")
  for name, s in zip(MESH_AXES, sizes):
    if s != -1 and s < 1:
      raise ValueError(f"mesh axis {name}={s} must be >= 1 or -1")
  known = math.prod(s for s in sizes if s != -1)
  if fills:
    if len(devices) % known:
      raise ValueError(f"{len(devices)} devices are not divisible by the fixed mesh axes "
                       f"(product {known}) of (data, fsdp, tensor)={tuple(sizes)}")
    sizes[fills[0]] = len(devices) // known
  if math.prod(sizes) != len(devices):
    raise ValueError(f"mesh (data, fsdp, tensor)={tuple(sizes)} needs {math.prod(sizes)} "
                     f"devices, have {len(devices)}")
  auto = (AxisType.Auto,) * len(MESH_AXES)  # GSPMD propagation, not sharding-in-types.
  try:
    return jax.make_mesh(tuple(sizes), MESH_AXES, devices=devices, axis_types=auto)
  except ValueError:  # Device layouts mesh_utils cannot tile (e.g. a device subset).
    return Mesh(np.asarray(devices).reshape(sizes), MESH_AXES, axis_types=auto)


def rules_from_config(rules: Mapping[str, Any] | Sequence[Any] | None) -> Rules:
  """Normalises a rule table given as a dict or (name, axes) pairs (e.g. from a ConfigDict).

  Mesh axes may be None, a string, or a list/tuple of strings; lists become tuples.
  """
  if rules is None:
    return DEFAULT_RULES
  items = rules.items() if isinstance(rules, Mapping) else rules
  out = []
  for name, axes in items:
    if isinstance(axes, (list, tuple)):
      axes = tuple(axes)
      bad = [a for a in axes if a not in MESH_AXES]
    else:
      bad = [] if axes is None or axes in MESH_AXES else [axes]
    if bad:
      raise ValueError(f"sharding rule {name!r} uses unknown mesh axes {bad}; "
                       f"mesh axes are {MESH_AXES}")
    out.append((name, axes))
  return tuple(out)


def _as_tuple(axes) -> tuple[str, ...]:
  if axes is None:
    return ()
  return tuple(axes) if isinstance(axes, tuple) else (axes,)


def logical_to_spec(names: Sequence[str | None], shape: Sequence[int], mesh: Mesh,
                    rules: Rules = DEFAULT_RULES, *, what: str = "array") -> P:
  """PartitionSpec for one array from its logical axis names.

  Mesh axes that do not divide their dimension, or that an earlier dimension already uses,
  are dropped for that dimension (replication) with a warning.
  """
  table = dict(rules)
  used: set[str] = set()
  spec = []
  for dim, (name, size) in enumerate(zip(names, shape)):
    if name is not None and name not in table:
      raise ValueError(f"{what}: logical axis {name!r} (dim {dim}) has no sharding rule; "
                       f"known: {sorted(table)}")
    kept = []
    for axis in _as_tuple(table.get(name)):
      n = mesh.shape[axis]
      if axis in used or (size % (n * math.prod(mesh.shape[a] for a in kept))):
        if n > 1:
          logging.warning("%s: dim %d (%s, size %d) not sharded over mesh axis %r (size %d); "
                          "replicating it instead", what, dim, name, size, axis, n)
        continue
      kept.append(axis)
    used.update(kept)
    spec.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
  return P(*spec)


def _is_box(x) -> bool:
  return isinstance(x, nn.Partitioned)


def tree_shardings(abstract_tree: Any, mesh: Mesh, rules: Rules = DEFAULT_RULES) -> Any:
  """NamedShardings for a (possibly boxed) abstract tree, e.g. `jax.eval_shape(init)`.

  `nn.Partitioned` leaves are sharded by their logical names; every other leaf (step counters,
  rngs, unboxed arrays) is replicated. The result has the structure of the *unboxed* tree.
  """
  def one(path, leaf):
    if _is_box(leaf):
      spec = logical_to_spec(leaf.names, leaf.value.shape, mesh, rules,
                             what=jax.tree_util.keystr(path))
      return NamedSharding(mesh, spec)
    return NamedSharding(mesh, P())
  return jax.tree_util.tree_map_with_path(one, abstract_tree, is_leaf=_is_box)


def init_sharded(init_fn: Callable[..., Any], mesh: Mesh, *args,
                 rules: Rules = DEFAULT_RULES) -> tuple[Any, Any]:
  """Runs `init_fn(*args)` under jit so every leaf is created directly on its shards.

  Args:
    init_fn: pure function returning a pytree that may contain `nn.Partitioned` boxes
      (e.g. a TrainState built from `model.init`); it is unboxed on the way out.
    mesh: the device mesh.
    *args: arguments of `init_fn` (e.g. a PRNG key); replicated.
    rules: logical-axis rule table.

  Returns:
    (state, shardings): the unboxed state and the matching tree of NamedShardings.
  """
  abstract = jax.eval_shape(init_fn, *args)
  shardings = tree_shardings(abstract, mesh, rules)
  unboxed_init = lambda *a: nn.meta.unbox(init_fn(*a))
  state = jax.jit(unboxed_init, out_shardings=shardings)(*args)
  return state, shardings


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Sharding of a data batch: leading (batch) axis over (`data`, `fsdp`)."""
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """Places a host batch (same on every process) on the mesh, split along its batch axis."""
  n = math.prod(mesh.shape[a] for a in BATCH_AXES)
  for path, leaf in jax.tree_util.tree_leaves_with_path(batch):
    if np.ndim(leaf) == 0 or np.shape(leaf)[0] % n:
      raise ValueError(f"batch{jax.tree_util.keystr(path)} has shape {np.shape(leaf)}; its "
                       f"leading axis must be divisible by data*fsdp={n}")
  return jax.device_put(batch, batch_sharding(mesh))


def shard_params(params: Any, mesh: Mesh, rules: Rules = DEFAULT_RULES) -> Any:
  """Places boxed params (e.g. fresh `model.init(...)["params"]`) on the mesh; returns unboxed."""
  return jax.device_put(nn.meta.unbox(params), tree_shardings(params, mesh, rules))
