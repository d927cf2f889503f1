"""Hand-written CPU kernels (XLA FFI custom calls) for what XLA's CPU backend compiles badly, each
beside the pure-JAX function that is its reference: `ssa_cpu` (SSA's forward pass)."""
