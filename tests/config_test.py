"""Configs: every preset of every config file converts to its dataclass, with agreeing types."""

import dataclasses
import importlib
import types
import typing

from absl.testing import absltest
from absl.testing import parameterized

from jaxlm import config as config_lib
from jaxlm.algos import ilql
from jaxlm.algos import sft

# config file (experiments/configs/<name>.py) -> the library module whose Config it builds.
CONFIG_FILES = {"ilql": "jaxlm.algos.ilql", "bc": "jaxlm.algos.bc", "mc": "jaxlm.algos.mc",
                "sft": "jaxlm.algos.sft", "search": "jaxlm.algos.test_time",
                "grpo": "jaxlm.algos.online", "ppo": "jaxlm.algos.online",
                "apr": "jaxlm.algos.apr", "e3": "jaxlm.algos.e3", "calm": "jaxlm.algos.calm",
                "context_distill": "jaxlm.algos.context_distill_experiments",
                "ktiw": "jaxlm.algos.ktiw"}


def _presets():
  for name, module in CONFIG_FILES.items():
    for preset in importlib.import_module(f"experiments.configs.{name}").PRESETS:
      yield f"{name}_{preset}", name, module, preset


def _type_errors(config, path=""):
  """Fields whose value disagrees with the dataclass annotation (int counts as float)."""
  errors = []
  hints = typing.get_type_hints(type(config))
  for f in dataclasses.fields(config):
    value, hint = getattr(config, f.name), hints[f.name]
    if dataclasses.is_dataclass(value):
      errors += _type_errors(value, f"{path}{f.name}.")
      continue
    options = (typing.get_args(hint) if typing.get_origin(hint) in (typing.Union,
                                                                     types.UnionType)
               else (hint,))
    ok = False
    for option in options:
      origin = typing.get_origin(option) or option
      if option is type(None):
        ok |= value is None
      elif origin is typing.Literal:
        ok |= value in typing.get_args(option)
      elif origin is float:
        ok |= isinstance(value, (int, float)) and not isinstance(value, bool)
      elif origin is int:
        ok |= isinstance(value, int) and not isinstance(value, bool)
      elif isinstance(origin, type):
        ok |= isinstance(value, origin)
      else:
        ok = True  # type aliases the check does not resolve
    if not ok:
      errors.append(f"{path}{f.name}={value!r} is not {hint}")
  return errors


def _normal(x):
  """Lists and tuples alike (ConfigDicts hold either)."""
  if isinstance(x, dict):
    return {k: _normal(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_normal(v) for v in x]
  return x


class ConfigTest(parameterized.TestCase):

  @parameterized.named_parameters(*_presets())
  def test_preset_converts_and_round_trips(self, name, module, preset):
    algo = importlib.import_module(module)
    d = importlib.import_module(f"experiments.configs.{name}").get_config(preset).to_dict()
    config = config_lib.from_dict(algo.Config, d)  # unknown keys raise here
    self.assertEqual(_type_errors(config), [])
    self.assertEqual(_normal(config_lib.to_dict(config)), _normal(d))  # nothing dropped

  @parameterized.parameters("ilql", "bc", "mc", "sft")
  def test_config_dict_holds_every_field_at_its_default(self, algo_name):
    algo = importlib.import_module(f"jaxlm.algos.{algo_name}")
    c = config_lib.config_dict(algo.Config())
    self.assertEqual(config_lib.from_dict(algo.Config, c.to_dict()), algo.Config())
    self.assertEqual(set(c.keys()), {f.name for f in dataclasses.fields(algo.Config)})

  def test_placeholders_can_be_set(self):
    c = config_lib.config_dict(ilql.Config())
    self.assertIsNone(c.bc_weight)
    c.bc_weight = 0.5  # a typed placeholder accepts its type
    self.assertEqual(config_lib.from_dict(ilql.Config, c.to_dict()).bc_weight, 0.5)
    with self.assertRaises(TypeError):
      c.adv_clip = "large"

  def test_nested_keys_keep_the_enclosing_default(self):
    # SFT's own TrainConfig (lr 3e-3, weight decay 0.1) stays where a preset sets one field.
    config = config_lib.from_dict(sft.Config, {"train": {"num_steps": 7}})
    self.assertEqual(config.train.num_steps, 7)
    self.assertEqual(config.train.lr, sft.Config().train.lr)
    self.assertEqual(config.train.weight_decay, 0.1)
    mesh = config_lib.from_dict(sft.Config, {"train": {"mesh": {"data": 1, "fsdp": -1,
                                                                 "tensor": 1}}})
    self.assertEqual(mesh.train.mesh, (1, -1, 1))

  def test_unknown_keys_name_themselves_and_where(self):
    with self.assertRaisesRegex(ValueError, r"unknown TrainConfig config key\(s\) \['lr_typo'\] "
                                r"under 'train'"):
      config_lib.from_dict(ilql.Config, {"train": {"lr_typo": 1.0}})
    with self.assertRaisesRegex(ValueError, r"unknown Config config key\(s\) \['num_steps'\]"):
      config_lib.from_dict(ilql.Config, {"num_steps": 3})  # moved into train

  def test_train_config_validates(self):
    with self.assertRaisesRegex(ValueError, "batch_size=6 is not divisible by accum_steps=4"):
      config_lib.TrainConfig(batch_size=6, accum_steps=4)
    with self.assertRaisesRegex(ValueError, "num_steps=0"):
      config_lib.TrainConfig(num_steps=0)
    with self.assertRaisesRegex(ValueError, "mesh"):
      config_lib.TrainConfig(mesh=(1, 1))


if __name__ == "__main__":
  absltest.main()
