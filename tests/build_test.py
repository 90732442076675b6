"""BUILD must list every module, test and experiment with the deps their imports need.

The expected BUILD is derived from the source tree (each file's imports give its deps), so the
file cannot rot: `python tests/build_test.py --write` regenerates it after adding a module.
"""

import ast
import pathlib
import sys

from absl.testing import absltest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Import name -> PyPI distribution (rules_python `requirement`).
THIRD_PARTY = {
    "absl": "absl-py", "chex": "chex", "flax": "flax", "gguf": "gguf", "jax": "jax",
    "matplotlib": "matplotlib", "ml_collections": "ml_collections", "numpy": "numpy",
    "optax": "optax", "orbax": "orbax-checkpoint", "safetensors": "safetensors", "scipy": "scipy",
    "tensorboardX": "tensorboardX", "torch": "torch", "tqdm": "tqdm",
    "transformers": "transformers",
}
HEADER = '''# Generated from the source tree by `python tests/build_test.py --write`;
# tests/build_test.py fails when this file and the tree disagree. setup.py + pytest remain the
# working path on machines without Bazel's rule sets.
load("@pypi//:requirements.bzl", "requirement")
load("@rules_python//python:defs.bzl", "py_binary", "py_library", "py_test")

package(default_visibility = ["//visibility:public"])
'''


def _sources(folder: str, pattern: str = "*.py") -> list[pathlib.Path]:
  return sorted(p.relative_to(ROOT) for p in (ROOT / folder).rglob(pattern)
                if "__pycache__" not in p.parts)


def _label(path: pathlib.Path) -> str:
  return str(path.with_suffix(""))


def _module_file(module: str) -> pathlib.Path | None:
  """'jaxlm.models.transformer' -> its file relative to ROOT, or None if not ours."""
  base = ROOT / pathlib.Path(*module.split("."))
  for candidate in (base.with_suffix(".py"), base / "__init__.py"):
    if candidate.exists():
      return candidate.relative_to(ROOT)
  return None


def _deps(path: pathlib.Path) -> list[str]:
  """Targets and requirements for everything `path` imports."""
  ours, theirs = set(), set()
  for node in ast.walk(ast.parse((ROOT / path).read_text())):
    names = []
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      # `from pkg import mod` needs pkg/mod.py; `from mod import name` needs mod.
      names = [f"{node.module}.{a.name}" if _module_file(f"{node.module}.{a.name}")
               else node.module for a in node.names]
    for name in names:
      top = name.split(".")[0]
      if top in THIRD_PARTY:
        theirs.add(f'requirement("{THIRD_PARTY[top]}")')
      elif top in ("jaxlm", "experiments", "benchmarks"):
        target = _module_file(name)
        if target is not None and target != path:
          ours.add(f'":{_label(target)}"')
  return sorted(ours) + sorted(theirs)


def _data(path: pathlib.Path) -> list[str]:
  data_dir = ROOT / path.parent / "data"
  if path.name == "__init__.py" or not data_dir.is_dir():
    return []
  stem = path.stem
  return [f'"{p.relative_to(ROOT)}"' for p in sorted(data_dir.iterdir())
          if p.is_file() and p.stem.startswith(stem)]


def _rule(kind: str, path: pathlib.Path, **extra) -> str:
  lines = [f"{kind}(", f'    name = "{_label(path)}",', f'    srcs = ["{path}"],']
  if kind != "py_library":
    lines.append(f'    main = "{path}",')
  data = _data(path)
  if data:
    lines.append(f"    data = [{', '.join(data)}],")
  for key, value in extra.items():
    lines.append(f"    {key} = {value},")
  deps = _deps(path)
  if deps:
    lines.append("    deps = [")
    lines.extend(f"        {d}," for d in deps)
    lines.append("    ],")
  lines.append(")")
  return "\n".join(lines)


def render_build() -> str:
  rules = [_rule("py_library", p) for p in _sources("jaxlm")]
  rules += [_rule("py_library", p) for p in _sources("experiments/configs")]
  rules += [_rule("py_binary", p) for p in _sources("experiments", "*.py")
            if p.parent == pathlib.Path("experiments") and p.name != "__init__.py"]
  rules += [_rule("py_library", p) for p in _sources("experiments", "__init__.py")
            if p.parent == pathlib.Path("experiments")]
  rules += [_rule("py_binary" if p.name != "__init__.py" else "py_library", p)
            for p in _sources("benchmarks")]
  rules += [_rule("py_test", p, size='"medium"') for p in _sources("tests", "*_test.py")]
  rules += [_rule("py_library", p) for p in _sources("tests", "conftest.py")]
  return HEADER + "\n" + "\n\n".join(rules) + "\n"


class BuildTest(absltest.TestCase):

  def test_build_lists_every_module_test_and_experiment(self):
    expected = render_build()
    actual = (ROOT / "BUILD").read_text()
    if actual != expected:
      missing = [l for l in expected.splitlines() if l.strip().startswith("name") and
                 l not in actual.splitlines()]
      self.fail("BUILD is out of date with the source tree; run `python tests/build_test.py "
                f"--write`. Targets missing or changed: {missing[:10]}")

  def test_every_source_file_has_a_target(self):
    build = (ROOT / "BUILD").read_text()
    for path in _sources("jaxlm") + _sources("tests", "*_test.py"):
      self.assertIn(f'srcs = ["{path}"]', build)


if __name__ == "__main__":
  if "--write" in sys.argv:
    (ROOT / "BUILD").write_text(render_build())
    print(f"wrote {ROOT / 'BUILD'}")
  else:
    absltest.main()
