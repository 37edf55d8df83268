"""The fake CDN."""

from __future__ import annotations

import hmac
import time

from aiohttp import web

from tests.fakes.discord._rest import Rest


class Cdn(Rest):
    """The CDN: attachment bytes behind signed, expiring URLs."""

    # The next this many whole-file fetches (not Range requests) answer 503, as a CDN
    # edge does in an outage: a test's way to fail one download and not the next.
    cdn_outages: int = 0

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        """Signed attachment URLs: 404 "no longer available" when unknown, forged or expired."""
        attachment = self._attachments.get(self._path_int(request, "attachment_id"))
        query = request.query
        gone = web.Response(status=404, text="This content is no longer available.")
        if self.cdn_outages > 0 and "Range" not in request.headers:
            self.cdn_outages -= 1
            return web.Response(status=503, text="upstream connect error")
        if (
            attachment is None
            or attachment.channel_id != self._path_int(request, "channel_id")
            or attachment.filename != request.match_info["filename"]
            or time.time() > attachment.expires_at
        ):
            return gone
        try:
            expires, issued = int(query["ex"], 16), int(query["is"], 16)
        except (KeyError, ValueError):
            return gone
        expected = self._cdn_signature(attachment, expires, issued)
        if not hmac.compare_digest(expected, query.get("hm", "")) or time.time() > expires:
            return gone
        return web.Response(
            body=attachment.data,
            headers={"Content-Type": attachment.content_type or "application/octet-stream"},
        )
