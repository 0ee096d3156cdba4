#!/usr/bin/env python3
"""The harness's package pool: serves a folder over HTTP on 127.0.0.1 with
many connections at once (scripts/serve-pool.sh). bench/run also starts it
with a delay before each answer, to stand in for a mirror a round trip away
(a server on the same host answers in microseconds, which hides what
parallel fetching is for).

    scripts/pool.py DIR PORT [DELAY_MS]
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
    folder, port = sys.argv[1], int(sys.argv[2])
    delay_ms = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    DelayedHandler.delay = delay_ms / 1000.0
    handler = functools.partial(DelayedHandler, directory=folder)
    # Python's default listen backlog is 5: the engine opens dozens of
    # connections at once, and a dropped SYN waits a second to be retried.
    http.server.ThreadingHTTPServer.request_queue_size = 256
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
