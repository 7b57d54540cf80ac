"""The terminal: rich renderables built from the model, one module per command's view. The
only package besides the CLI that imports rich."""
