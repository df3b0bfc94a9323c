"""Run the collector on uvicorn (uvloop + httptools), one process: ``pulse collect``.

SIGTERM / SIGINT shut it down gracefully: uvicorn stops accepting, lets the requests in flight finish, then
the lifespan shutdown commits what is pending and rolls the open segment into the landing zone.
"""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from pulse.collector.app import Collector, CollectorSettings


async def _announce(server: uvicorn.Server, host: str, port: int) -> None:
    while not server.started:
        if server.should_exit:
            return
        await asyncio.sleep(0.02)
    print(f"pulse collector listening on http://{host}:{port}", flush=True)


async def _serve(settings: CollectorSettings, host: str, port: int) -> None:
    config = uvicorn.Config(
        Collector(settings),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
        backlog=2048,
        server_header=False,
    )
    server = uvicorn.Server(config)
    announce = asyncio.create_task(_announce(server, host, port))
    await server.serve()
    announce.cancel()


def collect(settings: CollectorSettings, host: str = "127.0.0.1", port: int = 8090) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvloop

    uvloop.run(_serve(settings, host, port))
    return 0
