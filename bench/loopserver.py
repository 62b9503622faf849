"""A small, fast HTTP/1.1 file server for loopback benchmarks (bench/backfill.py).

Serves every file of one folder from memory at ``/<file name>``: GET and HEAD, keep-alive,
``Content-Length`` bodies, 404 for anything else. One asyncio process; it binds to 127.0.0.1
only, prints its port on stdout once it is listening, and stops by itself when its standard
input closes (the benchmark that started it ended), on SIGTERM, or after ``--max-seconds``.

Usage::

    python bench/loopserver.py FOLDER [--port 0] [--max-seconds 7200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
from pathlib import Path

_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed"}


def _head(status: int, length: int, close: bool) -> bytes:
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\nConnection: %s\r\n\r\n"
            % (status, _REASONS[status], length, b"close" if close else b"keep-alive"))


class FileServer:
    def __init__(self, files: dict[bytes, bytes]) -> None:
        self.files = files
        self.requests = 0
        self.bytes_sent = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                        ConnectionError):
                    return
                request_line, _, headers = head.partition(b"\r\n")
                parts = request_line.split(b" ")
                lowered = headers.lower()
                if len(parts) != 3:
                    writer.write(_head(400, 0, True))
                    await writer.drain()
                    return
                method, target, version = parts
                close = b"connection: close" in lowered or version == b"HTTP/1.0"
                body = self.files.get(target.split(b"?", 1)[0].lstrip(b"/"))
                if method not in (b"GET", b"HEAD"):
                    status, body, close = 405, b"", True
                elif body is None:
                    status, body = 404, b""
                else:
                    status = 200
                writer.write(_head(status, len(body), close))
                if method == b"GET" and body:
                    writer.write(body)
                    self.bytes_sent += len(body)
                self.requests += 1
                await writer.drain()
                if close:
                    return
        except ConnectionError:
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def serve(folder: Path, port: int, max_seconds: float) -> None:
    files = {path.name.encode(): path.read_bytes() for path in sorted(folder.iterdir())
             if path.is_file()}
    server = FileServer(files)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", port, backlog=512)
    print(listener.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    # Standard input closing means the benchmark that started us is gone.
    def watch_stdin() -> None:
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max_seconds)
    listener.close()
    print(f"served {server.requests} requests, {server.bytes_sent:,} bytes", file=sys.stderr,
          flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=7200.0)
    args = parser.parse_args()
    asyncio.run(serve(args.folder, args.port, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
