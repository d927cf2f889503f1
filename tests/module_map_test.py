"""README's module map ("What exists") stays true: every module of the package is on it."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_module_is_on_the_readme_map():
  with open(os.path.join(ROOT, "README.md")) as f:
    readme = f.read()
  table = readme[readme.index("## What exists") :]
  rows = [line for line in table.splitlines() if line.startswith("| `")]
  missing = []
  for folder, _, files in os.walk(os.path.join(ROOT, "cartoon_jax")):
    package = os.path.relpath(folder, ROOT)
    for name in sorted(f for f in files if f.endswith(".py")):
      path = os.path.join(package, name)
      if name == "__init__.py":  # a package is on the map by its folder or its modules
        continue
      # Listed by path, by its package's row (`cartoon_jax/models/`), or by name on a row of
      # its package.
      on_map = any(
        f"`{path}`" in row
        or (package != "cartoon_jax" and f"`{package}/`" in row)
        or (f"`{package}/" in row and f"`{name}`" in row)
        for row in rows
      )
      if not on_map:
        missing.append(path)
  assert not missing, f"add these to README's 'What exists' table: {missing}"
  for row in rows:  # and every path on the map exists
    path = row.split("`")[1]
    assert os.path.exists(os.path.join(ROOT, path.split(" ")[0])), row
