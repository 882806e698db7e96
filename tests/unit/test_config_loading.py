"""``--config.KEY=VALUE`` overrides (``config_loading.apply_overrides``): values parsed by the
type the config holds; an unset (None) field takes a Python literal, else the text."""

import ml_collections
import pytest

from musicrep_jax import config_loading
from musicrep_jax.errors import UserError


def _config():
  return ml_collections.ConfigDict(dict(
      steps=10, rate=0.1, name="a", flag=False, sizes=(1, 2),
      model=dict(channels=None, width=None, label=None)))


def test_overrides_follow_the_held_type_and_unset_fields_take_literals():
  c = _config()
  config_loading.apply_overrides(c, [
      "--config.steps=20", "--config.rate=1", "--config.name=b", "--config.flag=yes",
      "--config.sizes=[3,4,5]", "--config.model.channels=(2,3,4,5)", "--config.model.width=8",
      "--config.model.label=genre"])
  assert (c.steps, c.rate, c.name, c.flag, c.sizes) == (20, 1.0, "b", True, (3, 4, 5))
  assert isinstance(c.rate, float)
  assert c.model.channels == (2, 3, 4, 5) and c.model.width == 8 and c.model.label == "genre"


@pytest.mark.parametrize("override", ["--config.steps=ten", "--config.steps=1.5",
                                      "--config.flag=maybe", "--config.sizes=3"])
def test_a_value_of_the_wrong_type_is_one_line(override):
  with pytest.raises(UserError) as error:
    config_loading.apply_overrides(_config(), [override])
  assert "\n" not in str(error.value)
