"""Qt-free and torch-free foundations: config models, events, errors and registries.

Nothing in this package may import torch or Qt (a test enforces it), so the config can be
validated, the forms built and the CLI's help printed without paying for either import.
"""
