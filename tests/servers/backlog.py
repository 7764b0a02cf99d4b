#!/usr/bin/env python3
"""A listener with backlog 4 that never accepts, and 8 connects that fill its accept queue.

Usage: backlog.py inet|inet6|unix [PATH]. Prints the address to watch (HOST:PORT, [::1]:PORT
or PATH), then sleeps until killed.
"""
import os, socket, sys, time

fam = sys.argv[1]
if fam == "unix":
    path = sys.argv[2]
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    addr = path
else:
    s = socket.socket(socket.AF_INET if fam == "inet" else socket.AF_INET6)
    s.bind(("127.0.0.1" if fam == "inet" else "::1", 0))
s.listen(4)
name = s.getsockname()
if fam == "inet":
    addr = f"127.0.0.1:{name[1]}"
elif fam == "inet6":
    addr = f"[::1]:{name[1]}"
clients = []
for _ in range(8):
    c = socket.socket(s.family)
    c.setblocking(False)
    try:
        c.connect(name)
    except (BlockingIOError, OSError):
        pass
    clients.append(c)
print(addr, flush=True)
while True:
    time.sleep(3600)
