"""One walk of the host into plain data (`Host`); everything after it is pure."""
