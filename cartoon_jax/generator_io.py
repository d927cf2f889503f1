"""The generator's settings and its one loader, used by training (`init_from`), cartoonize,
evaluation and export.

Settings are SSAGenerator's constructor arguments {'channels', 'num_blocks', 'ssa_patch_size'}
(patch size 0: plain additive skips). An exported .npz stores them in its metadata with
'model': 'SSAGenerator' and the training step; a checkpoint stores them in its config.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from cartoon_jax import checkpointing, file_kinds, fileio
from cartoon_jax.configs import common
from cartoon_jax.models.generator import SSAGenerator

MODEL = "SSAGenerator"
# For .npz files without settings (the authors' converted generator).
PAPER_SETTINGS = common.base_config().model.generator.to_dict()
_EXPECTED = "a generator .npz or training folder"
_CONVERT = "convert the authors' generator with `cartoon-jax convert --kind authors_generator`"
_HINTS = {"torch": _CONVERT, "pickle": _CONVERT}


def settings_from(values: Mapping[str, Any]) -> dict[str, int]:
  """The settings from a mapping holding them (config.model.generator, export metadata); missing
  keys take the paper's values, a patch size None (older exports) reads as 0."""
  settings = {key: values.get(key, default) for key, default in PAPER_SETTINGS.items()}
  settings["ssa_patch_size"] = settings["ssa_patch_size"] or 0
  return {key: int(value) for key, value in settings.items()}


def export_meta(settings: Mapping[str, int], **extra: Any) -> dict[str, Any]:
  """Metadata of an exported generator: {'model': 'SSAGenerator', **settings, **extra}."""
  return {"model": MODEL, **settings_from(settings), **extra}


@dataclasses.dataclass(frozen=True)
class Generator:
  """A loaded generator: apply with `module.apply(variables, x)`, x (B, H, W, 3) in [-1, 1]."""

  module: SSAGenerator
  variables: dict[str, Any]  # {'params': nested dict of NumPy float32 arrays}
  settings: dict[str, int]
  step: int | None


def load(path: str, *, dtype: Any = jnp.float32) -> Generator:
  """The generator stored at `path`: an exported or converted .npz, a training workdir (its latest
  checkpoint, else its exported generator.npz), a checkpoints/ folder or one of its step folders.
  An .npz may hold {'params': ...} (what export writes) or the params tree itself.

  FileNotFoundError if nothing is there (or no generator in a folder); file_kinds.WrongKindError
  naming the file and its kind for a file of another kind (ONNX, PyTorch, image, ...); ValueError
  naming the file and key if the weights are of another model or do not fit their settings.
  """
  kind = file_kinds.expect(path, ("npz", "folder"), _EXPECTED, hints=_HINTS)
  if kind == "npz":
    meta = fileio.load_meta(path)
    model = meta.get("model", meta.get("kind", MODEL))  # converted VGG, Inception: their kind
    if model != MODEL:
      raise ValueError(f"{path}: weights of model {model!r}, not a {MODEL}")
    tree = fileio.load_params(path)
    params = tree.get("params", tree)  # also a bare params tree
    settings, step = settings_from(meta), meta.get("step")
  else:
    directory, step = checkpointing.checkpoint_dir(path), None
    parent, name = os.path.split(os.path.normpath(path))
    exported = os.path.join(path, checkpointing.EXPORT_NAME)
    if name.isdigit() and os.path.basename(parent) == checkpointing.CHECKPOINT_DIR:
      directory, step = parent, int(name)  # one step folder: that step
    elif not (os.path.isdir(directory) and any(n.isdigit() for n in os.listdir(directory))):
      if os.path.isfile(exported):
        return load(exported, dtype=dtype)
      raise FileNotFoundError(
        f"{path}: no generator here (no checkpoint under {directory}, no "
        f"{checkpointing.EXPORT_NAME})"
      )
    state, config, step = checkpointing.restore_on_host(directory, step=step)
    params, settings = state["g_params"], settings_from(config["model"]["generator"])
  module = SSAGenerator(**settings, dtype=dtype)
  variables = {"params": params}
  check_variables(variables, module, source=path)
  return Generator(module, variables, settings, step)


def save(
  params: Mapping[str, Any], settings: Mapping[str, int], path: str, *, step: int | None = None
) -> None:
  """Writes the generator's params tree and settings (+ step) to the .npz `path` atomically, in
  the layout `load` reads ({'params': ...} and the metadata of `export_meta`)."""
  extra = {} if step is None else {"step": int(step)}
  fileio.save_params({"params": params}, path, meta=export_meta(settings, **extra))


def check_variables(variables: Mapping[str, Any], module: SSAGenerator, *, source: str) -> None:
  """ValueError naming `source` and the first key of `variables` that `module` lacks, misses or
  shapes otherwise."""
  like = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  fileio.check_tree(variables, like={"params": like["params"]}, source=source)
