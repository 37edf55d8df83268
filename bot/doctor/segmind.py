"""Segmind: the workflow URL's host, the API key and the balance. Only the credits call
(`get-user-credits`) is sent: it costs nothing, unlike a submit."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from ..segmind.account import fetch_credits
from ..segmind.client import SEGMIND_API_HOST, SegmindClient
from ..segmind.errors import (
    AuthenticationError,
    PermissionDeniedError,
    SegmindConnectionError,
    SegmindError,
)
from ..segmind.retry import RetryPolicy
from .report import Check, fail, ok, warn

WORKFLOW = "Segmind workflow URL"
KEY = "Segmind API key"
# One quick retry for a blip; an operator is waiting for the answer.
RETRY = RetryPolicy(attempts=2, base_delay=0.5, max_delay=1.0, max_total=5.0)
TIMEOUT = 15.0
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=10, connect=5)
KEYS_PAGE = "https://cloud.segmind.com/console/api-keys"


def check_workflow_url(url: str) -> Check:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host == SEGMIND_API_HOST:
        return ok(WORKFLOW, f"on {SEGMIND_API_HOST}")
    return warn(
        WORKFLOW,
        f"SEGMIND_WORKFLOW_URL points at {parts.scheme}://{parts.netloc}, not "
        f"https://{SEGMIND_API_HOST} (fine for a proxy or a test server)",
        "remove SEGMIND_WORKFLOW_URL from .env to use Segmind's own",
    )


async def check_key(session: aiohttp.ClientSession, api_key: str, workflow_url: str) -> Check:
    client = SegmindClient(
        session,
        api_key=api_key,
        workflow_url=workflow_url,
        retry=RETRY,
        request_timeout=REQUEST_TIMEOUT,
    )
    host = urlsplit(workflow_url).netloc
    try:
        balance = await fetch_credits(client, timeout=TIMEOUT)
    except (AuthenticationError, PermissionDeniedError) as exc:
        return fail(
            KEY,
            f"SEGMIND_API_KEY was rejected (HTTP {exc.status})",
            f"create a key at {KEYS_PAGE} and put it in .env as SEGMIND_API_KEY",
        )
    except SegmindConnectionError as exc:
        return fail(
            KEY,
            f"Segmind could not be reached at {host} ({exc.detail or 'no answer'})",
            "check the network, a proxy or firewall, and SEGMIND_WORKFLOW_URL",
        )
    except SegmindError as exc:  # its text is built to be safe to show
        return fail(KEY, f"the credits check failed: {exc}", "try again later")
    total = balance.credits + balance.free_credits
    shown = f"accepted; balance {balance.credits:g} credits + {balance.free_credits:g} free"
    if total <= 0:
        return warn(
            KEY,
            f"{shown}: every job will be refused",
            "top up the account at https://cloud.segmind.com",
        )
    return ok(KEY, shown)


async def segmind_checks(api_key: str, workflow_url: str) -> list[Check]:
    async with aiohttp.ClientSession() as session:
        return [check_workflow_url(workflow_url), await check_key(session, api_key, workflow_url)]
