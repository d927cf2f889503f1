"""Targets a trained cartoonizer must reach on the debian-art held-out photos, derived from the data
before training (issue 25 item 2): style measures half-way from photos to cartoons
(`measures`), an LPIPS bound from a classical cartoon filter and the VGG16 Fréchet distance
(`perceptual`), put together by `targets.derive`. The command:
`python -m cartoon_jax.experiments.stylize_targets` (its __main__)."""
