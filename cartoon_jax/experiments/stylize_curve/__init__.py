"""The stylization curve (issue 25 item 2): a training run's generators, checkpoint by checkpoint,
measured on the held-out photos against the targets of `stylize_targets` (style measures, LPIPS
to the input, VGG16 Fréchet distance to the held-out cartoons), with sample grids. The command:
`python -m cartoon_jax.experiments.stylize_curve` (its __main__)."""
