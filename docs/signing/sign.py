"""Send a signed request to the Angage API (HTTP Message Signatures, RFC 9421, with Ed25519).

signature_headers(key_id, private_key, method, url, body) returns the Content-Digest (when there
is a body), Signature-Input and Signature headers for one request; send them with the request,
with the body exactly as signed, within 5 minutes. Needs the `cryptography` package
(pip install cryptography) for Ed25519; the rest is the standard library.
Tested source: docs/signing/sign.py in the Angage repository.

Run on its own it sends one request and prints the status, then the body:
  ANGAGE_URL        the full URL, e.g. https://api.example.com/v1/customers
  ANGAGE_API_KEY    the API key (ak_...), sent as Authorization: Bearer
  ANGAGE_KEY_ID     the API key's id (key_...), the signature's keyid
  ANGAGE_PRIVATE_KEY  the Ed25519 private key, PKCS#8 PEM (openssl genpkey -algorithm ed25519)
  ANGAGE_BODY       optional: a JSON body, sent with POST (without it: GET)
"""

import base64
import hashlib
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key


def load_private_key(path):
    with open(path, "rb") as f:
        key = load_pem_private_key(f.read(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def signature_headers(key_id, private_key, method, url, body=None, created=None):
    # @target-uri: the URL as sent, with the host as the Host header carries it (lower-cased).
    parts = urllib.parse.urlsplit(url)
    target = f"{parts.scheme}://{parts.netloc.lower()}{parts.path or '/'}"
    if parts.query:
        target += f"?{parts.query}"
    components = ['"@method"', '"@target-uri"']
    lines = [f'"@method": {method.upper()}', f'"@target-uri": {target}']
    headers = {}
    if body:
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        headers["Content-Digest"] = f"sha-256=:{digest}:"
        components.append('"content-digest"')
        lines.append(f'"content-digest": {headers["Content-Digest"]}')
    created = int(time.time()) if created is None else created
    params = f'({" ".join(components)});created={created};keyid="{key_id}";alg="ed25519"'
    lines.append(f'"@signature-params": {params}')
    signature = private_key.sign("\n".join(lines).encode())
    headers["Signature-Input"] = f"sig1={params}"
    headers["Signature"] = f"sig1=:{base64.b64encode(signature).decode()}:"
    return headers


def send(url, api_key, key_id, private_key, body=None):
    """Sends one signed request; returns (status, body bytes), for any status."""
    method = "POST" if body else "GET"
    headers = {"Authorization": f"Bearer {api_key}"}
    if body:
        headers["Content-Type"] = "application/json"
    headers.update(signature_headers(key_id, private_key, method, url, body))
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


if __name__ == "__main__":
    env = os.environ
    missing = [n for n in ("ANGAGE_URL", "ANGAGE_API_KEY", "ANGAGE_KEY_ID", "ANGAGE_PRIVATE_KEY") if not env.get(n)]
    if missing:
        sys.exit(f"set {', '.join(missing)}")
    try:
        key = load_private_key(env["ANGAGE_PRIVATE_KEY"])
        body = env.get("ANGAGE_BODY", "").encode() or None
        status, answer = send(env["ANGAGE_URL"], env["ANGAGE_API_KEY"], env["ANGAGE_KEY_ID"], key, body)
    except (OSError, TypeError, ValueError) as e:
        sys.exit(f"sign.py: {e}")
    print(status)
    print(answer.decode("utf-8", "replace"))
