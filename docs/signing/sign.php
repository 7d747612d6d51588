<?php
// Send a signed request to the Angage API (HTTP Message Signatures, RFC 9421, with Ed25519).
//
// signature_headers($keyId, $secretKey, $method, $url, $body) returns the Content-Digest (when
// there is a body), Signature-Input and Signature header lines for one request; send them with
// the request, with the body exactly as signed, within 5 minutes. $secretKey: the 64-byte
// sodium secret key, from ed25519_secret_key($pem). PHP 8 with sodium (bundled since 7.2) and
// the http:// stream wrapper only: no curl extension needed.
// Tested source: docs/signing/sign.php in the Angage repository.
//
// Run on its own it sends one request and prints the status, then the body:
//   ANGAGE_URL          the full URL, e.g. https://api.example.com/v1/customers
//   ANGAGE_API_KEY      the API key (ak_...), sent as Authorization: Bearer
//   ANGAGE_KEY_ID       the API key's id (key_...), the signature's keyid
//   ANGAGE_PRIVATE_KEY  the Ed25519 private key, PKCS#8 PEM (openssl genpkey -algorithm ed25519)
//   ANGAGE_BODY         optional: a JSON body, sent with POST (without it: GET)

// The sodium secret key of a PKCS#8 PEM Ed25519 private key. The DER holds the algorithm
// (id-Ed25519, 1.3.101.112) and then the 32-byte seed as an OCTET STRING in an OCTET STRING
// (RFC 8410); a copy of the public key may follow it.
function ed25519_secret_key(string $pem): string
{
    if (!preg_match('/-----BEGIN PRIVATE KEY-----(.+?)-----END PRIVATE KEY-----/s', $pem, $m)) {
        throw new UnexpectedValueException('not a PKCS#8 PEM private key (BEGIN PRIVATE KEY)');
    }
    $der = base64_decode(preg_replace('/\s+/', '', $m[1]), true);
    $at = $der === false ? false : strpos($der, "\x30\x05\x06\x03\x2b\x65\x70\x04\x22\x04\x20");
    if ($at === false || strlen($der) < $at + 11 + 32) {
        throw new UnexpectedValueException('not an Ed25519 private key');
    }
    $seed = substr($der, $at + 11, 32);
    return sodium_crypto_sign_secretkey(sodium_crypto_sign_seed_keypair($seed));
}

function signature_headers(
    string $keyId,
    string $secretKey,
    string $method,
    string $url,
    ?string $body = null,
    ?int $created = null
): array {
    // @target-uri: the URL as sent, with the host as the Host header carries it: lower-cased,
    // the port only when it is not the scheme's default.
    $u = parse_url($url);
    $scheme = strtolower($u['scheme'] ?? '');
    $authority = strtolower($u['host'] ?? '');
    if (isset($u['port']) && $u['port'] !== ($scheme === 'https' ? 443 : 80)) {
        $authority .= ':' . $u['port'];
    }
    $target = "$scheme://$authority" . ($u['path'] ?? '/') . (isset($u['query']) ? "?{$u['query']}" : '');
    $components = ['"@method"', '"@target-uri"'];
    $lines = ['"@method": ' . strtoupper($method), "\"@target-uri\": $target"];
    $headers = [];
    if ($body !== null && $body !== '') {
        $digest = 'sha-256=:' . base64_encode(hash('sha256', $body, true)) . ':';
        $headers[] = "Content-Digest: $digest";
        $components[] = '"content-digest"';
        $lines[] = "\"content-digest\": $digest";
    }
    $created ??= time();
    $params = '(' . implode(' ', $components) . ");created=$created;keyid=\"$keyId\";alg=\"ed25519\"";
    $lines[] = "\"@signature-params\": $params";
    $signature = base64_encode(sodium_crypto_sign_detached(implode("\n", $lines), $secretKey));
    $headers[] = "Signature-Input: sig1=$params";
    $headers[] = "Signature: sig1=:$signature:";
    return $headers;
}

// Sends one signed request; returns [status, body] for any status.
function send(string $url, string $apiKey, string $keyId, string $secretKey, ?string $body = null): array
{
    $method = $body !== null && $body !== '' ? 'POST' : 'GET';
    $headers = ["Authorization: Bearer $apiKey"];
    if ($method === 'POST') {
        $headers[] = 'Content-Type: application/json';
    }
    $headers = array_merge($headers, signature_headers($keyId, $secretKey, $method, $url, $body));
    $http = ['method' => $method, 'header' => $headers, 'ignore_errors' => true, 'follow_location' => 0];
    if ($method === 'POST') {
        $http['content'] = $body;
    }
    $stream = @fopen($url, 'r', false, stream_context_create(['http' => $http]));
    if ($stream === false) {
        throw new RuntimeException(error_get_last()['message'] ?? "cannot reach $url");
    }
    $answer = stream_get_contents($stream);
    // The response's header lines; the status line is the last one that starts with HTTP/.
    $status = 0;
    foreach (stream_get_meta_data($stream)['wrapper_data'] as $line) {
        if (preg_match('{\AHTTP/\S+ (\d{3})}', $line, $m)) {
            $status = (int) $m[1];
        }
    }
    fclose($stream);
    return [$status, $answer];
}

if (PHP_SAPI === 'cli' && realpath($argv[0]) === __FILE__) {
    $missing = array_filter(
        ['ANGAGE_URL', 'ANGAGE_API_KEY', 'ANGAGE_KEY_ID', 'ANGAGE_PRIVATE_KEY'],
        fn ($name) => (string) getenv($name) === ''
    );
    if ($missing) {
        fwrite(STDERR, 'set ' . implode(', ', $missing) . "\n");
        exit(1);
    }
    try {
        $pem = @file_get_contents(getenv('ANGAGE_PRIVATE_KEY'));
        if ($pem === false) {
            throw new RuntimeException('cannot read ' . getenv('ANGAGE_PRIVATE_KEY'));
        }
        $body = getenv('ANGAGE_BODY');
        [$status, $answer] = send(
            getenv('ANGAGE_URL'),
            getenv('ANGAGE_API_KEY'),
            getenv('ANGAGE_KEY_ID'),
            ed25519_secret_key($pem),
            $body === false ? null : $body
        );
    } catch (Exception $e) {
        fwrite(STDERR, 'sign.php: ' . $e->getMessage() . "\n");
        exit(1);
    }
    echo "$status\n$answer\n";
}
