"""The meta-learning wing: task families sampled into markets, meta-training and meta-evaluation."""
