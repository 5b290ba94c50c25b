"""uvicorn's httptools protocol, draining a recycled worker's idle connections."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class DrainOnRecycleHttpToolsProtocol(HttpToolsProtocol):
    """When Gunicorn recycles the worker (max_requests), an idle keep-alive connection
    stays open and answers one more request with `Connection: close`, where uvicorn
    would close it under nginx's next request. Why: docs/design.md (The server layer)."""

    draining = False

    def shutdown(self) -> None:
        limit = self.config.limit_max_requests
        recycled = limit is not None and self.server_state.total_requests >= limit
        if recycled and (self.cycle is None or self.cycle.response_complete):
            self.draining = True
        else:
            super().shutdown()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.draining and self.cycle is not None:
            self.cycle.keep_alive = False
