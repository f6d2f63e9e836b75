"""A TCP proxy on 127.0.0.1 that holds every chunk for D ms in each direction: a distant relay.

``python bench/latency_proxy.py --to PORT --delay-ms D`` prints ``port N`` once it listens,
then forwards each connection to 127.0.0.1:PORT, every chunk leaving D ms after it came, in
order. A round trip through it costs 2 D on top of the relay's own time, as a relay across a
network would; the kernel's ``netem`` is not available on every machine this runs on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def release() -> None:
        while True:
            due, data = await held.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    releasing = asyncio.ensure_future(release())
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            held.put_nowait((loop.time() + delay, data))
    held.put_nowait((loop.time() + delay, b""))
    with contextlib.suppress(ConnectionError):
        await releasing


async def _serve(target: int, delay: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            relay_reader, relay_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, relay_writer, delay),
                             _pipe(relay_reader, writer, delay), return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to", type=int, required=True, help="the relay's port on 127.0.0.1")
    parser.add_argument("--delay-ms", type=float, required=True, help="each way, per chunk")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.to, args.delay_ms / 1000))
    sys.exit(0)


if __name__ == "__main__":
    main()
