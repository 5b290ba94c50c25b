"""The WebSocket equivalent of a 404."""

from channels.generic.websocket import AsyncWebsocketConsumer

# Application close code (4000-4999 are free for applications) meaning "no such thing".
CLOSE_NOT_FOUND = 4404


class NotFoundConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        # A close code can only reach the client after the handshake: closing before
        # accept() answers with HTTP 403 and the client never sees 4404.
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND)
