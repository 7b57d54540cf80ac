"""What people and programs read: the terminal (rich), diagrams (Graphviz) and JSON. Every
string from the host is escaped here for the output it goes to (tracer/untrusted.py)."""
