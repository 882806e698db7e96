"""``musicrep configs``: the packaged configs, one line each (nothing but the configs imported)."""

HELP = "list the packaged configs: name, runner, summary and variants (name:arg)"
DESCRIPTION = ("One line per config shipped with the package (musicrep_jax.configs): its name "
               "(what --config takes), the runner `musicrep train` hands it to (a variant may "
               "name another: trainer/paper14), the first line of its docstring and its "
               "documented variants (--config NAME:VARIANT). Runs without JAX.")
MAX_VARIANTS_SHOWN = 6


def add_arguments(parser) -> None:
  del parser  # No arguments.


def describe(name: str) -> dict:
  """``{name, runner, summary, variants}`` of the packaged config ``name``; ``runner`` lists
  the runners of the default and of every variant, in that order, joined by ``/``."""
  from musicrep_jax import config_loading

  module = config_loading.load_config_module(config_loading.packaged_configs_dir() / f"{name}.py")
  variants = tuple(getattr(module, "VARIANTS", ()))
  runners = [config_loading.runner_of(module.get_config(arg or None)) for arg in ("",) + variants]
  return {"name": name, "runner": "/".join(dict.fromkeys(runners)),
          "summary": (module.__doc__ or "").strip().split("\n")[0], "variants": variants}


def format_line(info: dict, name_width: int, runner_width: int) -> str:
  variants = [f":{v}" for v in info["variants"]]
  if len(variants) > MAX_VARIANTS_SHOWN:
    variants = variants[:MAX_VARIANTS_SHOWN] + [f"(+{len(variants) - MAX_VARIANTS_SHOWN} more)"]
  shown = f"  [{' '.join(variants)}]" if variants else ""
  return f"{info['name']:<{name_width}}  {info['runner']:<{runner_width}}  {info['summary']}{shown}"


def run(args, overrides) -> dict:
  del args, overrides
  from musicrep_jax import config_loading

  infos = [describe(name) for name in config_loading.packaged_config_names()]
  widths = [max(len(info[key]) for info in infos) for key in ("name", "runner")]
  for info in infos:
    print(format_line(info, *widths))
  return {"configs": len(infos), "dir": str(config_loading.packaged_configs_dir())}
