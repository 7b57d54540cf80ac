"""`serve`: the host's container architecture as a live web page, read-only.

- guard.py: who may ask anything (the token, the Host and Origin headers);
- state.py: what the page is sent, made from the model (the state of each look at the host,
  a timeline entry per burst of events);
- hub.py: one look shared by every client, its documents made once, and the event streams
  (Server-Sent Events) with a bounded queue per client;
- feed.py: the live feed: the kernel's process events (the `trace` machinery) and one look at
  the host per burst of them;
- server.py: the HTTP side (the standard library's ThreadingHTTPServer);
- static/: the page itself (HTML, CSS, JavaScript), package data: no CDN, it works offline.
"""
