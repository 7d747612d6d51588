// Verify an Angage webhook delivery (Standard Webhooks, https://www.standardwebhooks.com).
//
// verify(secret, headers, body) returns when one of the "v1," signatures in webhook-signature is
// right for the secret, and throws otherwise. headers: lower-case names (Node's req.headers);
// body: the raw request body exactly as received (a Buffer or string, e.g. from express.raw()),
// before any JSON parsing. Node's crypto only. Tested source: docs/webhooks/verify.js.
const crypto = require("crypto");

const TOLERANCE_SECONDS = 5 * 60;

function verify(secret, headers, body, now = Math.floor(Date.now() / 1000)) {
  for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
    if (typeof headers[name] !== "string") throw new Error(`missing header ${name}`);
  }
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  if (!/^[0-9]+$/.test(timestamp)) {
    throw new Error(`webhook-timestamp ${JSON.stringify(timestamp)} is not unix seconds`);
  }
  if (Math.abs(now - Number(timestamp)) > TOLERANCE_SECONDS) {
    throw new Error(`webhook-timestamp ${timestamp} is more than 5 minutes from now (${now})`);
  }
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const mac = crypto.createHmac("sha256", key).update(`${id}.${timestamp}.`).update(body);
  const expected = Buffer.from(mac.digest("base64"));
  for (const signature of headers["webhook-signature"].split(" ")) {
    if (!signature.startsWith("v1,")) continue;
    const given = Buffer.from(signature.slice(3));
    if (given.length === expected.length && crypto.timingSafeEqual(given, expected)) return;
  }
  throw new Error("no valid v1 signature");
}

module.exports = { verify };

if (require.main === module) {
  // node verify.js fixture.json: {"secret", "headers", "body", "now"} -> "verified" or exit 1
  const fixture = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
  try {
    verify(fixture.secret, fixture.headers, fixture.body, fixture.now);
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
  console.log("verified");
}
