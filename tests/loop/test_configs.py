"""Config files and typed command-line overrides."""

import pytest

from assljax.app import configs

CONFIG = '''
import ml_collections
from assljax.app import common
defaults = common.sibling(__file__, "defaults")
def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.name = arg or "plain"
  c.steps = defaults.value
  c.lr = 0.1
  c.strategies = ["random"]
  c.maybe = None
  c.ssl = ml_collections.ConfigDict(dict(flag=True))
  return c
'''


@pytest.fixture
def config_file(tmp_path):
  (tmp_path / "defaults.py").write_text("value = 10\n")
  (tmp_path / "exp.py").write_text(CONFIG)
  return str(tmp_path / "exp.py")


def test_load_with_and_without_argument_and_sibling_import(config_file):
  assert configs.load_config(config_file).name == "plain"
  config = configs.load_config(config_file + ":big")
  assert config.name == "big" and config.steps == 10


def test_overrides_are_typed(config_file):
  config = configs.load_config(config_file)
  configs.apply_overrides(config, ["steps=20", "lr=1", "strategies=['a', 'b']", "maybe=3",
                                   "ssl.flag=False", "name=x"])
  assert (config.steps, config.lr, config.strategies, config.maybe, config.ssl.flag) == (
      20, 1.0, ["a", "b"], 3, False)
  configs.apply_overrides(config, ["strategies=npc"])
  assert config.strategies == ["npc"]


@pytest.mark.parametrize("override, message", [
    ("stepz=3", "unknown config key 'stepz'"),
    ("ssl.nope=1", "unknown config key 'ssl.nope'"),
    ("x.y.z=1", "unknown config key 'x'"),
    ("steps=many", "expects int"),
    ("steps=2.5", "expects int"),
    ("ssl.flag=1", "expects bool"),
    ("ssl=3", "is a section"),
    ("steps", "must look like"),
])
def test_bad_overrides(config_file, override, message):
  with pytest.raises(ValueError, match=message):
    configs.apply_overrides(configs.load_config(config_file), [override])


def test_bad_config_files(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    configs.load_config(str(tmp_path / "missing.py"))
  with pytest.raises(ValueError, match="must be a .py file"):
    configs.load_config(str(tmp_path / "x.yaml"))
  (tmp_path / "broken.py").write_text("def get_config(:\n")
  with pytest.raises(ValueError, match="failed to load: SyntaxError"):
    configs.load_config(str(tmp_path / "broken.py"))
  (tmp_path / "empty.py").write_text("x = 1\n")
  with pytest.raises(ValueError, match="defines no get_config"):
    configs.load_config(str(tmp_path / "empty.py"))
  (tmp_path / "dict.py").write_text("def get_config(arg=None):\n  return {}\n")
  with pytest.raises(ValueError, match="must return an ml_collections.ConfigDict"):
    configs.load_config(str(tmp_path / "dict.py"))


def test_json_round_trip(config_file):
  config = configs.load_config(config_file)
  again = configs.from_json(configs.to_json(config))
  assert again.to_dict() == config.to_dict()


def test_options_sections_accept_new_keys(config_file, tmp_path):
  (tmp_path / "opts.py").write_text(
      "import ml_collections\n"
      "def get_config(arg=None):\n"
      "  c = ml_collections.ConfigDict()\n"
      "  c.dataset = ml_collections.ConfigDict(dict(name='x', options=ml_collections.ConfigDict()))\n"
      "  return c\n")
  config = configs.load_config(str(tmp_path / "opts.py"))
  configs.apply_overrides(config, ["dataset.options.root=/data/cifar10",
                                   "dataset.options.image_size=(32, 32)"])
  assert config.dataset.options.to_dict() == {"root": "/data/cifar10", "image_size": (32, 32)}
  with pytest.raises(ValueError, match="unknown config key 'dataset.nope'"):
    configs.apply_overrides(config, ["dataset.nope=1"])


def test_sibling_modules_of_two_config_folders_do_not_mix(tmp_path):
  for name, value in (("a", 1), ("b", 2)):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "defaults.py").write_text(f"value = {value}\n")
    (folder / "exp.py").write_text(CONFIG)
  first = configs.load_config(str(tmp_path / "a" / "exp.py"))
  second = configs.load_config(str(tmp_path / "b" / "exp.py"))
  again = configs.load_config(str(tmp_path / "a" / "exp.py"))
  assert (first.steps, second.steps, again.steps) == (1, 2, 1)


def test_loading_a_config_leaves_the_import_system_alone(config_file, tmp_path):
  import sys
  path, modules = list(sys.path), set(sys.modules)
  configs.load_config(config_file)
  assert sys.path == path
  assert not {name for name in set(sys.modules) - modules if "exp" in name or "defaults" in name}
  (tmp_path / "lonely.py").write_text(
      "from assljax.app import common\nbase = common.sibling(__file__, 'missing')\n")
  with pytest.raises(ValueError, match="builds on missing.py, which is not in its folder"):
    configs.load_config(str(tmp_path / "lonely.py"))
