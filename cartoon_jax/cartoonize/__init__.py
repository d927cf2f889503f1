"""Cartoonize photos, folders of photos and videos with a trained SSAGenerator.

  cartoon-jax cartoonize INPUT OUTPUT --params GEN.npz
  cartoon-jax cartoonize INPUT OUTPUT --checkpoint WORKDIR --batch 8 --bf16
  cartoon-jax cartoonize INPUT OUTPUT --onnx GEN.onnx

INPUT is recognised by its content: an image, a folder of images (recursive; OUTPUT mirrors the tree
and keeps the names) or a video (written as H.264 at the source's exact frame rate with its audio).
Any frame size works: frames are reflect-padded to a multiple of 4 and cropped back.
"""

from cartoon_jax.cartoonize.engine import Cartoonizer, OnnxCartoonizer
from cartoon_jax.cartoonize.jobs import Summary, cartoonize, contact_sheet, detect_kind

__all__ = [
  "Cartoonizer",
  "OnnxCartoonizer",
  "Summary",
  "cartoonize",
  "contact_sheet",
  "detect_kind",
]
