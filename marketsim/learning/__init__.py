"""The learning wing: tabular learning kernels, the batched experiment engine, collusion diagnostics, training."""
