"""The WebSocket side of `make bench` (python3-websockets, asyncio).

  ws_echo.py serve PORT                  an echo server (PORT 0: any); prints the port
  ws_echo.py load URL N SECONDS [TOKEN]  N connections, each sending one 64-byte message and
                                         awaiting its echo, over and over, for SECONDS; prints
                                         messages/s (echoes received) over all of them
"""
import asyncio
import sys
import time

import websockets


async def serve(port):
    async def echo(ws, path):
        async for msg in ws:
            await ws.send(msg)

    server = await websockets.serve(echo, "127.0.0.1", port, compression=None)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Future()


async def load(url, n, seconds, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conns = [await websockets.connect(url, extra_headers=headers, compression=None,
                                      max_queue=None) for _ in range(n)]
    deadline = time.monotonic() + seconds
    counts = [0] * n
    payload = "x" * 64

    async def one(i, ws):
        while time.monotonic() < deadline:
            await ws.send(payload)
            await ws.recv()
            counts[i] += 1

    t0 = time.monotonic()
    await asyncio.gather(*(one(i, ws) for i, ws in enumerate(conns)))
    elapsed = time.monotonic() - t0
    for ws in conns:
        await ws.close()
    print(f"{sum(counts) / elapsed:.1f}")


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        asyncio.run(serve(int(sys.argv[2])))
    else:
        asyncio.run(load(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]),
                         sys.argv[5] if len(sys.argv) > 5 else None))
