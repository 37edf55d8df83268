"""The fake CDN, and the REST route that refreshes its expired URLs."""

from __future__ import annotations

import hmac
import re
import time
from typing import Any

from aiohttp import web

from tests.fakes.discord._models import FakeAttachment, _form_error
from tests.fakes.discord._rest import Rest, _json_response

_CDN_PATH = re.compile(r"/(?:media/)?attachments/(\d+)/(\d+)/([^/?]+)")


class Cdn(Rest):
    """The CDN: attachment bytes behind signed, expiring URLs."""

    # The next this many whole-file fetches (not Range requests) answer 503, as a CDN
    # edge does in an outage: a test's way to fail one download and not the next.
    cdn_outages: int = 0

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        """Signed attachment URLs: 404 "no longer available" when unknown, forged, expired
        or deleted."""
        attachment = self._attachments.get(self._path_int(request, "attachment_id"))
        query = request.query
        gone = web.Response(status=404, text="This content is no longer available.")
        if self.cdn_outages > 0 and "Range" not in request.headers:
            self.cdn_outages -= 1
            return web.Response(status=503, text="upstream connect error")
        if (
            attachment is None
            or attachment.deleted
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

    def _cdn_attachment(self, url: str) -> FakeAttachment | None:
        """The attachment a URL of this CDN names (signature not checked: an expired URL
        is what gets refreshed)."""
        if not url.startswith(self.base_url):
            return None
        match = _CDN_PATH.match(url.removeprefix(self.base_url))
        if match is None:
            return None
        attachment = self._attachments.get(int(match[2]))
        if attachment is None or attachment.channel_id != int(match[1]):
            return None
        return attachment if attachment.filename == match[3] else None

    async def _refresh_urls(self, request: web.Request) -> web.Response:
        """`POST /attachments/refresh-urls`: a freshly signed URL for each given one. A
        deleted attachment still gets one, which the CDN answers with 404."""
        urls = self._json_body(request).get("attachment_urls")
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            raise _form_error("attachment_urls", "BASE_TYPE_REQUIRED", "This field is required")
        refreshed: list[dict[str, Any]] = []
        for url in urls:
            attachment = self._cdn_attachment(url)
            if attachment is not None:
                self._sign_urls(attachment)
                refreshed.append({"original": url, "refreshed": attachment.url})
            else:
                refreshed.append({"original": url, "refreshed": url})
        return _json_response({"refreshed_urls": refreshed})
