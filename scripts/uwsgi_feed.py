#!/usr/bin/env python3
"""uwsgi_feed.py FILE: write FILE to stdout one line per write(), waiting (never dropping) when
stdout would block. uWSGI's log pipe is a non-blocking datagram socket: `cat` fails on it with
EMSGSIZE and `grep --line-buffered` with EAGAIN, losing lines, so the bench feeds uWSGI with this."""
import os
import select
import sys

fd = sys.stdout.fileno()
with open(sys.argv[1], "rb") as f:
    for line in f:
        while True:
            try:
                os.write(fd, line)
                break
            except BlockingIOError:
                select.select([], [fd], [], 1.0)
os.write(fd, b"LOGALARM_BENCH_DONE\n")
