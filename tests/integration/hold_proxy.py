#!/usr/bin/env python3
"""hold_proxy.py LISTEN_PORT TARGET_PORT PATTERN HELDFILE - a TCP proxy to a local server
that, once armed (SIGUSR1), holds the first client message containing PATTERN: it is not
forwarded, and that connection's later client bytes wait behind it, until SIGUSR2 (or 30 s
later, so a test that dies never leaves it held); HELDFILE is written when it holds. Every
other connection, and the server's output, flows on. inval_handover.sh holds a standby's
START_REPLICATION this way, after it read the slot's position."""
import asyncio
import signal
import sys

PATTERN = sys.argv[3].encode()
HELDFILE = sys.argv[4]
armed = False
release = None  # an asyncio.Event while a message is held


async def pump(reader, writer, upstream):
    global armed, release
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if upstream and armed and PATTERN in data:
                armed = False
                release = asyncio.Event()
                with open(HELDFILE, "w") as f:
                    f.write("held\n")
                try:
                    await asyncio.wait_for(release.wait(), 30)
                except asyncio.TimeoutError:
                    pass
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
    await asyncio.gather(pump(creader, swriter, True), pump(sreader, cwriter, False))


def arm():
    global armed
    armed = True


def let_go():
    if release is not None:
        release.set()


async def main():
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, arm)
    loop.add_signal_handler(signal.SIGUSR2, let_go)
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()


asyncio.run(main())
