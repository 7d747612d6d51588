#!/usr/bin/env bash
# Send a signed request to the Angage API (HTTP Message Signatures, RFC 9421, with Ed25519):
# `angage sign` makes the signature headers, curl sends them with the request.
# Tested source: docs/signing/sign.sh in the Angage repository.
#
# It sends one request and prints the status, then the body:
#   ANGAGE_URL          the full URL, e.g. https://api.example.com/v1/customers
#   ANGAGE_API_KEY      the API key (ak_...), sent as Authorization: Bearer
#   ANGAGE_KEY_ID       the API key's id (key_...), the signature's keyid
#   ANGAGE_PRIVATE_KEY  the Ed25519 private key, PKCS#8 PEM (openssl genpkey -algorithm ed25519)
#   ANGAGE_BODY         optional: a JSON body, sent with POST (without it: GET)
#   ANGAGE_BIN          optional: the angage binary (default: angage on the PATH)
set -euo pipefail

url=${ANGAGE_URL:?set ANGAGE_URL}
api_key=${ANGAGE_API_KEY:?set ANGAGE_API_KEY}
key_id=${ANGAGE_KEY_ID:?set ANGAGE_KEY_ID}
private_key=${ANGAGE_PRIVATE_KEY:?set ANGAGE_PRIVATE_KEY}
body=${ANGAGE_BODY:-}
angage=${ANGAGE_BIN:-angage}

sign=("$angage" sign --headers --key-id "$key_id" --private-key "$private_key" --url "$url")
request=(-H "Authorization: Bearer $api_key")
if [ -n "$body" ]; then
    sign+=(--method POST --data "$body")
    # --data-binary sends the body byte for byte, as it was signed.
    request+=(-H "Content-Type: application/json" --data-binary "$body")
else
    sign+=(--method GET)
fi

# One `Name: value` line per header: Content-Digest (with a body), Signature-Input, Signature.
signed=$("${sign[@]}")
while IFS= read -r header; do
    if [ -n "$header" ]; then request+=(-H "$header"); fi
done <<<"$signed"

# The body, then a last line with the status; printed the other way round.
answer=$(curl -sS -o - -w '\n%{http_code}' "${request[@]}" "$url")
printf '%s\n%s\n' "${answer##*$'\n'}" "${answer%$'\n'*}"
