"""The probe of the ablation's generators under PMC's own motion (`probe`; the command:
`python -m cartoon_jax.experiments.pmc_probe`)."""
