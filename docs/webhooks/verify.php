<?php
// Verify an Angage webhook delivery (Standard Webhooks, https://www.standardwebhooks.com).
//
// verify($secret, $headers, $body) returns when one of the "v1," signatures in webhook-signature
// is right for the secret, and throws UnexpectedValueException otherwise. $headers: lower-case
// names (array_change_key_case(getallheaders(), CASE_LOWER)); $body: the raw request body exactly
// as received (file_get_contents('php://input')), before any JSON parsing.
// Built-in functions only. Tested source: docs/webhooks/verify.php.

const WEBHOOK_TOLERANCE_SECONDS = 5 * 60;

function verify(string $secret, array $headers, string $body, ?int $now = null): void
{
    foreach (['webhook-id', 'webhook-timestamp', 'webhook-signature'] as $name) {
        if (!isset($headers[$name])) {
            throw new UnexpectedValueException("missing header $name");
        }
    }
    $id = $headers['webhook-id'];
    $timestamp = $headers['webhook-timestamp'];
    if (!preg_match('/\A[0-9]+\z/', $timestamp)) {
        throw new UnexpectedValueException("webhook-timestamp '$timestamp' is not unix seconds");
    }
    $now ??= time();
    if (abs($now - (int) $timestamp) > WEBHOOK_TOLERANCE_SECONDS) {
        throw new UnexpectedValueException(
            "webhook-timestamp $timestamp is more than 5 minutes from now ($now)"
        );
    }
    $key = base64_decode(str_starts_with($secret, 'whsec_') ? substr($secret, 6) : $secret, true);
    if ($key === false) {
        throw new UnexpectedValueException('the secret is not whsec_<base64>');
    }
    $expected = base64_encode(hash_hmac('sha256', "$id.$timestamp.$body", $key, true));
    foreach (explode(' ', $headers['webhook-signature']) as $signature) {
        if (str_starts_with($signature, 'v1,') && hash_equals($expected, substr($signature, 3))) {
            return;
        }
    }
    throw new UnexpectedValueException('no valid v1 signature');
}

if (PHP_SAPI === 'cli' && realpath($argv[0]) === __FILE__) {
    // php verify.php fixture.json: {"secret", "headers", "body", "now"} -> "verified" or exit 1
    $fixture = json_decode(file_get_contents($argv[1]), true, 512, JSON_THROW_ON_ERROR);
    try {
        verify($fixture['secret'], $fixture['headers'], $fixture['body'], $fixture['now'] ?? null);
    } catch (UnexpectedValueException $e) {
        fwrite(STDERR, $e->getMessage() . "\n");
        exit(1);
    }
    echo "verified\n";
}
