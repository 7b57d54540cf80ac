"""Pure functions over the model: which containers and engines to show, and what their
namespaces isolate or share."""
