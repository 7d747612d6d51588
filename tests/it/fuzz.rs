//! Property tests over everything a client (or a tenant's rule) sends the server: JSON bodies,
//! credentials, forwarded headers, rule text, and whole requests — paths, query strings and
//! cursors, headers, bodies — against the real server. Each runs a fixed number of cases
//! (bounded time in CI); whatever they found is fixed, and they keep it fixed: no panic, no
//! 500, every error problem+json, every echoed string bounded. The plugin outputs the host
//! takes are covered beside their bounds, in `angage-policy`'s `plugins/outputs.rs`.
//!
//! `ANGAGE_FUZZ_CASES=20000` runs each longer, for a search deeper than CI's.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use angage_core::validate::{FieldError, MAX_ERRORS};

/// Cases per property: `default`, or `ANGAGE_FUZZ_CASES`.
fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("ANGAGE_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    ProptestConfig::with_cases(n)
}

/// Field names the parsers know, so generated bodies reach past "unknown field".
const KNOWN: &[&str] = &[
    "name",
    "email",
    "phone",
    "billing_address",
    "line1",
    "line2",
    "city",
    "postal_code",
    "country",
    "metadata",
    "sku",
    "description",
    "unit_price",
    "amount",
    "currency",
    "active",
    "customer",
    "customer_id",
    "items",
    "product",
    "quantity",
    "status",
    "order",
    "order_id",
    "invoice",
    "method",
    "on_hand",
    "reserved",
    "rate_limits",
    "per_second",
    "per_minute",
    "per_hour",
    "per_day",
    "burst",
    "burst_window_seconds",
    "ip_allowlist",
    "scope",
    "grants",
    "environment",
    "expires_in_days",
    "security",
    "require_https",
    "send_retry_after",
    "timezone",
    "default_key_expiration_days",
    "role",
    "disabled",
    "password",
    "script",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ".{0,24}",
        1 => "[\\x00-\\x1f\\u{7f}-\\u{9f}\\u{202e}\"\\\\]{0,12}",
        1 => (1usize..3000).prop_map(|n| "x".repeat(n)),
        1 => prop::sample::select(vec!["", " ", "0", "-1", "1e309", "ak_live_", "2026-13-45T99:00:00Z", "ÿ"])
            .prop_map(str::to_owned),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![3 => prop::sample::select(KNOWN).prop_map(str::to_owned), 1 => text()]
}

/// Any JSON, shallow or deep, with the numbers and strings parsers trip on.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..10)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn body() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::collection::vec((key(), json_value()), 0..12).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        1 => json_value(),
    ]
}

/// What a client is told about a body: at most `MAX_ERRORS` (+ the note that more exist), each
/// naming its field and reason briefly, with no raw control character.
fn errors_are_bounded(errors: &[FieldError]) -> Result<(), TestCaseError> {
    prop_assert!(!errors.is_empty(), "a refusal says why");
    prop_assert!(errors.len() <= MAX_ERRORS + 1, "{} errors", errors.len());
    for e in errors {
        prop_assert!(e.field.chars().count() <= 400, "field of {} chars", e.field.chars().count());
        prop_assert!(e.message.chars().count() <= 400, "message of {} chars", e.message.chars().count());
        prop_assert!(!e.field.chars().chain(e.message.chars()).any(char::is_control), "{e:?}");
    }
    Ok(())
}

type Parser = fn(&Value) -> Result<(), Vec<FieldError>>;

fn parsers() -> Vec<(&'static str, Parser)> {
    use angage_store::resources::{customers, inventory, invoices, orders, payments, products};
    vec![
        ("new customer", |b| customers::NewCustomer::parse(b).map(drop)),
        ("customer update", |b| customers::CustomerUpdate::parse(b).map(drop)),
        ("new product", |b| products::NewProduct::parse(b).map(drop)),
        ("product update", |b| products::ProductUpdate::parse(b).map(drop)),
        ("new order", |b| orders::NewOrder::parse(b).map(drop)),
        ("order update", |b| orders::OrderUpdate::parse(b).map(drop)),
        ("new invoice", |b| invoices::NewInvoice::parse(b).map(drop)),
        ("new payment", |b| payments::NewPayment::parse(b).map(drop)),
        ("inventory update", |b| inventory::InventoryUpdate::parse(b).map(drop)),
        ("new key", |b| angage_store::keys::NewKey::parse(b).map(drop)),
        ("key update", |b| angage_store::keys::KeyUpdate::parse(b).map(drop)),
        ("tenant settings", |b| angage_core::settings::TenantSettings::default().parse_update(b).map(drop)),
    ]
}

proptest! {
    #![proptest_config(cases(384))]

    #[test]
    fn any_json_body_is_read_or_refused_briefly(body in body()) {
        for (what, parse) in parsers() {
            if let Err(errors) = parse(&body) {
                errors_are_bounded(&errors).map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
            }
        }
    }

    #[test]
    fn a_credential_is_read_one_way(auth in prop::option::of(".{0,60}"), x_key in prop::option::of(".{0,60}")) {
        use angage_plugin_sdk::forwarded::credential;
        if let Some(c) = credential(auth.as_deref(), x_key.as_deref()) {
            prop_assert!(!c.is_empty() && c.trim() == c);
            prop_assert!(auth.as_deref().or(x_key.as_deref()).is_some_and(|h| h.contains(c)));
            let parsed = angage_store::keys::ApiKey::parse(c);
            prop_assert!(parsed.is_err() || c.len() == 48);
        }
        let bearer = format!("{} ak_live_x", if auth.is_some() { "BEARER" } else { "Bearer" });
        prop_assert_eq!(credential(Some(&bearer), None), Some("ak_live_x"));
    }

    #[test]
    fn the_client_behind_proxies_is_an_address_someone_wrote(
        peer in any::<[u8; 4]>(),
        lines in prop::collection::vec(prop::collection::vec(prop_oneof![
            any::<[u8; 4]>().prop_map(|a| std::net::Ipv4Addr::from(a).to_string()),
            Just("10.0.0.1".to_owned()),
            ".{0,12}",
        ], 0..4).prop_map(|hops| hops.join(", ")), 0..3),
        protos in prop::collection::vec("(https|http|HTTPS|.{0,6})(, (https|http))?", 0..3),
    ) {
        use angage_plugin_sdk::forwarded::client;
        let peer = std::net::IpAddr::from(peer);
        let trusted = |ip: &std::net::IpAddr| ip.to_string().starts_with("10.");
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let protos: Vec<&str> = protos.iter().map(String::as_str).collect();
        let (who, scheme) = client(Some(peer), &lines, &protos, trusted);
        if !trusted(&peer) {
            prop_assert_eq!((who, scheme), (Some(peer), None), "an untrusted peer's headers are ignored");
        } else if let Some(ip) = who {
            prop_assert!(ip == peer || lines.iter().any(|l| l.contains(&ip.to_string())));
        }
    }

    #[test]
    fn any_rule_text_compiles_or_is_refused_with_a_place(text in rule_text()) {
        let engine = angage_rules::engine::sandbox();
        match angage_rules::engine::compile(&engine, &text) {
            Err(e) => prop_assert!(e.line.is_none_or(|l| l <= text.lines().count() + 1), "{e:?}"),
            Ok(ast) => {
                let inputs = angage_rules::Inputs::new(angage_rules::sample_request(), angage_rules::sample_key());
                // Any outcome but a panic or a hang: the sandbox bounds operations and depth.
                let _ = angage_rules::engine::run(&engine, &ast, &inputs, angage_rules::sample_limits());
            }
        }
    }
}

/// Rule text: tokens a rule is made of in any order, nesting deep enough to hit the limits,
/// and rules that compile and run.
fn rule_text() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "fn",
        "rule",
        "(",
        ")",
        "{",
        "}",
        "[",
        "]",
        "#{",
        "let",
        "x",
        "=",
        "limits",
        ".",
        "per_minute",
        "cost",
        "request",
        "key",
        "module",
        "if",
        "else",
        "while",
        "loop",
        "break",
        "return",
        "+",
        "*",
        "/",
        "%",
        "..",
        ";",
        ",",
        "\n",
        "0",
        "9223372036854775807",
        "\"s\"",
        "'c'",
        "`t`",
        "//",
        "/*",
        "*/",
        "true",
        "==",
    ]);
    prop_oneof![
        2 => prop::collection::vec(token, 0..60).prop_map(|t| t.join(" ")),
        1 => ".{0,80}",
        1 => (1usize..5000, prop::sample::select(vec!["(", "[", "{", "#{", "-", "!", "if true {"]))
            .prop_map(|(n, open)| open.repeat(n)),
        2 => prop::collection::vec(prop::sample::select(vec![
            "limits.per_minute = limits.per_minute * 2;",
            "limits.cost = 0;",
            "limits.per_second = -5;",
            "let x = 0; while true { x += 1; }",
            "let s = \"a\"; loop { s += s; }",
            "let a = []; loop { a.push(a); }",
            "if request.module == \"orders\" { limits.per_hour = () ; }",
            "return #{ per_minute: \"many\" };",
            "rule(request, key, limits);",
        ]), 0..4).prop_map(|body| format!("fn rule(request, key, limits) {{ {} limits }}", body.join(" "))),
    ]
}

/// One request a client could send: any method, a route with odd segments, odd query strings
/// (cursors included), credentials right and wrong, odd headers, any body.
#[derive(Debug, Clone)]
struct Wild {
    method: &'static str,
    path: String,
    query: Vec<(String, String)>,
    auth: Auth,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
}

/// The credential a case sends: the right one for its route (the API key on `/v1`, the admin
/// token on `/admin`), none, the key mangled, a made-up key, or the other one.
#[derive(Debug, Clone, Copy)]
enum Auth {
    Right,
    None,
    Mangled,
    MadeUp,
    Other,
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => ".{0,16}".prop_map(|s| percent(&s)),
        1 => prop::sample::select(vec!["%FF%FE", "%00", "..", "%2e%2e", "CUST-10001", "cus_", "%C0%AF", "a%2Fb"])
            .prop_map(str::to_owned),
        1 => (1usize..3000).prop_map(|n| "y".repeat(n)),
    ]
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn wild() -> impl Strategy<Value = Wild> {
    let route = prop::sample::select(vec![
        "/v1/customers",
        "/v1/customers/{}",
        "/v1/products",
        "/v1/products/{}",
        "/v1/orders",
        "/v1/orders/{}",
        "/v1/orders/{}/cancel",
        "/v1/invoices",
        "/v1/invoices/{}",
        "/v1/inventory",
        "/v1/inventory/{}",
        "/v1/payments",
        "/v1/payments/{}",
        "/admin/v1/keys",
        "/admin/v1/keys/{}",
        "/admin/v1/keys/{}/rotate",
        "/admin/v1/usage",
        "/admin/v1/usage/endpoints",
        "/admin/v1/usage/export.csv",
        "/admin/v1/errors/recent",
        "/admin/v1/audit",
        "/admin/v1/admins/{}",
        "/admin/v1/tokens/{}",
        "/admin/v1/rules/validate",
        "/admin/v1/rules/dry-run",
        "/admin/v1/login",
        "/healthz",
        "/docs",
        "/{}",
    ]);
    let query_key = prop_oneof![
        4 => prop::sample::select(vec![
            "limit", "starting_after", "created[gte]", "created[lte]", "email", "status", "customer", "sku",
            "module", "from", "to", "granularity", "key_id", "environment", "bucket", "q",
        ]).prop_map(str::to_owned),
        1 => ".{0,10}",
    ];
    let query_value = prop_oneof![
        3 => ".{0,20}",
        1 => prop::sample::select(vec!["0", "-1", "101", "99999999999999999999", "cus_nope", "2026-11-02", "%zz", ""])
            .prop_map(str::to_owned),
        1 => (1usize..4000).prop_map(|n| "z".repeat(n)),
    ];
    let header = prop_oneof![
        prop::sample::select(vec!["\"0\"", "*", "W/\"1\"", "garbage"])
            .prop_map(|v| ("if-match", v.to_owned())),
        prop::sample::select(vec!["\"0\"", "*"]).prop_map(|v| ("if-none-match", v.to_owned())),
        "[ -~]{0,300}".prop_map(|v| ("idempotency-key", v)),
        prop::sample::select(vec![
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/json; charset=latin1"
        ])
        .prop_map(|v| ("content-type", v.to_owned())),
        "[ -~]{0,40}".prop_map(|v| ("x-forwarded-for", v)),
        "[ -~]{0,40}".prop_map(|v| ("cookie", v)),
    ];
    let body = prop_oneof![
        2 => Just(None),
        3 => body().prop_map(|v| Some(v.to_string())),
        1 => ".{0,64}".prop_map(Some),
    ];
    (
        prop::sample::select(vec![
            "GET", "GET", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "BREW",
        ]),
        route,
        segment(),
        prop::collection::vec((query_key, query_value), 0..5),
        prop_oneof![8 => Just(Auth::Right), 1 => Just(Auth::None), 1 => Just(Auth::Mangled), 1 => Just(Auth::MadeUp), 1 => Just(Auth::Other)],
        prop::collection::vec(header, 0..4),
        body,
    )
        .prop_map(|(method, route, seg, query, auth, headers, body)| Wild {
            method,
            path: route.replace("{}", &seg),
            query,
            auth,
            headers,
            body,
        })
}

#[test]
fn whatever_a_client_sends_it_gets_a_clear_answer() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (app, key, token) = rt.block_on(async {
        let db = crate::helpers::TestDb::new(crate::helpers::Backend::Sqlite).await;
        let mut settings = crate::helpers::test_settings(&db);
        settings.server.unauthenticated_per_minute = 1_000_000;
        let app = crate::helpers::spawn_with(db, settings).await;
        let owner = app.demo_admin().await;
        let limits = json!({"rate_limits": {"per_second": 100000, "per_minute": 1000000, "per_hour": 10000000, "per_day": 100000000, "burst": 100000}});
        assert_eq!(owner.put("/admin/v1/settings", limits).await.status, 200);
        let token = owner.post("/admin/v1/tokens", json!({"name": "fuzz"})).await.body["token"]
            .as_str()
            .expect("token")
            .to_owned();
        let key = app.v1().await.key().to_owned();
        (app, key, token)
    });
    let http = reqwest::Client::new();
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    // A fixed seed: the cases CI runs are the same every time (the coverage check below cannot
    // flake); `ANGAGE_FUZZ_CASES` goes further along the same sequence.
    let rng = proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha);
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(cases(400), rng);
    let outcome = runner.run(&wild(), |w| {
        let mut url =
            reqwest::Url::parse(&app.url(&w.path)).map_err(|e| TestCaseError::reject(e.to_string()))?;
        if !w.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&w.query);
        }
        let method = reqwest::Method::from_bytes(w.method.as_bytes()).expect("method");
        let mut req = http.request(method, url);
        let (right, other) = if w.path.starts_with("/admin") { (&token, &key) } else { (&key, &token) };
        req = match w.auth {
            Auth::Right => req.bearer_auth(right),
            Auth::None => req,
            Auth::Mangled => req.header("authorization", format!("bEaReR {key}x")),
            Auth::MadeUp => req.header("x-api-key", "ak_live_0000000000000000000000000000000000000000"),
            Auth::Other => req.bearer_auth(other),
        };
        for (name, value) in &w.headers {
            req = req.header(*name, value.as_str());
        }
        if let Some(body) = &w.body {
            // As a client would: JSON says so, unless the case sends a content type of its own.
            if !w.headers.iter().any(|(name, _)| *name == "content-type") {
                req = req.header("content-type", "application/json");
            }
            req = req.body(body.clone());
        }
        let (status, content_type, bytes) = rt.block_on(async {
            let resp = req.send().await.expect("the server answers");
            let ct =
                resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            (resp.status().as_u16(), ct, resp.bytes().await.expect("body"))
        });
        *seen.lock().expect("seen").entry(status).or_default() += 1;
        prop_assert!(status < 500, "{status} for {w:?}: {}", String::from_utf8_lossy(&bytes));
        if status >= 400 && w.method != "HEAD" {
            prop_assert!(
                content_type.starts_with("application/problem+json"),
                "{status} {content_type} for {w:?}"
            );
            let problem: Value =
                serde_json::from_slice(&bytes).map_err(|e| TestCaseError::fail(format!("{e} for {w:?}")))?;
            prop_assert!(problem["code"].is_string(), "{problem}");
            prop_assert!(bytes.len() <= 16 * 1024, "{} bytes of error for {w:?}", bytes.len());
        }
        Ok(())
    });
    rt.block_on(async {
        assert_eq!(app.get("/healthz").await.status(), 200, "still serving");
        app.stop().await;
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    // The cases reached past the front door: served, refused for the body, not found, denied.
    let seen = seen.into_inner().expect("seen");
    eprintln!("statuses: {seen:?}");
    for wanted in [200, 400, 401, 404, 422] {
        assert!(seen.contains_key(&wanted), "no {wanted} among {seen:?}");
    }
}
