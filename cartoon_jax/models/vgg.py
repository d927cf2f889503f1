"""Frozen VGG feature nets with named outputs: VGG19 (Caffe convention), VGG16 (torchvision).

Layer names: 'conv{b}_{k}' (before its ReLU), 'relu{b}_{k}', 'pool{b}' (2x2 max-pool, stride 2,
floor). Params 'conv{b}_{k}/kernel' (HWIO, 3x3) and 'conv{b}_{k}/bias'. A call computes only up to
the deepest requested layer, but `init` creates every conv, so converted weight files hold the
whole feature stack. A call may also start from a layer's activation (`start`), and
`staged_features` runs several image sets, each to its own depth, in shared batched passes.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WIDTHS = (64, 128, 256, 512, 512)


def layer_names(depths: Sequence[int]) -> list[str]:
  """All layer names in forward order for convs-per-block `depths`."""
  names = []
  for block, depth in enumerate(depths, start=1):
    for k in range(1, depth + 1):
      names += [f"conv{block}_{k}", f"relu{block}_{k}"]
    names.append(f"pool{block}")
  return names


def preprocess(x: jax.Array, *, convention: str) -> jax.Array:
  """RGB in [-1, 1] (B, H, W, 3) -> the network's input.

  'caffe': BGR, 0..255, minus the Caffe BGR means. 'torchvision': RGB in [0, 1], ImageNet mean/std.
  """
  if convention == "caffe":
    bgr = ((x + 1.0) * 127.5)[..., ::-1]
    return bgr - jnp.asarray(CAFFE_BGR_MEAN, x.dtype)
  if convention == "torchvision":
    rgb = (x + 1.0) * 0.5
    return (rgb - jnp.asarray(IMAGENET_MEAN, x.dtype)) / jnp.asarray(IMAGENET_STD, x.dtype)
  raise ValueError(f"unknown VGG preprocessing convention {convention!r}")


class VGG(nn.Module):
  """VGG feature stack; `depths` = convs per block. `__call__(x, *, layers)` -> {name: activation}.

  x: (B, H, W, 3) RGB in [-1, 1]; preprocessing per `convention` happens inside. With
  `start=name`, x is instead the activation of layer `name` and the stack continues after it (the
  requested layers must lie deeper).
  """

  depths: tuple[int, ...]
  convention: str
  default_layers: tuple[str, ...]
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(
    self, x: jax.Array, *, layers: Sequence[str] | None = None, start: str | None = None
  ) -> dict[str, jax.Array]:
    layers = tuple(self.default_layers if layers is None else layers)
    names = layer_names(self.depths)
    if start is not None and start not in names:
      raise ValueError(f"unknown VGG start layer {start!r}; valid names: {names}")
    first = 0 if start is None else names.index(start) + 1
    unknown = [name for name in layers if name not in names[first:]]
    if unknown or not layers:
      after = "" if start is None else f" after start={start!r}"
      raise ValueError(f"unknown VGG layer(s) {unknown or layers}{after}; valid: {names[first:]}")
    if start is None and (x.ndim != 4 or x.shape[-1] != 3):
      raise ValueError(f"VGG: expected (B, H, W, 3) RGB input, got shape {x.shape}")
    deepest = max(names.index(name) for name in layers)

    if start is None:
      h = preprocess(x.astype(jnp.float32), convention=self.convention).astype(self.dtype)
    else:
      h = x.astype(self.dtype)
    out = {}
    in_channels = h.shape[-1]
    for index, name in enumerate(names[first:], start=first):
      kind = name[:4]
      if index > deepest:
        if not self.is_initializing():
          break
        if kind == "conv":
          # Create the remaining convs' params so `init` gives the whole stack.
          width = WIDTHS[int(name[4]) - 1]
          self._conv(name, width)(jnp.zeros((1, 1, 1, in_channels), self.dtype))
          in_channels = width
        continue
      if kind == "conv":
        in_channels = WIDTHS[int(name[4]) - 1]
        h = self._conv(name, in_channels)(h)
      elif kind == "relu":
        h = nn.relu(h)
      else:
        h = nn.max_pool(h, (2, 2), strides=(2, 2), padding="VALID")
      if name in layers:
        out[name] = h
    return out

  def _conv(self, name: str, width: int) -> nn.Conv:
    return nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype, name=name)


class VGG19(VGG):
  """VGG19 features (16 convs), Caffe convention (the authors' vgg19.npy); conv4_4 by default.

  convention='torchvision' takes converted torchvision VGG19 weights instead.
  """

  depths: tuple[int, ...] = (2, 2, 4, 4, 4)
  convention: str = "caffe"
  default_layers: tuple[str, ...] = ("conv4_4",)


class VGG16(VGG):
  """VGG16 features (13 convs), torchvision convention; relu2_1, relu3_1, relu4_1 by default."""

  depths: tuple[int, ...] = (2, 2, 3, 3, 3)
  convention: str = "torchvision"
  default_layers: tuple[str, ...] = ("relu2_1", "relu3_1", "relu4_1")


def staged_features(
  net: VGG, variables: dict, requests: Sequence[tuple[jax.Array, Sequence[str]]]
) -> list[dict[str, jax.Array]]:
  """Each request's (images, layers) features, every image going only as deep as its layers.

  All images run as one batch to the shallowest request's deepest layer; the requests that need
  more continue together from that activation, and so on. Returns one {layer: activation} per
  request, in request order.
  """
  names = layer_names(net.depths)
  depth = lambda i: max(names.index(name) for name in requests[i][1])
  size = lambda i: requests[i][0].shape[0]
  order = sorted(range(len(requests)), key=depth)  # the deeper requests form the batch's tail
  out = [{} for _ in requests]
  h, start = jnp.concatenate([requests[i][0] for i in order]), None
  while order:
    stop = depth(order[0])
    above = -1 if start is None else names.index(start)
    wanted = {name for i in order for name in requests[i][1] if above < names.index(name) <= stop}
    layers = sorted(wanted | {names[stop]}, key=names.index)
    acts = net.apply(variables, h, layers=layers, start=start)
    offset = 0
    for i in order:
      out[i] |= {
        name: acts[name][offset : offset + size(i)] for name in requests[i][1] if name in wanted
      }
      offset += size(i)
    finished = sum(size(i) for i in order if depth(i) == stop)
    order = [i for i in order if depth(i) > stop]
    h, start = acts[names[stop]][finished:], names[stop]
  return out
