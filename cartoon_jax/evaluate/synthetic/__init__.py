"""Synthetic clips with known motion: pans and zooms over real photos that no training set uses.

  python -m cartoon_jax.evaluate.synthetic OUT_DIR FLOW_DIR [--frames N] [--max-side S]
      [--overwrite]

writes OUT_DIR/<clip>/00000.png ... and the exact flows FLOW_DIR/<clip>/{a:05d}_{b:05d}.npy of
every pair the warping error reads (t-1 <-> t and 0 <-> t), so that
`cartoon-jax evaluate warping --source OUT_DIR --flow precomputed --flow-dir FLOW_DIR`
measures temporal consistency with no flow-estimation error.

Frame k shows the photo scaled by s_k = (1 + zoom)^k and shifted by t_k = (k - (n-1)/2) v about
the frame centre, sampled bilinearly from the photo pre-smoothed and area-resized so that every
sample lies inside it (no out-of-frame pixels). Photos: matplotlib's `grace_hopper.jpg` (a
portrait) and scikit-image's `camera` (grey, as RGB); the training sample set uses neither.
"""

import dataclasses
import importlib.util
import os

import cv2
import numpy as np
import scipy.ndimage as ndi
from skimage import data as skimage_data

from cartoon_jax import images


@dataclasses.dataclass(frozen=True)
class Motion:
  """Per-frame zoom factor minus 1 and shift (vx, vy) in frame pixels."""

  zoom: float = 0.0
  shift: tuple[float, float] = (0.0, 0.0)

  def params(self, k: int, n: int) -> tuple[float, float, float]:
    """(scale, tx, ty) of frame k of n."""
    c = k - (n - 1) / 2
    return (1.0 + self.zoom) ** k, self.shift[0] * c, self.shift[1] * c


# Clip name -> (photo, motion). Speeds below 1 px per frame keep every shift sub-pixel.
CLIPS = {
  "pan_hopper": ("grace_hopper", Motion(shift=(0.8, 0.3))),
  "zoom_camera": ("camera", Motion(zoom=0.008, shift=(0.15, -0.1))),
}


def photo(name: str) -> np.ndarray:
  """uint8 (H, W, 3) held-out photo 'grace_hopper' (matplotlib's sample data, found without
  importing matplotlib) or 'camera' (scikit-image)."""
  if name == "camera":
    return np.repeat(skimage_data.camera()[..., None], 3, axis=-1)
  if name == "grace_hopper":
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
      raise ImportError(
        "grace_hopper.jpg comes from matplotlib's sample data, which is not installed: "
        "pip install -r requirements-experiments.txt"
      )
    root = next(iter(spec.submodule_search_locations))
    return images.read_rgb8(os.path.join(root, "mpl-data", "sample_data", "grace_hopper.jpg"))
  raise ValueError(f"unknown photo {name!r}; choose 'grace_hopper' or 'camera'")


def base_size(motion: Motion, n: int, height: int, width: int) -> tuple[int, int]:
  """(height, width) of the resized photo that holds every sample of `render`: frame k reads
  base rows oy + (y - cy - ty_k) / s_k for y in [0, height - 1], so the base needs
  (height - 1 + 2 |ty_k|) / s_k + 1 rows (likewise columns); one spare pixel each side."""
  need = [0.0, 0.0]
  for k in range(n):
    s, tx, ty = motion.params(k, n)
    need[0] = max(need[0], (height - 1 + 2 * abs(ty)) / s + 1)
    need[1] = max(need[1], (width - 1 + 2 * abs(tx)) / s + 1)
  return int(np.ceil(need[0])) + 2, int(np.ceil(need[1])) + 2


def _base(picture: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """float64 photo centre-cropped to size's aspect, area-resized to `size`, lightly smoothed."""
  h, w = picture.shape[:2]
  aspect = size[1] / size[0]
  ch, cw = (h, int(h * aspect)) if w / h > aspect else (int(w / aspect), w)
  y0, x0 = (h - ch) // 2, (w - cw) // 2
  crop = picture[y0 : y0 + ch, x0 : x0 + cw]
  resized = cv2.resize(crop, (size[1], size[0]), interpolation=cv2.INTER_AREA)
  return ndi.gaussian_filter(resized.astype(np.float64) / 255.0, sigma=(0.6, 0.6, 0))


def render(
  picture: np.ndarray, motion: Motion, *, frames: int, height: int, width: int
) -> np.ndarray:
  """uint8 (frames, height, width, 3): the moving view of `picture` (uint8 (H, W, 3))."""
  size = base_size(motion, frames, height, width)
  base = _base(picture, size)
  cy, cx = (height - 1) / 2, (width - 1) / 2
  oy, ox = (size[0] - 1) / 2, (size[1] - 1) / 2
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
  out = np.empty((frames, height, width, 3), np.uint8)
  for k in range(frames):
    s, tx, ty = motion.params(k, frames)
    coords = [oy + (ys - cy - ty) / s, ox + (xs - cx - tx) / s]
    frame = np.stack([ndi.map_coordinates(base[..., c], coords, order=1) for c in range(3)], -1)
    out[k] = np.clip(np.round(frame * 255.0), 0, 255).astype(np.uint8)
  return out


def true_flow(
  motion: Motion, a: int, b: int, *, frames: int, height: int, width: int
) -> np.ndarray:
  """float32 (height, width, 2) exact flow(a -> b) of `render` on frame a's grid, (dx, dy)."""
  cy, cx = (height - 1) / 2, (width - 1) / 2
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
  sa, txa, tya = motion.params(a, frames)
  sb, txb, tyb = motion.params(b, frames)
  ratio = sb / sa
  fx = cx + txb + ratio * (xs - cx - txa) - xs
  fy = cy + tyb + ratio * (ys - cy - tya) - ys
  return np.stack([fx, fy], -1).astype(np.float32)


def warping_pairs(frames: int) -> list[tuple[int, int]]:
  """Every (a, b) whose flow the warping error reads: t-1 <-> t and 0 <-> t."""
  pairs = {(t - 1, t) for t in range(1, frames)} | {(0, t) for t in range(1, frames)}
  return sorted(pairs | {(b, a) for a, b in pairs})


def frame_shape(max_side: int) -> tuple[int, int]:
  """(height, width) of the clips: 4:3 landscape, the long side max_side rounded to 4."""
  if max_side < 8:
    raise ValueError(f"max_side={max_side} must be >= 8")
  width = max_side // 4 * 4
  return max(4, width * 3 // 4 // 4 * 4), width


def write_clips(
  out_dir: str,
  flow_dir: str,
  *,
  frames: int = 48,
  max_side: int = 128,
  overwrite: bool = False,
) -> dict[str, str]:
  """Every clip of CLIPS as OUT_DIR/<clip>/%05d.png and its flows in FLOW_DIR/<clip>/; returns
  {clip: frame folder}. FileExistsError naming the folder if one holds frames and not
  overwrite. Files are written atomically (a crash leaves no half-written file)."""
  if frames < 2:
    raise ValueError(f"frames={frames} must be >= 2")
  height, width = frame_shape(max_side)
  folders = {}
  for name, (photo_name, motion) in CLIPS.items():
    folder = os.path.join(out_dir, name)
    if os.path.isdir(folder) and os.listdir(folder) and not overwrite:
      raise FileExistsError(f"{folder} already holds frames; pass --overwrite to replace")
    os.makedirs(folder, exist_ok=True)
    clip = render(photo(photo_name), motion, frames=frames, height=height, width=width)
    for k, frame in enumerate(clip):
      images.write_image(os.path.join(folder, f"{k:05d}.png"), frame)
    flows = os.path.join(flow_dir, name)
    os.makedirs(flows, exist_ok=True)
    for a, b in warping_pairs(frames):
      path = os.path.join(flows, f"{a:05d}_{b:05d}.npy")
      with open(f"{path}.tmp", "wb") as f:
        np.save(f, true_flow(motion, a, b, frames=frames, height=height, width=width))
      os.replace(f"{path}.tmp", path)
    folders[name] = folder
  return folders
