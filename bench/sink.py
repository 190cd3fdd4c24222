#!/usr/bin/env python3
"""Upload sink for bench/run.sh, and the trace collector of bench/observability.sh.

Reads every request body to its end, throws it away and answers with the number of bytes it
read, so the benchmark can check that a 1 GiB upload arrived whole (a proxy that answered early
or cut the body short would otherwise look fast). Handles Content-Length and chunked bodies.

Usage: python3 bench/sink.py PORT   (listens on 127.0.0.1 only)
"""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 1 << 20


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the other upstreams
    # The head and the body of an answer go out in two writes; with Nagle's algorithm the
    # second waits for the client's (delayed) ACK of the first, up to 40 ms per answer. A
    # client that sends one request at a time (the OTLP exporter bench/observability.sh
    # points here) would be held to ~25 requests/s.
    disable_nagle_algorithm = True

    def _read_exactly(self, n: int) -> None:
        while n:
            got = self.rfile.read(min(n, CHUNK))
            if not got:
                raise ConnectionError("body ended early")
            n -= len(got)

    def _drain(self) -> int:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            total = 0
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return total
                self._read_exactly(size)
                self.rfile.readline(3)  # CRLF after the chunk
                total += size
        length = int(self.headers.get("Content-Length", "0"))
        self._read_exactly(length)
        return length

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self._answer(f"{self._drain()}\n".encode())

    do_PUT = do_POST

    def do_GET(self) -> None:
        self._answer(b"sink\n")

    def log_message(self, *args) -> None:
        pass  # no access log, like the other servers in the run


def main() -> None:
    port = int(sys.argv[1])
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()


if __name__ == "__main__":
    main()
