#!/usr/bin/env python3
"""A package pool for bench/run: serves a folder over HTTP on 127.0.0.1,
waiting a fixed time before each answer, to stand in for a mirror that is a
round trip away (a server on the same host answers in microseconds, which
hides what parallel fetching is for).

    bench/pool.py DIR PORT DELAY_MS
"""

import functools
import http.server
import sys
import time


class DelayedHandler(http.server.SimpleHTTPRequestHandler):
    delay = 0.0

    def send_head(self):
        time.sleep(self.delay)
        return super().send_head()

    def log_message(self, *args):
        pass


def main():
    folder, port, delay_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    DelayedHandler.delay = delay_ms / 1000.0
    handler = functools.partial(DelayedHandler, directory=folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
