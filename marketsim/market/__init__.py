"""The market wing: the Mesa model, consumer choice and clearing, benchmarks, the step API and `run`.

It imports only the contract modules and `config`; nothing here knows about learning engines,
tournaments, meta-learning or the command line.
"""
