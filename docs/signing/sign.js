// Send a signed request to the Angage API (HTTP Message Signatures, RFC 9421, with Ed25519).
//
// signatureHeaders(keyId, privateKey, method, url, body) returns the Content-Digest (when there
// is a body), Signature-Input and Signature headers for one request; send them with the request,
// with the body exactly as signed, within 5 minutes. privateKey: a KeyObject
// (crypto.createPrivateKey(pem)); body: a Buffer, or undefined. Node's crypto and fetch only
// (Node 18 or later). Tested source: docs/signing/sign.js in the Angage repository.
//
// Run on its own it sends one request and prints the status, then the body:
//   ANGAGE_URL          the full URL, e.g. https://api.example.com/v1/customers
//   ANGAGE_API_KEY      the API key (ak_...), sent as Authorization: Bearer
//   ANGAGE_KEY_ID       the API key's id (key_...), the signature's keyid
//   ANGAGE_PRIVATE_KEY  the Ed25519 private key, PKCS#8 PEM (openssl genpkey -algorithm ed25519)
//   ANGAGE_BODY         optional: a JSON body, sent with POST (without it: GET)
const crypto = require("crypto");
const fs = require("fs");

function signatureHeaders(keyId, privateKey, method, url, body, created = Math.floor(Date.now() / 1000)) {
  // @target-uri: the URL as fetch sends it (host lower-cased, default port left out).
  const u = new URL(url);
  const components = ['"@method"', '"@target-uri"'];
  const lines = [`"@method": ${method.toUpperCase()}`, `"@target-uri": ${u.protocol}//${u.host}${u.pathname}${u.search}`];
  const headers = {};
  if (body && body.length > 0) {
    headers["Content-Digest"] = `sha-256=:${crypto.createHash("sha256").update(body).digest("base64")}:`;
    components.push('"content-digest"');
    lines.push(`"content-digest": ${headers["Content-Digest"]}`);
  }
  const params = `(${components.join(" ")});created=${created};keyid="${keyId}";alg="ed25519"`;
  lines.push(`"@signature-params": ${params}`);
  // Ed25519 takes no digest algorithm: null.
  const signature = crypto.sign(null, Buffer.from(lines.join("\n")), privateKey);
  headers["Signature-Input"] = `sig1=${params}`;
  headers["Signature"] = `sig1=:${signature.toString("base64")}:`;
  return headers;
}

// Sends one signed request; resolves to { status, body } for any status.
async function send(url, apiKey, keyId, privateKey, body) {
  const method = body ? "POST" : "GET";
  const headers = { Authorization: `Bearer ${apiKey}` };
  if (body) headers["Content-Type"] = "application/json";
  Object.assign(headers, signatureHeaders(keyId, privateKey, method, url, body));
  const response = await fetch(url, { method, headers, body });
  return { status: response.status, body: await response.text() };
}

module.exports = { signatureHeaders, send };

if (require.main === module) {
  const env = process.env;
  const missing = ["ANGAGE_URL", "ANGAGE_API_KEY", "ANGAGE_KEY_ID", "ANGAGE_PRIVATE_KEY"].filter((n) => !env[n]);
  if (missing.length > 0) {
    console.error(`set ${missing.join(", ")}`);
    process.exit(1);
  }
  (async () => {
    const privateKey = crypto.createPrivateKey(fs.readFileSync(env.ANGAGE_PRIVATE_KEY));
    if (privateKey.asymmetricKeyType !== "ed25519") {
      throw new Error(`${env.ANGAGE_PRIVATE_KEY} is not an Ed25519 private key`);
    }
    const body = env.ANGAGE_BODY ? Buffer.from(env.ANGAGE_BODY) : undefined;
    const answer = await send(env.ANGAGE_URL, env.ANGAGE_API_KEY, env.ANGAGE_KEY_ID, privateKey, body);
    console.log(answer.status);
    console.log(answer.body);
  })().catch((e) => {
    console.error(`sign.js: ${e.cause ? `${e.message}: ${e.cause.message}` : e.message}`);
    process.exit(1);
  });
}
