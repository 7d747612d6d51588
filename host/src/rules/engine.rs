//! The sandboxed rhai engine and what a rule sees: `fn rule(request, key, limits)` returns the
//! limits (and `cost`) to apply to this request.

use rhai::{AST, Dynamic, Engine, Map, Position, Scope};
use serde::Serialize;

/// A compile or run failure, with where it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ScriptError {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{} (line {l}, column {c})", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

fn error_at(message: String, pos: Position) -> ScriptError {
    ScriptError { message, line: pos.line(), column: pos.position() }
}

/// The limits a rule reads and returns; `None` is "not limited".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct RuleLimits {
    pub per_second: Option<u64>,
    pub per_minute: Option<u64>,
    pub per_hour: Option<u64>,
    pub per_day: Option<u64>,
    pub burst: Option<u64>,
    /// Units this request costs against every window.
    pub cost: u64,
}

/// The request as a rule sees it.
#[derive(Debug, Clone)]
pub struct RuleRequest {
    pub method: String,
    pub route: String,
    pub path: String,
    pub module: String,
    pub operation: String,
    pub time_ms: i64,
    /// IANA zone the `time` fields are in.
    pub timezone: String,
}

/// The key as a rule sees it.
#[derive(Debug, Clone)]
pub struct RuleKey {
    pub id: String,
    pub name: String,
    pub environment: String,
    pub grants: Vec<(String, String)>,
}

/// A sandboxed engine: no file, network or process access (rhai has none without packages that
/// add them), no `eval`, and limits on operations, call depth, expression depth and sizes.
pub fn sandbox() -> Engine {
    let mut engine = Engine::new();
    engine.set_max_operations(50_000);
    engine.set_max_call_levels(16);
    engine.set_max_expr_depths(64, 32);
    engine.set_max_string_size(4_096);
    engine.set_max_array_size(1_000);
    engine.set_max_map_size(200);
    engine.set_max_functions(64);
    engine.set_max_variables(256);
    engine.disable_symbol("eval");
    engine.on_print(|_| {});
    engine.on_debug(|_, _, _| {});
    engine.register_fn("is_business_hours", |t: Map| {
        let wd = int(&t, "weekday");
        let h = int(&t, "hour");
        (1..=5).contains(&wd) && (9..17).contains(&h)
    });
    engine.register_fn("is_weekend", |t: Map| int(&t, "weekday") >= 6);
    engine.register_fn("days_left_in_month", |t: Map| int(&t, "days_in_month") - int(&t, "day"));
    engine.register_fn("min", |a: i64, b: i64| a.min(b));
    engine.register_fn("max", |a: i64, b: i64| a.max(b));
    engine
}

fn int(map: &Map, key: &str) -> i64 {
    map.get(key).and_then(|v| v.as_int().ok()).unwrap_or(0)
}

/// Compiles a script and checks it defines `fn rule(request, key, limits)`.
pub fn compile(engine: &Engine, text: &str) -> Result<AST, ScriptError> {
    let ast = engine.compile(text).map_err(|e| error_at(e.err_type().to_string(), e.position()))?;
    if !ast.iter_functions().any(|f| f.name == "rule" && f.params.len() == 3) {
        return Err(ScriptError {
            message: "the script must define `fn rule(request, key, limits)`".into(),
            line: None,
            column: None,
        });
    }
    Ok(ast)
}

/// Runs a rule; any failure (a limit exceeded, a runtime error, a bad return value) is an error.
pub fn run(
    engine: &Engine,
    ast: &AST,
    request: &RuleRequest,
    key: &RuleKey,
    limits: RuleLimits,
) -> Result<RuleLimits, ScriptError> {
    let mut scope = Scope::new();
    // Rule files hold only functions: skip re-running the top level on every request.
    let options = rhai::CallFnOptions::new().eval_ast(false).rewind_scope(false);
    let out: Dynamic = engine
        .call_fn_with_options(
            options,
            &mut scope,
            ast,
            "rule",
            (request_map(request), key_map(key), limits_map(&limits)),
        )
        .map_err(|e| error_at(e.to_string(), e.position()))?;
    let map = out.try_cast::<Map>().ok_or_else(|| ScriptError {
        message: "`rule` must return the limits map".into(),
        line: None,
        column: None,
    })?;
    read_limits(&map)
}

fn limits_map(l: &RuleLimits) -> Map {
    let mut m = Map::new();
    let opt =
        |v: Option<u64>| v.map_or(Dynamic::UNIT, |n| Dynamic::from(i64::try_from(n).unwrap_or(i64::MAX)));
    m.insert("per_second".into(), opt(l.per_second));
    m.insert("per_minute".into(), opt(l.per_minute));
    m.insert("per_hour".into(), opt(l.per_hour));
    m.insert("per_day".into(), opt(l.per_day));
    m.insert("burst".into(), opt(l.burst));
    m.insert("cost".into(), Dynamic::from(i64::try_from(l.cost).unwrap_or(1)));
    m
}

fn read_limits(m: &Map) -> Result<RuleLimits, ScriptError> {
    let bad = |field: &str| ScriptError {
        message: format!("`limits.{field}` must be a positive integer or ()"),
        line: None,
        column: None,
    };
    let window = |field: &str| -> Result<Option<u64>, ScriptError> {
        match m.get(field) {
            None => Ok(None),
            Some(v) if v.is_unit() => Ok(None),
            Some(v) => v
                .as_int()
                .ok()
                .filter(|n| *n >= 1)
                .and_then(|n| u64::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| bad(field)),
        }
    };
    let cost = match m.get("cost") {
        None => 1,
        Some(v) => v
            .as_int()
            .ok()
            .filter(|n| (0..=1_000).contains(n))
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| ScriptError {
                message: "`limits.cost` must be an integer from 0 to 1000".into(),
                line: None,
                column: None,
            })?,
    };
    Ok(RuleLimits {
        per_second: window("per_second")?,
        per_minute: window("per_minute")?,
        per_hour: window("per_hour")?,
        per_day: window("per_day")?,
        burst: window("burst")?,
        cost,
    })
}

fn request_map(r: &RuleRequest) -> Map {
    let mut m = Map::new();
    m.insert("method".into(), r.method.clone().into());
    m.insert("route".into(), r.route.clone().into());
    m.insert("path".into(), r.path.clone().into());
    // `module` is a reserved word in rhai: rules see the module as `resource`.
    m.insert("resource".into(), r.module.clone().into());
    m.insert("operation".into(), r.operation.clone().into());
    m.insert("time".into(), cached_time_map(r.time_ms, &r.timezone).into());
    m
}

fn key_map(k: &RuleKey) -> Map {
    let mut m = Map::new();
    m.insert("id".into(), k.id.clone().into());
    m.insert("name".into(), k.name.clone().into());
    m.insert("environment".into(), k.environment.clone().into());
    let grants: Map =
        k.grants.iter().map(|(module, access)| (module.as_str().into(), access.clone().into())).collect();
    m.insert("grants".into(), grants.into());
    m
}

/// A zone by name, looked up in the bundled database once per name and thread.
fn zone_by_name(zone: &str) -> jiff::tz::TimeZone {
    thread_local! {
        static ZONES: std::cell::RefCell<std::collections::HashMap<String, jiff::tz::TimeZone>> = Default::default();
    }
    ZONES.with(|z| {
        let mut zones = z.borrow_mut();
        if let Some(tz) = zones.get(zone) {
            return tz.clone();
        }
        let tz = jiff::tz::TimeZone::get(zone).unwrap_or(jiff::tz::TimeZone::UTC);
        if zones.len() < 1_000 {
            zones.insert(zone.to_owned(), tz.clone());
        }
        tz
    })
}

/// `time_map` changes once a second at most: keep the last one per thread and zone.
fn cached_time_map(ms: i64, zone: &str) -> Map {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(i64, String, Map)>> = const { std::cell::RefCell::new(None) };
    }
    let second = ms.div_euclid(1000);
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((s, z, m)) = last.as_ref()
            && *s == second
            && z == zone
        {
            return m.clone();
        }
        let m = time_map(ms, zone);
        *last = Some((second, zone.to_owned(), m.clone()));
        m
    })
}

/// Calendar facts in the tenant's zone (UTC when the zone is unknown).
pub fn time_map(ms: i64, zone: &str) -> Map {
    let tz = zone_by_name(zone);
    let ts = jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let z = ts.to_zoned(tz);
    let mut m = Map::new();
    m.insert("year".into(), Dynamic::from(i64::from(z.year())));
    m.insert("month".into(), Dynamic::from(i64::from(z.month())));
    m.insert("day".into(), Dynamic::from(i64::from(z.day())));
    m.insert("hour".into(), Dynamic::from(i64::from(z.hour())));
    m.insert("minute".into(), Dynamic::from(i64::from(z.minute())));
    m.insert("weekday".into(), Dynamic::from(i64::from(z.weekday().to_monday_one_offset())));
    m.insert("days_in_month".into(), Dynamic::from(i64::from(z.days_in_month())));
    m.insert("timestamp".into(), Dynamic::from(ms / 1000));
    m.insert("zone".into(), zone.into());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, route: &str) -> RuleRequest {
        RuleRequest {
            method: method.into(),
            route: route.into(),
            path: route.into(),
            module: route.split('/').nth(2).unwrap_or("").into(),
            operation: if method == "GET" { "read".into() } else { "write".into() },
            time_ms: 1_795_000_000_000,
            timezone: "Europe/Berlin".into(),
        }
    }

    fn key(env: &str) -> RuleKey {
        RuleKey { id: "key_1".into(), name: "Analytics".into(), environment: env.into(), grants: vec![] }
    }

    fn base() -> RuleLimits {
        RuleLimits {
            per_second: Some(10),
            per_minute: Some(100),
            per_hour: Some(2000),
            per_day: Some(20000),
            burst: Some(20),
            cost: 1,
        }
    }

    #[test]
    fn rules_change_limits_and_cost() {
        let e = sandbox();
        let ast = compile(
            &e,
            r#"fn rule(request, key, limits) {
            if request.method == "POST" && request.route == "/v1/orders" { limits.cost = 2; }
            if key.environment == "test" { limits.per_second = min(limits.per_second, 5); }
            limits
        }"#,
        )
        .expect("compiles");
        let out = run(&e, &ast, &req("POST", "/v1/orders"), &key("test"), base()).expect("runs");
        assert_eq!((out.cost, out.per_second, out.per_minute), (2, Some(5), Some(100)));
        let out = run(&e, &ast, &req("GET", "/v1/orders"), &key("live"), base()).expect("runs");
        assert_eq!(out, base());
    }

    #[test]
    fn syntax_errors_have_a_position_and_runaways_are_stopped() {
        let e = sandbox();
        let err =
            compile(&e, "fn rule(request, key, limits) {\n  let x = ;\n  limits\n}").expect_err("syntax");
        assert_eq!((err.line, err.column.is_some()), (Some(2), true));
        assert!(compile(&e, "let x = 1;").expect_err("no rule").message.contains("fn rule"));
        let forever = compile(&e, "fn rule(request, key, limits) { loop { } limits }").expect("compiles");
        assert!(run(&e, &forever, &req("GET", "/v1/x"), &key("live"), base()).is_err());
        let hog = compile(&e, "fn rule(request, key, limits) { let s = \"x\"; loop { s += s; } limits }")
            .expect("compiles");
        assert!(run(&e, &hog, &req("GET", "/v1/x"), &key("live"), base()).is_err());
        let bad = compile(&e, "fn rule(request, key, limits) { limits.per_minute = -1; limits }")
            .expect("compiles");
        assert!(run(&e, &bad, &req("GET", "/v1/x"), &key("live"), base()).is_err());
        assert!(compile(&e, "fn rule(request, key, limits) { eval(\"1\"); limits }").is_err());
    }

    #[test]
    fn time_is_in_the_tenants_zone() {
        // 2026-11-18T11:06:40Z is 12:06 in Berlin, a Wednesday.
        let t = time_map(1_795_000_000_000, "Europe/Berlin");
        assert_eq!(
            (t["hour"].as_int().ok(), t["weekday"].as_int().ok(), t["days_in_month"].as_int().ok()),
            (Some(12), Some(3), Some(30))
        );
        let utc = time_map(1_795_000_000_000, "Nowhere/Unknown");
        assert_eq!(utc["hour"].as_int().ok(), Some(11));
    }
}
