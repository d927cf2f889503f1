"""Evaluation: warping error (E_short, E_long), FID, the paper's tables and figures.

Run `python -m cartoon_jax.evaluate {warping,fid,table,figures} --help`. Submodules: frames
(inputs), flow (DIS / Farneback / precomputed flows), warping, inception (pytorch-fid's network and
its weight converter), fid, tables, figures.
"""
