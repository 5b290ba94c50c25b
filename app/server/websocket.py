"""uvicorn's websockets (sans-I/O) protocol, closing cleanly on a refused frame."""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class LingeringCloseWebSocketProtocol(WebSocketsSansIOProtocol):
    """When it refuses a frame (too large, malformed) while the rest is still arriving,
    the connection keeps reading and dropping for CLOSE_LINGER_SECONDS (or until the
    client closes), so the close frame is not lost to a reset. Why: docs/design.md (The
    server layer)."""

    CLOSE_LINGER_SECONDS = 2.0
    lingering = False

    def handle_parser_exception(self) -> None:
        sent = self.conn.close_sent  # websockets set it when it refused the frame
        code, reason = (sent.code, sent.reason) if sent is not None else (1002, "")
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = self.lingering = True
        # uvicorn closes when the app returns unless a close timer is pending: this is one.
        self.close_timer = self.loop.call_later(self.CLOSE_LINGER_SECONDS, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if not self.lingering:
            super().data_received(data)
