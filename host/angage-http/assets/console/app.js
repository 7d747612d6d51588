// The API Settings console: a small single-page app on the admin API. It adds no logic of its
// own; it keeps the CSRF token in memory and never stores a key's secret.
"use strict";

const state = { me: null, csrf: null };
const MODULES = ["customers", "products", "orders", "invoices", "payments", "inventory", "settings"];

// ---- helpers -------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "html") el.innerHTML = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const resp = await fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  const data = text ? JSON.parse(text) : null;
  if (resp.status === 401 && path !== "/admin/v1/login") {
    state.me = null;
    render();
    throw new Error("Your session has ended; log in again.");
  }
  if (!resp.ok) {
    const err = new Error((data && (data.detail || data.title)) || resp.statusText);
    err.problem = data;
    throw err;
  }
  return data;
}

function notice(kind, text) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

function fieldErrors(err) {
  const p = err.problem || {};
  const list = (p.errors || []).map((e) => `${e.field}: ${e.message}`);
  return list.length ? `${err.message} — ${list.join("; ")}` : err.message;
}

// Marks the inputs a 422 names (`fields`: API field → input id) and clears the others.
function markInvalid(form, err, fields) {
  const named = new Set(((err.problem && err.problem.errors) || []).map((e) => String(e.field).split(/[.[]/)[0]));
  for (const [field, id] of Object.entries(fields)) {
    const el = form.querySelector(`#${id}`);
    if (!el) continue;
    if (named.has(field)) el.setAttribute("aria-invalid", "true");
    else el.removeAttribute("aria-invalid");
  }
}

// A checkbox with its label and, optionally, a help line under it.
function checkbox(id, label, on, help, attrs) {
  return h("p", {},
    h("label", {}, h("input", { id, type: "checkbox", checked: on, "aria-describedby": help ? `${id}-help` : null, ...attrs }), ` ${label}`),
    help ? h("span", { class: "help muted", id: `${id}-help` }, help) : null);
}

function card(label, value, id) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value", id }, value));
}

function table(headers, rows, empty) {
  if (!rows.length) return h("div", { class: "empty" }, empty);
  return h("table", {}, h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))), h("tbody", {}, rows));
}

function fmtDate(s) {
  return s ? s.replace("T", " ").slice(0, 16) + " UTC" : "—";
}

function setMain(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
  const heading = main.querySelector("h2");
  if (heading) heading.setAttribute("tabindex", "-1");
}

async function guarded(fn) {
  try {
    await fn();
  } catch (e) {
    setMain(h("h2", {}, "Something went wrong"), notice("error", e.message));
  }
}

// ---- shell and routing ---------------------------------------------------------------------

const ROUTES = {
  dashboard: ["Dashboard", viewDashboard],
  keys: ["API Keys", viewKeys],
  "oauth-clients": ["OAuth clients", viewOAuthClients],
  webhooks: ["Webhooks", viewWebhooks],
  limits: ["Rate Limits", viewLimits],
  usage: ["Usage", viewUsage],
  errors: ["Errors", viewErrors],
  requests: ["Request log", viewRequests],
  auth: ["Authentication", viewAuth],
  rules: ["Rules", viewRules],
  plugins: ["Plugins", viewPlugins],
  docs: ["API Documentation", viewDocs],
};

function route() {
  const name = (location.hash || "#/dashboard").slice(2).split("?")[0];
  return ROUTES[name] ? name : "dashboard";
}

function render() {
  stopDeliveryLog();
  const app = document.getElementById("app");
  if (!state.me) {
    app.replaceChildren(loginView());
    return;
  }
  // An app's authorization request (from /oauth/authorize): the consent page, on its own.
  const consent = (location.hash || "").match(/^#\/consent\/([A-Za-z0-9_]+)$/);
  if (consent) {
    app.replaceChildren(h("main", { id: "main", class: "consent" }, h("p", { class: "loading" }, "Loading…")));
    document.title = "Authorize an app · API Settings";
    guarded(() => viewConsent(consent[1]));
    return;
  }
  const current = route();
  const nav = h(
    "nav",
    { class: "side", "aria-label": "API Settings" },
    h("h1", {}, "API Settings"),
    h("div", { class: "crumb" }, `Settings › Integrations · ${state.me.tenant_name}`),
    Object.entries(ROUTES).map(([k, [label]]) => h("a", { href: `#/${k}`, class: k === current ? "active" : null, "aria-current": k === current ? "page" : null }, label)),
    h("a", { href: "#/logout", id: "logout", onclick: logout }, "Log out"),
  );
  app.replaceChildren(h("div", { class: "shell" }, nav, h("main", { id: "main" }, h("p", { class: "loading" }, "Loading…"))));
  document.title = `${ROUTES[current][0]} · API Settings`;
  guarded(ROUTES[current][1]);
}

window.addEventListener("hashchange", () => {
  if (location.hash !== "#/logout") render();
});

async function logout(ev) {
  ev.preventDefault();
  try {
    await api("POST", "/admin/v1/logout", {});
  } catch (_) {
    /* already logged out */
  }
  state.me = null;
  state.csrf = null;
  location.hash = "#/dashboard";
  render();
}

function loginView() {
  const error = h("div", { id: "login-error" });
  const form = h(
    "form",
    { class: "login stack", id: "login-form" },
    h("h2", {}, "Log in to API Settings"),
    h("label", { for: "email" }, "E-mail"),
    h("input", { id: "email", type: "email", autocomplete: "username", required: true }),
    h("label", { for: "password" }, "Password"),
    h("input", { id: "password", type: "password", autocomplete: "current-password", required: true }),
    error,
    h("p", {}, h("button", { class: "primary", type: "submit", id: "login-submit" }, "Log in")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("POST", "/admin/v1/login", { email: form.querySelector("#email").value, password: form.querySelector("#password").value });
      state.csrf = r.csrf_token;
      state.me = r.admin;
      render();
    } catch (e) {
      error.replaceChildren(notice("error", e.message));
    }
  });
  return form;
}

// ---- screens -------------------------------------------------------------------------------

async function viewDashboard() {
  const [usage, health, hooks] = await Promise.all([
    api("GET", "/admin/v1/usage?period=month"), fetch("/readyz").then((r) => r.ok), api("GET", "/admin/v1/webhooks").catch(() => null),
  ]);
  const base = `${location.origin}/v1`;
  const enabled = hooks ? hooks.data.filter((e) => e.enabled).length : 0;
  const endpoints = !hooks ? "—" : enabled === hooks.data.length ? hooks.data.length : `${enabled} of ${hooks.data.length} enabled`;
  setMain(
    h("h2", {}, "Dashboard"),
    h(
      "div",
      { class: "cards" },
      card("API status", health ? "Operational" : "Degraded", "api-status"),
      card("Base URL", h("span", { class: "mono" }, base)),
      card("Requests this month", usage.total, "usage-total"),
      card("Successful", `${usage.successful_pct}%`, "usage-ok"),
      card("Failed", `${usage.failed_pct}%`, "usage-failed"),
      card("Rate-limit hits", usage.rate_limited, "usage-limited"),
      card("Active keys (live)", usage.active_keys.live, "keys-live"),
      card("Active keys (test)", usage.active_keys.test, "keys-test"),
      card("Webhook endpoints", endpoints, "webhook-count"),
    ),
    h("h3", {}, "Quick links"),
    h(
      "p",
      { class: "row" },
      h("a", { href: "/docs" }, "Documentation"),
      h("a", { href: "#/keys", id: "quick-generate" }, "Generate a key"),
      h("a", { href: "#/usage" }, "Usage reports"),
      h("a", { href: "#/webhooks", id: "quick-webhooks" }, "Webhook configuration"),
    ),
  );
}

function keyRow(k, onChange) {
  const actions = h("td", {});
  if (k.status === "active") {
    actions.append(
      h("button", {
        class: "danger",
        "data-revoke": k.id,
        onclick: async () => {
          if (!confirm(`Revoke "${k.name}"? Requests with this key will be refused at once.`)) return;
          await api("POST", `/admin/v1/keys/${k.id}/revoke`, {});
          onChange();
        },
      }, "Revoke"),
      " ",
      h("button", {
        "data-rotate": k.id,
        onclick: async () => {
          const grace = prompt("Keep the old key working for: now, 1h, 24h or 7d", "24h");
          if (!grace) return;
          const issued = await api("POST", `/admin/v1/keys/${k.id}/rotate`, { grace });
          onChange(issued);
        },
      }, "Rotate"),
      " ",
      h("button", {
        "data-edit-key": k.id,
        onclick: () => setMain(h("h2", {}, `Edit key “${k.name}”`), keyEditForm(k)),
      }, "Edit"),
    );
  }
  const signed = k.signing_public_key
    ? h("span", {
      class: "badge signed",
      title: `Ed25519 signing key ${k.signing_public_key}${k.require_signature ? "; unsigned requests are refused" : ""}`,
    }, k.require_signature ? "signed · required" : "signed")
    : null;
  return h(
    "tr",
    { "data-key": k.id },
    h("td", {}, k.name),
    h("td", {}, h("code", {}, k.prefix), signed ? [" ", signed] : null),
    h("td", {}, fmtDate(k.created_at)),
    h("td", {}, fmtDate(k.last_used_at)),
    h("td", {}, k.expires_at ? fmtDate(k.expires_at) : "Never"),
    h("td", {}, h("span", { class: `badge ${k.status}` }, k.status)),
    actions,
  );
}

function secretPanel(issued) {
  const curl = `curl -H "Authorization: Bearer ${issued.key}" ${location.origin}/v1/customers`;
  const copied = h("span", { class: "muted", id: "copied" });
  return h(
    "div",
    { class: "secret", id: "secret-panel" },
    h("strong", {}, "Copy this key now — it won't be shown again."),
    h("p", { class: "key", id: "new-key" }, issued.key),
    h("p", {}, h("button", {
      id: "copy-key",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(issued.key);
          copied.textContent = " Copied.";
        } catch (_) {
          copied.textContent = " Select the key and copy it.";
        }
      },
    }, "Copy to clipboard"), copied),
    h("p", {}, `${issued.name} · ${issued.environment} · ${issued.scope} · expires ${issued.expires_at ? fmtDate(issued.expires_at) : "never"}`),
    h("p", {}, "Quick start:"),
    h("pre", { id: "quick-curl" }, curl),
  );
}

async function viewKeys(issued, saved) {
  const [live, test] = await Promise.all([api("GET", "/admin/v1/keys?environment=live&limit=100"), api("GET", "/admin/v1/keys?environment=test&limit=100")]);
  const refresh = (next) => guarded(() => viewKeys(next));
  const headers = ["Name", "Key", "Created", "Last used", "Expires", "Status", ""];
  setMain(
    h("h2", {}, "API Keys"),
    issued && issued.key ? secretPanel(issued) : null,
    h("div", { id: "keys-msg" }, saved ? notice("ok", saved) : null),
    h("p", {}, h("button", { class: "primary", id: "generate", onclick: () => setMain(h("h2", {}, "Generate New API Key"), keyForm()) }, "Generate New API Key")),
    h("h3", {}, "Production keys"),
    table(headers, live.data.map((k) => keyRow(k, refresh)), "No production keys yet."),
    h("h3", {}, "Development keys"),
    table(headers, test.data.map((k) => keyRow(k, refresh)), "No development keys yet."),
  );
}

// The API fields a key form's inputs stand for (`p`: the form's id prefix), for marking the ones a
// 422 names.
function keyFields(p) {
  return {
    name: `${p}-name`, description: `${p}-description`, ip_allowlist: `${p}-ips`,
    signing_public_key: `${p}-signing-key`, require_signature: `${p}-require-signature`,
  };
}

const requireSignatureHelp = () => ["Requests must then carry RFC 9421 signatures; see the signing guide in the ", h("a", { href: "/docs" }, "API docs"), "."];

function keyForm() {
  const err = h("div", { id: "k-errors" });
  const grants = h(
    "div",
    { class: "grants", id: "grants", hidden: true },
    h("strong", {}, "Module"), h("strong", {}, "No access"), h("strong", {}, "Read"), h("strong", {}, "Read & write"),
    MODULES.map((m) => [
      h("span", {}, m),
      ["none", "read", "read_write"].map((a) => h("input", { type: "radio", name: `grant-${m}`, value: a, "aria-label": `${m} ${a}`, checked: a === "none" })),
    ]),
  );
  const form = h(
    "form",
    { class: "stack", id: "key-form" },
    h("label", { for: "k-name" }, "Name"),
    h("input", { id: "k-name", required: true, maxlength: 100 }),
    h("label", { for: "k-description" }, "Description"),
    h("input", { id: "k-description", maxlength: 500 }),
    h("label", { for: "k-env" }, "Environment"),
    h("select", { id: "k-env" }, h("option", { value: "live" }, "Production (live)"), h("option", { value: "test" }, "Development (test)")),
    h("label", { for: "k-expires" }, "Expiration"),
    h("select", { id: "k-expires" }, h("option", { value: "" }, "Tenant default"), h("option", { value: "0" }, "Never"), h("option", { value: "30" }, "After 30 days"), h("option", { value: "90" }, "After 90 days"), h("option", { value: "365" }, "After 365 days")),
    h("label", { for: "k-scope" }, "Scope"),
    h("select", { id: "k-scope", onchange: (e) => { grants.hidden = e.target.value !== "custom"; } }, h("option", { value: "full" }, "Full access"), h("option", { value: "read_only" }, "Read only"), h("option", { value: "custom" }, "Custom")),
    grants,
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "k-minute" }, "Requests per minute"), h("input", { id: "k-minute", type: "number", min: 1, placeholder: "default" })),
      h("div", {}, h("label", { for: "k-hour" }, "Per hour"), h("input", { id: "k-hour", type: "number", min: 1, placeholder: "default" })),
      h("div", {}, h("label", { for: "k-day" }, "Per day"), h("input", { id: "k-day", type: "number", min: 1, placeholder: "default" })),
    ),
    h("label", { for: "k-ips" }, "IP restrictions (CIDR, one per line; empty allows any)"),
    h("textarea", { id: "k-ips", rows: 3 }),
    h("label", { for: "k-signing-key" }, "Signing public key (Ed25519, PEM or base64)"),
    h("textarea", { id: "k-signing-key", class: "pem", rows: 4, spellcheck: "false", placeholder: "-----BEGIN PUBLIC KEY-----", "aria-describedby": "k-signing-key-help" }),
    h("span", { class: "hint muted", id: "k-signing-key-help" }, "Optional: the public half of the key pair the key's owner signs requests with. Never paste the private key."),
    checkbox("k-require-signature", "Require signed requests", false, requireSignatureHelp()),
    err,
    h("p", {}, h("button", { class: "primary", type: "submit", id: "k-submit" }, "Generate key"), " ",
      h("a", { href: "#/keys", onclick: (ev) => { ev.preventDefault(); guarded(() => viewKeys()); } }, "Cancel")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = (id) => form.querySelector(id).value.trim();
    const num = (id) => (v(id) ? Number(v(id)) : null);
    const body = {
      name: v("#k-name"),
      environment: v("#k-env"),
      scope: v("#k-scope"),
      rate_limits: { per_minute: num("#k-minute"), per_hour: num("#k-hour"), per_day: num("#k-day") },
      ip_allowlist: v("#k-ips").split(/\s+/).filter(Boolean),
    };
    if (v("#k-description")) body.description = v("#k-description");
    if (v("#k-expires") !== "") body.expires_in_days = Number(v("#k-expires"));
    if (body.scope === "custom") {
      body.grants = Object.fromEntries(MODULES.map((m) => [m, form.querySelector(`input[name=grant-${m}]:checked`).value]));
    }
    if (v("#k-signing-key")) body.signing_public_key = v("#k-signing-key");
    if (form.querySelector("#k-require-signature").checked) body.require_signature = true;
    try {
      const issued = await api("POST", "/admin/v1/keys", body);
      await viewKeys(issued);
    } catch (e) {
      markInvalid(form, e, keyFields("k"));
      err.replaceChildren(notice("error", fieldErrors(e)));
    }
  });
  return form;
}

// Edits what a key's PUT takes besides its limits (those are on the Rate Limits screen) and its
// scope; only changed fields are sent. An empty signing key field keeps the registered key.
function keyEditForm(k) {
  const err = h("div", { id: "ke-errors" });
  const submit = h("button", { class: "primary", type: "submit", id: "ke-submit" }, "Save changes");
  const had = Boolean(k.signing_public_key);
  const keyText = h("textarea", {
    id: "ke-signing-key", class: "pem", rows: 4, spellcheck: "false", "aria-describedby": "ke-signing-key-help",
    placeholder: had ? "Empty keeps the registered key" : "-----BEGIN PUBLIC KEY-----",
  });
  const form = h(
    "form",
    { class: "stack", id: "key-edit-form", "data-key": k.id },
    h("p", { class: "muted" }, h("code", {}, k.prefix), ` · ${k.environment} · ${k.scope} · created ${fmtDate(k.created_at)}`),
    h("label", { for: "ke-name" }, "Name"),
    h("input", { id: "ke-name", required: true, maxlength: 100, value: k.name }),
    h("label", { for: "ke-description" }, "Description"),
    h("input", { id: "ke-description", maxlength: 500, value: k.description ?? "" }),
    h("label", { for: "ke-ips" }, "IP restrictions (CIDR, one per line; empty allows any)"),
    h("textarea", { id: "ke-ips", rows: 3 }, k.ip_allowlist.join("\n")),
    h("label", { for: "ke-signing-key" }, "Signing public key (Ed25519, PEM or base64)"),
    had
      ? h("p", { class: "hint" }, "Registered: ", h("code", { class: "mono pem-current", id: "ke-signing-current" }, k.signing_public_key))
      : h("p", { class: "hint muted", id: "ke-signing-current" }, "No signing key registered."),
    keyText,
    h("span", { class: "hint muted", id: "ke-signing-key-help" },
      had ? "Leave empty to keep the registered key; paste another to replace it." : "Optional: the public half of the key pair the key's owner signs requests with. Never paste the private key."),
    had
      ? checkbox("ke-remove-signing-key", "Remove signing key", false, null, {
        onchange: (ev) => {
          keyText.disabled = ev.target.checked;
          if (ev.target.checked) form.querySelector("#ke-require-signature").checked = false;
        },
      })
      : null,
    checkbox("ke-require-signature", "Require signed requests", k.require_signature, requireSignatureHelp()),
    err,
    h("p", {}, submit, " ", h("a", { href: "#/keys", onclick: (ev) => { ev.preventDefault(); guarded(() => viewKeys()); } }, "Cancel")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = (id) => form.querySelector(id).value.trim();
    const body = {};
    if (v("#ke-name") !== k.name) body.name = v("#ke-name");
    if (v("#ke-description") !== (k.description ?? "")) body.description = v("#ke-description");
    const ips = v("#ke-ips").split(/\s+/).filter(Boolean);
    if (ips.join("\n") !== k.ip_allowlist.join("\n")) body.ip_allowlist = ips;
    const remove = form.querySelector("#ke-remove-signing-key");
    if (remove && remove.checked) body.signing_public_key = null;
    else if (v("#ke-signing-key")) body.signing_public_key = v("#ke-signing-key");
    const required = form.querySelector("#ke-require-signature").checked;
    if (required !== k.require_signature) body.require_signature = required;
    if (!Object.keys(body).length) {
      await guarded(() => viewKeys(null, "No changes to save."));
      return;
    }
    submit.disabled = true;
    try {
      await api("PUT", `/admin/v1/keys/${k.id}`, body);
      await viewKeys(null, `Key “${body.name ?? k.name}” saved.`);
    } catch (e) {
      submit.disabled = false;
      markInvalid(form, e, keyFields("ke"));
      err.replaceChildren(notice("error", fieldErrors(e)));
    }
  });
  return form;
}

// A delivery log refreshes itself for a while after a test or a redelivery; a newer load (or
// leaving the screen) ends the older one.
let deliveryLoad = 0;
let deliveryTimer = null;

function stopDeliveryLog() {
  deliveryLoad += 1;
  clearTimeout(deliveryTimer);
  deliveryTimer = null;
}

function truncate(s, n) {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

function webhookSecretPanel(ep) {
  const copied = h("span", { class: "muted", id: "wh-copied" });
  return h(
    "div",
    { class: "secret", id: "wh-secret-panel" },
    h("strong", {}, "Copy this signing secret now — it won't be shown again."),
    h("p", { class: "key mono", id: "wh-secret" }, ep.secret),
    h("p", {}, h("button", {
      id: "wh-copy-secret",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(ep.secret);
          copied.textContent = " Copied.";
        } catch (_) {
          copied.textContent = " Select the secret and copy it.";
        }
      },
    }, "Copy to clipboard"), copied),
    h("p", {}, "It signs every delivery to ", h("code", {}, ep.url), ": the ", h("code", {}, "webhook-signature"), " header is ",
      h("code", {}, "v1,"), " and the base64 HMAC-SHA256 of ", h("code", {}, "{webhook-id}.{webhook-timestamp}.{body}"),
      ", keyed with the base64-decoded part after ", h("code", {}, "whsec_"), "."),
    ep.previous_secret_expires_at ? h("p", {}, `The previous secret keeps signing deliveries too until ${fmtDate(ep.previous_secret_expires_at)}.`) : null,
  );
}

function endpointRow(ep, act, reload, openLog) {
  const events = ep.events.length ? ep.events.map((t, i) => [i ? ", " : null, h("code", {}, t)]) : h("span", { class: "muted" }, "All events");
  const status = ep.enabled ? "enabled" : "disabled";
  return h(
    "tr",
    { "data-endpoint": ep.id },
    h("td", {}, h("code", { class: "url" }, ep.url), ep.description ? h("div", { class: "muted" }, ep.description) : null,
      h("div", { class: "muted" }, "Secret ", h("code", {}, ep.secret_hint))),
    h("td", {}, events),
    h("td", {},
      h("span", { class: `badge ${status}` }, status),
      !ep.enabled && ep.disabled_reason ? h("div", { class: "muted reason" }, ep.disabled_reason) : null,
      ep.failing_since ? h("div", { class: "up" }, `Failing since ${fmtDate(ep.failing_since)}`) : null,
      ep.previous_secret_expires_at ? h("div", { class: "muted" }, `Previous secret valid until ${fmtDate(ep.previous_secret_expires_at)}`) : null),
    h("td", {}, fmtDate(ep.created_at)),
    h("td", {}, h("div", { class: "actions" },
      h("button", {
        "data-test": ep.id,
        onclick: act(async () => {
          const sent = await api("POST", `/admin/v1/webhooks/${ep.id}/test`, {});
          await openLog(ep, sent.id);
        }),
      }, "Send test"),
      h("button", { "data-deliveries": ep.id, onclick: act(() => openLog(ep)) }, "Deliveries"),
      h("button", {
        "data-toggle-endpoint": ep.id,
        onclick: act(async () => {
          await api("PUT", `/admin/v1/webhooks/${ep.id}`, { enabled: !ep.enabled });
          await reload();
        }),
      }, ep.enabled ? "Disable" : "Enable"),
      h("button", {
        "data-rotate-secret": ep.id,
        onclick: act(async () => {
          const grace = prompt("Keep the previous secret signing deliveries too for: now, 1h, 24h or 7d", "24h");
          if (!grace) return;
          const rotated = await api("POST", `/admin/v1/webhooks/${ep.id}/rotate-secret`, { grace: grace.trim() });
          await reload(rotated);
        }),
      }, "Rotate secret"),
      h("button", {
        class: "danger",
        "data-delete-endpoint": ep.id,
        onclick: act(async () => {
          if (!confirm(`Delete the endpoint ${ep.url}? Its pending deliveries will not be sent.`)) return;
          await api("DELETE", `/admin/v1/webhooks/${ep.id}`);
          await reload();
        }),
      }, "Delete"),
    )),
  );
}

function deliveryRow(d, act, redeliver) {
  const answer = d.response_excerpt ?? d.last_error;
  return h(
    "tr",
    { "data-delivery": d.id },
    h("td", {}, h("code", {}, d.event_type)),
    h("td", {}, h("code", {}, d.event_id)),
    h("td", {}, h("span", { class: `badge ${d.state}` }, d.state)),
    h("td", {}, d.last_status ?? "—"),
    h("td", {}, d.last_latency_ms === null || d.last_latency_ms === undefined ? "—" : `${d.last_latency_ms} ms`),
    h("td", {}, d.attempts),
    h("td", {}, d.state === "pending" ? fmtDate(d.next_attempt_at) : "—"),
    h("td", {}, answer ? h("code", { class: d.response_excerpt === null || d.response_excerpt === undefined ? "excerpt up" : "excerpt", title: answer }, truncate(answer, 80)) : "—"),
    h("td", {}, h("button", { "data-redeliver": d.id, onclick: act(() => redeliver(d)) }, "Redeliver")),
  );
}

// Shows the delivery log of `ep` in `box`; with `expect` (a delivery just queued) it looks again
// every second, for up to 10 seconds, until that delivery is there and none is pending.
async function showDeliveries(box, ep, act, expect) {
  stopDeliveryLog();
  const load = deliveryLoad;
  const until = expect ? Date.now() + 10000 : 0;
  box.hidden = false;
  box.dataset.endpoint = ep.id;
  const redeliver = async (d) => {
    const again = await api("POST", `/admin/v1/webhooks/${ep.id}/deliveries/${d.id}/redeliver`, {});
    await showDeliveries(box, ep, act, again.id);
  };
  const heading = h("h3", {}, "Deliveries to ", h("code", {}, ep.url));
  const bar = h("p", { class: "row" }, h("button", { id: "wh-refresh", onclick: act(() => showDeliveries(box, ep, act)) }, "Refresh"));
  const step = async () => {
    deliveryTimer = null;
    let page;
    try {
      page = await api("GET", `/admin/v1/webhooks/${ep.id}/deliveries?limit=25`);
    } catch (e) {
      if (load === deliveryLoad && box.isConnected) box.replaceChildren(heading, bar, notice("error", e.message));
      return;
    }
    if (load !== deliveryLoad || !box.isConnected) return;
    const rows = page.data.map((d) => deliveryRow(d, act, redeliver));
    box.replaceChildren(
      heading,
      bar,
      table(["Event", "Event id", "State", "HTTP status", "Latency", "Attempts", "Next attempt", "Response", ""], rows, "No deliveries yet."),
      page.has_more ? h("p", { class: "muted" }, "Showing the latest 25 deliveries.") : null,
    );
    const waiting = page.data.some((d) => d.state === "pending") || (expect && !page.data.some((d) => d.id === expect));
    if (waiting && Date.now() < until) deliveryTimer = setTimeout(step, 1000);
  };
  await step();
}

async function viewWebhooks(issued, openId) {
  stopDeliveryLog();
  const list = await api("GET", "/admin/v1/webhooks");
  const msg = h("div", { id: "wh-msg" });
  const log = h("div", { id: "wh-deliveries", class: "deliveries", hidden: true });
  const act = (fn) => async () => {
    msg.replaceChildren();
    try {
      await fn();
    } catch (e) {
      msg.replaceChildren(notice("error", fieldErrors(e)));
    }
  };
  const reload = (next) => viewWebhooks(next, log.dataset.endpoint);
  const openLog = (ep, expect) => showDeliveries(log, ep, act, expect);
  setMain(
    h("h2", {}, "Webhooks"),
    h("p", { class: "muted" }, "Each endpoint gets a signed POST (Standard Webhooks) for every event it subscribes to; failed deliveries are retried."),
    issued && issued.secret ? webhookSecretPanel(issued) : null,
    h("p", {}, h("button", { class: "primary", id: "wh-new", onclick: () => guarded(webhookForm) }, "New endpoint")),
    msg,
    table(["URL", "Events", "Status", "Created", ""], list.data.map((ep) => endpointRow(ep, act, reload, openLog)), "No webhook endpoints yet."),
    log,
  );
  const open = list.data.find((ep) => ep.id === openId);
  if (open) await openLog(open);
}

async function webhookForm() {
  stopDeliveryLog();
  const types = await api("GET", "/admin/v1/webhooks/event-types");
  const err = h("div", {});
  const submit = h("button", { class: "primary", type: "submit", id: "wh-submit" }, "Add endpoint");
  const form = h(
    "form",
    { class: "stack", id: "wh-form" },
    h("label", { for: "wh-url" }, "Endpoint URL"),
    h("input", { id: "wh-url", class: "wide", type: "url", required: true, placeholder: "https://example.com/webhooks/angage" }),
    h("label", { for: "wh-description" }, "Description"),
    h("input", { id: "wh-description", class: "wide" }),
    h("fieldset", { class: "events", id: "wh-events" },
      h("legend", {}, "Events to send (none ticked sends every event)"),
      types.data.map((t) => h("label", {},
        h("input", { type: "checkbox", name: "wh-event", value: t.type }), " ", h("code", {}, t.type),
        t.description ? h("span", { class: "muted" }, ` — ${t.description}`) : null))),
    h("label", {}, h("input", { id: "wh-enabled", type: "checkbox", checked: true }), " Enabled"),
    err,
    h("p", {}, submit, " ", h("a", { href: "#/webhooks", onclick: (ev) => { ev.preventDefault(); guarded(() => viewWebhooks()); } }, "Cancel")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = (id) => form.querySelector(id).value.trim();
    const body = {
      url: v("#wh-url"),
      events: [...form.querySelectorAll("input[name=wh-event]:checked")].map((i) => i.value),
      enabled: form.querySelector("#wh-enabled").checked,
    };
    if (v("#wh-description")) body.description = v("#wh-description");
    submit.disabled = true;
    try {
      const created = await api("POST", "/admin/v1/webhooks", body);
      await viewWebhooks(created);
    } catch (e) {
      submit.disabled = false;
      err.replaceChildren(notice("error", fieldErrors(e)));
    }
  });
  setMain(h("h2", {}, "New webhook endpoint"), form);
}

async function viewLimits() {
  const [settings, keys] = await Promise.all([api("GET", "/admin/v1/settings"), api("GET", "/admin/v1/keys?limit=100")]);
  const l = settings.rate_limits;
  const msg = h("div", {});
  const input = (id, label, value) => h("div", {}, h("label", { for: id }, label), h("input", { id, type: "number", min: 1, value }));
  const check = (id, label, on) => h("label", {}, h("input", { id, type: "checkbox", checked: on }), ` ${label}`);
  const form = h(
    "form",
    { class: "stack", id: "limits-form" },
    h("div", { class: "row" }, input("l-second", "Per second", l.per_second), input("l-minute", "Per minute", l.per_minute), input("l-hour", "Per hour", l.per_hour), input("l-day", "Per day", l.per_day)),
    h("div", { class: "row" }, input("l-burst", "Burst size", l.burst), input("l-window", "Burst window (seconds)", l.burst_window_seconds)),
    check("l-retry", "Send Retry-After on 429", l.send_retry_after),
    check("l-headers", "Send rate-limit headers", l.send_rate_limit_headers),
    msg,
    h("p", {}, h("button", { class: "primary", type: "submit", id: "limits-save" }, "Save defaults")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const n = (id) => Number(form.querySelector(id).value);
    try {
      await api("PUT", "/admin/v1/settings", {
        rate_limits: {
          per_second: n("#l-second"), per_minute: n("#l-minute"), per_hour: n("#l-hour"), per_day: n("#l-day"),
          burst: n("#l-burst"), burst_window_seconds: n("#l-window"),
          send_retry_after: form.querySelector("#l-retry").checked, send_rate_limit_headers: form.querySelector("#l-headers").checked,
        },
      });
      msg.replaceChildren(notice("ok", "Defaults saved."));
    } catch (e) {
      msg.replaceChildren(notice("error", fieldErrors(e)));
    }
  });
  const show = (v, d) => (v === null ? h("span", { class: "muted" }, `${d} (default)`) : h("strong", {}, v));
  const rows = keys.data.filter((k) => k.status === "active").map((k) =>
    h("tr", {},
      h("td", {}, k.name),
      h("td", {}, show(k.rate_limits.per_minute, l.per_minute)),
      h("td", {}, show(k.rate_limits.per_hour, l.per_hour)),
      h("td", {}, show(k.rate_limits.per_day, l.per_day)),
      h("td", {}, h("button", {
        "data-edit-limits": k.id,
        onclick: async () => {
          const now = [k.rate_limits.per_minute, k.rate_limits.per_hour, k.rate_limits.per_day].map((v) => v ?? "").join(", ");
          const value = prompt(`Limits for "${k.name}": per minute, per hour, per day (leave a place empty for the default)`, now);
          if (value === null) return;
          const [m, hr, d] = value.split(",").map((x) => x.trim()).map((x) => (x === "" ? null : Number(x)));
          try {
            await api("PUT", `/admin/v1/keys/${k.id}`, { rate_limits: { ...k.rate_limits, per_minute: m ?? null, per_hour: hr ?? null, per_day: d ?? null } });
            guarded(viewLimits);
          } catch (e) {
            alert(fieldErrors(e));
          }
        },
      }, "Edit")),
    ));
  setMain(h("h2", {}, "Rate Limits"), h("h3", {}, "Tenant defaults"), form, h("h3", {}, "Per-key limits"), table(["Key", "Per minute", "Per hour", "Per day", ""], rows, "No active keys."));
}

async function viewUsage() {
  const period = new URLSearchParams(location.hash.split("?")[1] || "").get("period") || "30d";
  const q = `?period=${period}`;
  const [s, endpoints, keys, latency] = await Promise.all([
    api("GET", `/admin/v1/usage${q}`), api("GET", `/admin/v1/usage/endpoints${q}`), api("GET", `/admin/v1/usage/keys${q}`), api("GET", `/admin/v1/usage/latency${q}`),
  ]);
  const selector = h("select", { id: "period", onchange: (e) => { location.hash = `#/usage?period=${e.target.value}`; } },
    [["7d", "Last 7 days"], ["30d", "Last 30 days"], ["90d", "Last 90 days"]].map(([v, t]) => h("option", { value: v, selected: v === period }, t)));
  setMain(
    h("h2", {}, "Usage"),
    h("p", { class: "row" }, h("label", { for: "period" }, "Period"), selector, h("a", { href: `/admin/v1/usage/export.csv${q}`, id: "csv" }, "Export CSV")),
    h("div", { class: "cards" }, card("Total", s.total, "u-total"), card("Average per day", s.average_per_day), card("Peak", s.peak ? `${s.peak.requests} on ${s.peak.date}` : "—")),
    h("div", { class: "chart" }, h("h3", {}, "Daily requests"), h("img", { src: `/admin/v1/usage/chart.svg${q}`, alt: `Requests per day, ${period}` })),
    h("h3", {}, "Requests by endpoint"),
    table(["Endpoint", "Requests", "Share", "Average"], endpoints.map((e) => h("tr", {}, h("td", {}, h("code", {}, e.endpoint)), h("td", {}, e.requests), h("td", {}, `${e.share_pct}%`), h("td", {}, `${e.average_ms} ms`))), "No requests in this period."),
    h("h3", {}, "Requests by key"),
    table(["Key", "Environment", "Requests", "Share"], keys.map((k) => h("tr", {}, h("td", {}, k.name || k.key_id), h("td", {}, k.environment || "—"), h("td", {}, k.requests), h("td", {}, `${k.share_pct}%`))), "No requests in this period."),
    h("h3", {}, "Response times"),
    h("div", { class: "cards" },
      card("Average", `${latency.average_ms} ms`), card("p95", latency.p95_ms === null ? "—" : `${latency.p95_ms} ms`), card("p99", latency.p99_ms === null ? "—" : `${latency.p99_ms} ms`),
      card("Slowest endpoint", latency.slowest_endpoint ? `${latency.slowest_endpoint.endpoint} (${latency.slowest_endpoint.average_ms} ms)` : "—")),
  );
}

async function viewErrors() {
  const [e, recent] = await Promise.all([api("GET", "/admin/v1/errors?period=30d"), api("GET", "/admin/v1/errors/recent?limit=20")]);
  const arrow = { up: "▲ up", down: "▼ down", stable: "● stable" };
  setMain(
    h("h2", {}, "Errors"),
    h("div", { class: "cards" }, card("Total errors", e.total, "e-total"), card("Error rate", `${e.error_rate_pct}%`), card("Most common", e.most_common ? `${e.most_common.code} (${e.most_common.count})` : "—")),
    h("h3", {}, "By status (last 30 days, against the 30 before)"),
    table(["Status", "Count", "Share", "Trend"], e.by_status.map((s) => h("tr", {}, h("td", {}, s.status), h("td", {}, s.count), h("td", {}, `${s.share_pct}%`), h("td", { class: s.trend }, arrow[s.trend]))), "No errors. 🎉"),
    h("h3", {}, "Recent errors"),
    table(["Time", "Status", "Message", "Key"], recent.data.map((r) => h("tr", {}, h("td", {}, fmtDate(r.at)), h("td", {}, r.status), h("td", {}, r.message || r.code || ""), h("td", {}, r.key_name || "—"))), "No recent errors."),
  );
}

// A `datetime-local` value, read as UTC (the console shows every time in UTC), in RFC 3339.
function utcInput(value) {
  if (!value) return "";
  return value.length === 16 ? `${value}:00Z` : `${value}Z`;
}

function fmtTime(s) {
  return s ? `${s.replace("T", " ").slice(0, 19)} UTC` : "—";
}

function requestRow(r) {
  const latency = typeof r.latency_ms === "number" ? `${Math.round(r.latency_ms * 10) / 10} ms` : "—";
  return h(
    "tr",
    { "data-request": r.id },
    h("td", { class: "nowrap" }, fmtTime(r.at)),
    h("td", {}, r.method),
    h("td", {}, h("code", { class: "url", title: r.endpoint }, r.path)),
    h("td", { class: r.status >= 400 ? "status-error" : null }, r.status),
    h("td", { class: "nowrap" }, latency),
    h("td", { title: r.key_id || null }, r.key_name || r.key_id || (r.client_id ? `client ${r.client_id}` : "—")),
    h("td", { title: r.user_agent || null }, r.client_ip || "—"),
    h("td", {}, r.request_id ? h("code", { class: "url" }, r.request_id) : "—"),
    h("td", { title: r.rule ? `Rule: ${r.rule}` : null }, r.error_code ? h("code", {}, r.error_code) : "—"),
  );
}

async function viewRequests() {
  const [keys, settings] = await Promise.all([api("GET", "/admin/v1/keys?limit=100"), api("GET", "/admin/v1/settings").catch(() => null)]);
  const logAll = settings ? settings.security.log_all_requests : null;
  const mode = h("p", { id: "rl-mode", class: "muted" },
    logAll === null ? "" : logAll
      ? "Every /v1 request is kept here: “Log all API requests” is on."
      : ["Only errors (status 400 and above) and a sample of successful requests are kept. Turn on “Log all API requests” on the ",
        h("a", { href: "#/auth" }, "Authentication"), " screen to keep every request."]);
  const msg = h("div", { id: "rl-msg" });
  const results = h("div", { id: "rl-table" });
  const pager = h("p", { class: "row", id: "rl-pager" });
  const exportLink = h("a", { href: "/admin/v1/requests/export.csv", id: "rl-export" }, "Export CSV");
  const keyLabel = (k) => `${k.name} (${k.environment}${k.status === "active" ? "" : `, ${k.status}`})`;
  const field = (id, label, input) => h("div", {}, h("label", { for: id }, label), input);
  const form = h(
    "form",
    { class: "stack", id: "rl-form" },
    h("div", { class: "row" },
      field("rl-key", "Key", h("select", { id: "rl-key" }, h("option", { value: "" }, "All keys"), keys.data.map((k) => h("option", { value: k.id }, keyLabel(k))))),
      field("rl-status", "Status", h("input", { id: "rl-status", size: 8, placeholder: "404 or 4xx" })),
      field("rl-path", "Path starts with", h("input", { id: "rl-path", placeholder: "/v1/orders" })),
      field("rl-request-id", "Request id", h("input", { id: "rl-request-id" })),
    ),
    h("div", { class: "row" },
      field("rl-from", "From (UTC)", h("input", { id: "rl-from", type: "datetime-local", step: 1 })),
      field("rl-to", "To (UTC)", h("input", { id: "rl-to", type: "datetime-local", step: 1 })),
      h("div", {}, h("button", { class: "primary", type: "submit", id: "rl-apply" }, "Apply filters"), " ",
        h("button", { type: "button", id: "rl-reset", onclick: () => { form.reset(); show(filters(), [null]); } }, "Clear")),
    ),
  );
  // The filters the form holds, as query parameters (empty ones left out: the API refuses them).
  const filters = () => {
    const q = new URLSearchParams();
    const v = (id) => form.querySelector(id).value.trim();
    for (const [name, value] of [["key_id", v("#rl-key")], ["status", v("#rl-status")], ["path", v("#rl-path")], ["request_id", v("#rl-request-id")],
      ["created_after", utcInput(v("#rl-from"))], ["created_before", utcInput(v("#rl-to"))]]) {
      if (value) q.set(name, value);
    }
    return q;
  };
  // Shows the page after `cursors`' last entry (null: the newest); a newer load wins over an older one.
  let load = 0;
  const show = async (q, cursors) => {
    const mine = ++load;
    const page = new URLSearchParams(q);
    page.set("limit", "50");
    const after = cursors[cursors.length - 1];
    if (after) page.set("starting_after", after);
    let list;
    try {
      list = await api("GET", `/admin/v1/requests?${page}`);
    } catch (e) {
      if (mine !== load) return;
      msg.replaceChildren(notice("error", fieldErrors(e)));
      results.replaceChildren();
      pager.replaceChildren();
      exportLink.hidden = true;
      return;
    }
    if (mine !== load) return;
    msg.replaceChildren();
    const qs = q.toString();
    exportLink.href = `/admin/v1/requests/export.csv${qs ? `?${qs}` : ""}`;
    exportLink.hidden = false;
    results.replaceChildren(table(["Time", "Method", "Path", "Status", "Latency", "Key", "IP", "Request id", "Error"], list.data.map(requestRow),
      qs ? "No requests match these filters." : "No requests logged yet."));
    pager.replaceChildren(...[
      cursors.length > 1 ? h("button", { type: "button", id: "rl-first", onclick: () => show(q, [null]) }, "Newest") : null,
      cursors.length > 1 || list.has_more ? h("span", { class: "muted", id: "rl-page" }, `Page ${cursors.length}`) : null,
      list.has_more && list.next_cursor ? h("button", { type: "button", id: "rl-next", onclick: () => show(q, [...cursors, list.next_cursor]) }, "Next page") : null,
    ].filter(Boolean));
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    show(filters(), [null]);
  });
  setMain(
    h("h2", {}, "Request log"),
    mode,
    form,
    msg,
    h("p", { class: "row" }, h("span", { class: "muted" }, "Newest first. Secret query values are shown as [redacted]."), exportLink),
    results,
    pager,
  );
  await show(filters(), [null]);
}

// The Token expiration choices; a stored lifetime that is not one of them (the API takes 5 to 1440
// minutes) is offered too, so saving the form keeps it.
function tokenTtlOptions(current) {
  const options = [[15, "15 minutes"], [30, "30 minutes"], [60, "1 hour"], [480, "8 hours"], [1440, "24 hours"]];
  if (typeof current === "number" && !options.some(([v]) => v === current)) {
    options.push([current, `${current} minutes`]);
    options.sort((a, b) => a[0] - b[0]);
  }
  return options;
}

async function viewAuth() {
  const settings = await api("GET", "/admin/v1/settings");
  const s = settings.security;
  const msg = h("div", {});
  const form = h(
    "form",
    { class: "stack", id: "auth-form" },
    checkbox("a-https", "HTTPS only", s.require_https),
    checkbox("a-signatures", "Validate request signatures", s.validate_request_signatures,
      "On: every /v1 request must be signed with the key's registered Ed25519 key (RFC 9421); keys without one are refused."),
    checkbox("a-log", "Log all API requests", s.log_all_requests, [
      "On: every /v1 request is kept in the ", h("a", { href: "#/requests" }, "Request log"), ". ",
      "Off: only errors (status 400 and above) and a sample of successful requests are kept there. ",
      "Usage and error figures count every request either way.",
    ]),
    checkbox("a-oauth", "OAuth 2.0 (enterprise)", s.oauth_enabled, [
      "On: the tenant's ", h("a", { href: "#/oauth-clients" }, "OAuth clients"), " get access tokens at /oauth/token ",
      "(client credentials, or an app an admin approves), and /v1 accepts them. Off: tokens are refused.",
    ]),
    h("label", { for: "a-token-ttl" }, "Token expiration"),
    h("select", { id: "a-token-ttl" }, tokenTtlOptions(s.oauth_token_ttl_minutes)
      .map(([v, label]) => h("option", { value: String(v), selected: s.oauth_token_ttl_minutes === v ? true : null }, label))),
    h("label", { for: "a-expiry" }, "Default key expiration (days; empty for never)"),
    h("input", { id: "a-expiry", type: "number", min: 1, value: s.default_key_expiration_days ?? "" }),
    msg,
    h("p", {}, h("button", { class: "primary", type: "submit", id: "auth-save" }, "Save security settings")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const days = form.querySelector("#a-expiry").value;
    try {
      await api("PUT", "/admin/v1/settings", { security: {
        require_https: form.querySelector("#a-https").checked,
        validate_request_signatures: form.querySelector("#a-signatures").checked,
        log_all_requests: form.querySelector("#a-log").checked,
        oauth_enabled: form.querySelector("#a-oauth").checked,
        oauth_token_ttl_minutes: Number(form.querySelector("#a-token-ttl").value),
        default_key_expiration_days: days === "" ? null : Number(days),
      } });
      msg.replaceChildren(notice("ok", "Security settings saved."));
    } catch (e) {
      msg.replaceChildren(notice("error", fieldErrors(e)));
    }
  });
  setMain(
    h("h2", {}, "Authentication"),
    h("h3", {}, "Supported methods"),
    h("ul", {}, h("li", {}, "Bearer token: ", h("code", {}, "Authorization: Bearer ak_live_…")), h("li", {}, "API key header: ", h("code", {}, "X-API-Key: ak_live_…")),
      h("li", {}, "OAuth 2.0 access token: ", h("code", {}, "Authorization: Bearer at_live_…"), " (when OAuth 2.0 is on)")),
    h("h3", {}, "Security settings"),
    form,
  );
}

async function viewRules() {
  const [rule, versions] = await Promise.all([api("GET", "/admin/v1/rules"), api("GET", "/admin/v1/rules/versions")]);
  const starter = "fn rule(request, key, limits) {\n    limits\n}\n";
  const editor = h("textarea", { class: "code", id: "rule-editor", spellcheck: "false", "aria-label": "Rule script" });
  editor.value = rule.script ?? starter;
  const out = h("div", { id: "rule-result" });
  const showErrors = (errors) => {
    const lines = editor.value.split("\n");
    out.replaceChildren(
      notice("error", errors.map((e) => (e.line ? `Line ${e.line}${e.column ? `, column ${e.column}` : ""}: ${e.message}` : e.message)).join("\n")),
      h("pre", {}, lines.map((l, i) => h("div", { class: errors.some((e) => e.line === i + 1) ? "error-line" : null }, `${String(i + 1).padStart(3)}  ${l}`))),
    );
  };
  const run = async (fn) => {
    try {
      await fn();
    } catch (e) {
      if (e.problem && e.problem.script_errors) showErrors(e.problem.script_errors);
      else out.replaceChildren(notice("error", fieldErrors(e)));
    }
  };
  setMain(
    h("h2", {}, "Rules"),
    h("p", { class: "muted" }, `Version ${rule.version ?? "—"}${rule.updated_by ? ` · by ${rule.updated_by}` : ""} · file policies/${rule.file}`),
    rule.last_error ? notice("error", `The last edit was rejected: ${rule.last_error.errors.map((e) => e.message).join("; ")}`) : null,
    editor,
    h("p", { class: "row" },
      h("button", { id: "rule-validate", onclick: () => run(async () => {
        const r = await api("POST", "/admin/v1/rules/validate", { script: editor.value });
        if (r.valid) out.replaceChildren(notice("ok", "The rule compiles and passes its dry run.")); else showErrors(r.errors);
      }) }, "Validate"),
      h("button", { id: "rule-dry-run", onclick: () => run(async () => {
        const r = await api("POST", "/admin/v1/rules/dry-run", { script: editor.value, request: { method: "POST", route: "/v1/orders" } });
        out.replaceChildren(notice("ok", `Dry run (POST /v1/orders): ${JSON.stringify(r.limits)}`));
      }) }, "Dry run"),
      h("button", { class: "primary", id: "rule-save", onclick: () => run(async () => {
        const v = await api("PUT", "/admin/v1/rules", { script: editor.value });
        await viewRules();
        document.getElementById("rule-result").replaceChildren(notice("ok", `Saved as version ${v.version}.`));
      }) }, "Save"),
    ),
    out,
    h("h3", {}, "Version history"),
    table(["Version", "By", "When", "Note", ""], versions.map((v) => h("tr", {}, h("td", {}, v.version), h("td", {}, v.created_by), h("td", {}, fmtDate(v.created_at)), h("td", {}, v.note || ""),
      h("td", {}, v.version === rule.version ? "serving" : h("button", { onclick: () => run(async () => { await api("POST", "/admin/v1/rules/rollback", { version: v.version }); await viewRules(); }) }, "Roll back")))), "No versions yet."),
  );
}

async function viewPlugins() {
  const stages = await api("GET", "/admin/v1/plugins");
  setMain(
    h("h2", {}, "Plugins"),
    table(["Stage", "Plugin", "Source", "Version", "Loaded", "Last error"], stages.map((s) => h("tr", {},
      h("td", {}, s.stage), h("td", {}, s.plugin), h("td", {}, s.source), h("td", {}, `${s.version} (contract ${s.contract})`), h("td", {}, fmtDate(s.loaded_at)),
      h("td", {}, s.last_error ? h("span", { class: "up" }, s.last_error.message) : "—"))), "No plugins."),
  );
}

async function viewDocs() {
  setMain(
    h("h2", {}, "API Documentation"),
    h("ul", {},
      h("li", {}, h("a", { href: "/docs", id: "docs-link" }, "Interactive documentation"), " — every endpoint, with examples in cURL, Python, JavaScript and PHP"),
      h("li", {}, h("a", { href: "/v1/openapi.json", download: "angage-openapi.json" }, "OpenAPI 3.1 document (download)")),
      h("li", {}, h("a", { href: "/admin/v1/openapi.json", download: "angage-admin-openapi.json" }, "Admin API OpenAPI document"))),
  );
}

// ---- OAuth clients --------------------------------------------------------------------------

function clientSecretPanel(c) {
  return h("section", { class: "secret", id: "oc-secret", role: "status" },
    h("h3", {}, `Credentials for ${c.name}`),
    h("p", {}, "Client ID: ", h("code", { id: "oc-client-id" }, c.client_id)),
    h("p", {}, "Client secret: ", h("code", { id: "oc-client-secret" }, c.client_secret)),
    h("p", { class: "muted" }, "Copy the secret now: it is shown this once and cannot be shown again."));
}

async function viewOAuthClients(issued) {
  const [page, settings] = await Promise.all([api("GET", "/admin/v1/oauth-clients?limit=100"), api("GET", "/admin/v1/settings")]);
  const msg = h("div", { id: "oc-msg" });
  const act = async (fn, done) => {
    try {
      const r = await fn();
      await viewOAuthClients(done(r));
    } catch (e) {
      msg.replaceChildren(notice("error", fieldErrors(e)));
    }
  };
  const rows = page.data.map((c) => h("tr", { "data-client": c.id },
    h("td", {}, c.name), h("td", {}, h("code", {}, c.id)), h("td", {}, c.scopes.join(" ")),
    h("td", {}, c.environments.join(", ")), h("td", {}, h("span", { class: `badge ${c.status}` }, c.status)),
    h("td", {}, c.status === "active" ? [
      h("button", { type: "button", "data-rotate-client": c.id, "aria-label": `Rotate the secret of ${c.name}`,
        onclick: () => act(() => api("POST", `/admin/v1/oauth-clients/${c.id}/rotate-secret`, {}), (r) => r) }, "Rotate secret"), " ",
      h("button", { type: "button", "data-revoke-client": c.id, "aria-label": `Revoke ${c.name}`,
        onclick: () => { if (window.confirm(`Revoke ${c.name}? Its tokens stop working at once.`)) act(() => api("POST", `/admin/v1/oauth-clients/${c.id}/revoke`, {}), () => undefined); } }, "Revoke"),
    ] : "—")));
  const scopeBoxes = MODULES.map((m) => h("tr", {}, h("td", {}, m),
    ["read", "write"].map((a) => h("td", {}, h("input", { type: "checkbox", id: `oc-scope-${m}-${a}`, "aria-label": `${m}:${a}` })))));
  const errors = h("div", { id: "oc-errors" });
  const form = h("form", { class: "stack", id: "oc-form" },
    h("h3", {}, "New client"),
    h("label", { for: "oc-name" }, "Name"), h("input", { id: "oc-name", required: true }),
    h("table", { class: "scopes" }, h("thead", {}, h("tr", {}, h("th", {}, "Module"), h("th", {}, "Read"), h("th", {}, "Write"))), h("tbody", {}, scopeBoxes)),
    h("fieldset", { class: "events" }, h("legend", {}, "Environments"),
      h("label", {}, h("input", { type: "checkbox", id: "oc-env-live", checked: true }), " live"), " ",
      h("label", {}, h("input", { type: "checkbox", id: "oc-env-test", checked: true }), " test")),
    h("label", { for: "oc-redirects" }, "Redirect URIs, one per line (apps that an admin approves; leave empty for client credentials only)"),
    h("textarea", { id: "oc-redirects", rows: 2 }),
    h("label", { for: "oc-per-minute" }, "Requests per minute (empty: the tenant's default)"),
    h("input", { id: "oc-per-minute", type: "number", min: 1 }),
    errors,
    h("p", {}, h("button", { class: "primary", type: "submit", id: "oc-create" }, "Create client")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const scopes = MODULES.flatMap((m) => ["read", "write"].filter((a) => form.querySelector(`#oc-scope-${m}-${a}`).checked).map((a) => `${m}:${a}`));
    const environments = ["live", "test"].filter((e) => form.querySelector(`#oc-env-${e}`).checked);
    const body = { name: form.querySelector("#oc-name").value, scopes, environments };
    const redirects = form.querySelector("#oc-redirects").value.split("\n").map((l) => l.trim()).filter((l) => l);
    if (redirects.length) body.redirect_uris = redirects;
    const perMinute = form.querySelector("#oc-per-minute").value;
    if (perMinute !== "") body.rate_limits = { per_minute: Number(perMinute) };
    try {
      await viewOAuthClients(await api("POST", "/admin/v1/oauth-clients", body));
    } catch (e) {
      markInvalid(form, e, { name: "oc-name", redirect_uris: "oc-redirects", rate_limits: "oc-per-minute" });
      errors.replaceChildren(notice("error", fieldErrors(e)));
    }
  });
  const off = !settings.security.oauth_enabled;
  const list = table(["Name", "Client ID", "Scopes", "Environments", "Status", ""], rows, "No OAuth clients yet.");
  list.id = "oc-table";
  setMain(
    h("h2", {}, "OAuth clients"),
    h("p", { id: "oc-mode" }, off
      ? ["OAuth 2.0 is off: these clients get no tokens and issued tokens are refused. Turn it on on the ", h("a", { href: "#/auth" }, "Authentication"), " screen."]
      : "OAuth 2.0 is on: clients get access tokens at /oauth/token and use them as Authorization: Bearer at_live_…"),
    issued && issued.client_secret ? clientSecretPanel(issued) : null,
    msg,
    list,
    form,
  );
}

// ---- OAuth consent --------------------------------------------------------------------------

const SCOPE_TEXT = { read: "read", write: "create, change and delete" };

async function viewConsent(id) {
  const req = await api("GET", `/admin/v1/oauth/authorizations/${encodeURIComponent(id)}`);
  const msg = h("div", { id: "consent-msg", role: "status" });
  const decide = async (verdict) => {
    try {
      const d = await api("POST", `/admin/v1/oauth/authorizations/${encodeURIComponent(id)}/${verdict}`, {});
      msg.replaceChildren(notice("ok", verdict === "approve" ? "Approved; returning to the app…" : "Denied; returning to the app…"));
      location.assign(d.redirect_to);
    } catch (e) {
      msg.replaceChildren(notice("error", e.message));
    }
  };
  const scopes = req.scopes.map((s) => {
    const [module, access] = s.split(":");
    return h("li", {}, h("code", {}, s), ` — ${SCOPE_TEXT[access] || access} ${module}`);
  });
  setMain(
    h("h2", { id: "consent-title" }, `Allow ${req.client_name} to use ${state.me.tenant_name}'s API?`),
    h("p", {}, h("strong", { id: "consent-app" }, req.client_name), ` (client ${req.client_id}) asks to act for ${state.me.tenant_name} with:`),
    h("ul", { id: "consent-scopes" }, scopes),
    h("p", { class: "muted" }, "You will be sent back to ", h("code", { id: "consent-redirect" }, req.redirect_uri),
      `. Access lasts until it is revoked on the OAuth clients screen. This request expires ${fmtDate(req.expires_at)}.`),
    msg,
    h("p", {},
      h("button", { class: "primary", id: "consent-approve", onclick: () => decide("approve") }, `Allow ${req.client_name}`), " ",
      h("button", { id: "consent-deny", onclick: () => decide("deny") }, "Deny")),
  );
}

// ---- start ---------------------------------------------------------------------------------

(async () => {
  try {
    const me = await fetch("/admin/v1/me", { credentials: "same-origin" });
    if (me.ok) {
      state.me = await me.json();
      state.csrf = state.me.csrf_token;
    }
  } catch (_) {
    /* not logged in */
  }
  render();
})();
