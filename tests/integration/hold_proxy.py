#!/usr/bin/env python3
"""hold_proxy.py LISTEN_PORT TARGET_PORT ARMFILE HELDFILE - a TCP proxy to a local server that,
when armed (SIGUSR1; ARMFILE then holds "MODE PATTERN"), holds one exchange of the first
client message containing PATTERN:
  request: the message is not forwarded (the connection's later bytes wait behind it);
  reply:   the message is forwarded and the server's answer to it held (the query has run).
until SIGUSR2 (or 30 s later, so a test that dies never leaves it held). HELDFILE is written
when it holds. Every other connection flows on. inval_handover.sh holds a standby's
START_REPLICATION, or the answer to its slot query, this way."""
import asyncio
import signal
import sys

ARMFILE = sys.argv[3]
HELDFILE = sys.argv[4]
armed = None  # (mode, pattern) while armed
release = None  # an asyncio.Event while an exchange is held


async def hold():
    with open(HELDFILE, "w") as f:
        f.write("held\n")
    try:
        await asyncio.wait_for(release.wait(), 30)
    except asyncio.TimeoutError:
        pass


async def handle(creader, cwriter):
    try:
        sreader, swriter = await asyncio.open_connection("127.0.0.1", int(sys.argv[2]))
    except OSError:
        cwriter.close()
        return
    conn = {"hold_reply": False}

    async def upstream():
        global armed, release
        try:
            while True:
                data = await creader.read(65536)
                if not data:
                    break
                if armed and armed[1] in data:
                    mode, armed = armed[0], None
                    release = asyncio.Event()
                    if mode == "request":
                        await hold()
                    else:
                        conn["hold_reply"] = True
                swriter.write(data)
                await swriter.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            swriter.close()

    async def downstream():
        try:
            while True:
                data = await sreader.read(65536)
                if not data:
                    break
                if conn["hold_reply"]:
                    conn["hold_reply"] = False
                    await hold()
                cwriter.write(data)
                await cwriter.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            cwriter.close()

    await asyncio.gather(upstream(), downstream())


def arm():
    global armed
    with open(ARMFILE) as f:
        mode, pattern = f.read().strip().split(" ", 1)
    armed = (mode, pattern.encode())


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
