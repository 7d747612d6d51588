"""Verify an Angage webhook delivery (Standard Webhooks, https://www.standardwebhooks.com).

verify(secret, headers, body) returns None when one of the "v1," signatures in webhook-signature
is right for the secret, and raises VerificationError otherwise. headers: lower-case names;
body: the raw request body exactly as received (bytes or str), before any JSON parsing.
Standard library only. Tested source: docs/webhooks/verify.py in the Angage repository.
"""

import base64
import hashlib
import hmac
import time

TOLERANCE_SECONDS = 5 * 60


class VerificationError(ValueError):
    pass


def verify(secret, headers, body, now=None):
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        if name not in headers:
            raise VerificationError(f"missing header {name}")
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise VerificationError(f"webhook-timestamp {timestamp!r} is not unix seconds")
    now = int(time.time()) if now is None else now
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise VerificationError(f"webhook-timestamp {timestamp} is more than 5 minutes from now ({now})")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except ValueError:
        raise VerificationError("the secret is not whsec_<base64>") from None
    body = body.encode() if isinstance(body, str) else body
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    expected = base64.b64encode(mac.digest())
    for signature in headers["webhook-signature"].split(" "):
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return
    raise VerificationError("no valid v1 signature")


if __name__ == "__main__":
    # python3 verify.py fixture.json: {"secret", "headers", "body", "now"} -> "verified" or exit 1
    import json
    import sys

    with open(sys.argv[1], encoding="utf-8") as f:
        fixture = json.load(f)
    try:
        verify(fixture["secret"], fixture["headers"], fixture["body"], fixture.get("now"))
    except VerificationError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
    print("verified")
