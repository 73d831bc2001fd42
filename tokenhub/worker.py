"""The gunicorn worker: uvicorn's, with a shutdown that ends open streams cleanly before the worker exits.

On SIGTERM (a deploy) gunicorn gives a worker `graceful_timeout` seconds and then kills it. A stream
still open then would be cut with its hold open and no usage record. So once the server stops taking
requests, streams get TOKENHUB_SHUTDOWN_STREAM_GRACE_SECONDS to finish; any still open are ended with
an error event and settled for what was delivered (relay.streaming.cut_streams_after); the ASGI
lifespan then waits for the settlements. See gunicorn.conf.py for how the timeouts nest.
"""

from __future__ import annotations

import os
import sys

from django.conf import settings
from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker


class RelayServer(Server):
    async def shutdown(self, sockets=None) -> None:
        from relay.streaming import cut_streams_after

        cut_streams_after(settings.TOKENHUB_SHUTDOWN_STREAM_GRACE_SECONDS)
        await super().shutdown(sockets)


class RelayWorker(UvicornWorker):
    CONFIG_KWARGS = {
        **UvicornWorker.CONFIG_KWARGS,
        # A backstop after the streams' grace: uvicorn cancels what is still running (their holds are
        # then released by the relay's own clean-up).
        "timeout_graceful_shutdown": 5 + int(float(os.environ.get("TOKENHUB_SHUTDOWN_STREAM_GRACE_SECONDS", "15"))),
    }

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = RelayServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
