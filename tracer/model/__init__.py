"""The dataclasses of everything dtrace-tree prints, and their JSON: `show` (topology,
show_json), `ns` (namespaces) and `survive` (survival). Plain data: no I/O."""
