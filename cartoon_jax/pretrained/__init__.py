"""The generator shipped in the package: the default model of `cartoon-jax cartoonize`.

`debian_art.npz` (exported generator, paper size) was trained on the debian-art dataset
(`cartoon-jax prepare --recipe debian-art`); `MODEL_CARD.md` beside it says how, on what data
under which licences, what it reaches on the held-out photos, and its limits.
"""

import os

DEFAULT_GENERATOR = os.path.join(os.path.dirname(__file__), "debian_art.npz")
MODEL_CARD = os.path.join(os.path.dirname(__file__), "MODEL_CARD.md")
