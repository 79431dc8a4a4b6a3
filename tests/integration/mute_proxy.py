#!/usr/bin/env python3
"""mute_proxy.py LISTEN_PORT TARGET_PORT - a TCP proxy to a local Redis that, on SIGUSR1,
stops forwarding Redis's output to every connection that has sent SUBSCRIBE, without
closing it: a pub/sub connection gone silent (half-open), which its client cannot see.
Connections made after the signal are forwarded normally."""
import asyncio
import signal
import sys

muted = False
subscribers = []


async def pump(reader, writer, conn, upstream):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if upstream and b"SUBSCRIBE" in data.upper():
                conn["sub"] = True
                subscribers.append(conn)
            if not upstream and conn.get("muted"):
                continue
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def handle(creader, cwriter):
    try:
        sreader, swriter = await asyncio.open_connection("127.0.0.1", int(sys.argv[2]))
    except OSError:
        cwriter.close()
        return
    conn = {}
    await asyncio.gather(pump(creader, swriter, conn, True), pump(sreader, cwriter, conn, False))


def mute():
    for c in subscribers:
        c["muted"] = True


async def main():
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, mute)
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()


asyncio.run(main())
