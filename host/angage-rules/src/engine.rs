//! The sandboxed rhai engine and what a rule sees: `fn rule(request, key, limits)` returns the
//! limits (and `cost`) to apply to this request.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use angage_core::key::Grants;
use angage_core::limits::{Limits, WINDOWS};
use rhai::{AST, Dynamic, Engine, ImmutableString, Map, Position, Scope};
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

/// What a rule reads and returns (`limits` in a script): the limits to charge against (`None`
/// is "not limited") and what this request costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Allowance {
    #[serde(flatten)]
    pub limits: Limits,
    /// Units this request costs against every window.
    pub cost: u64,
}

impl Allowance {
    /// `limits` at the usual cost of one unit.
    pub fn new(limits: Limits) -> Self {
        Self { limits, cost: 1 }
    }

    /// These limits, never looser than `bound`: each window at most its bound's (an unlimited
    /// bound allows any), the cost at least its bound's.
    pub fn within(self, bound: &Allowance) -> Allowance {
        let min = |v: Option<u64>, b: Option<u64>| match (v, b) {
            (Some(v), Some(b)) => Some(v.min(b)),
            (v, None) => v,
            (None, b) => b,
        };
        let (l, b) = (self.limits, bound.limits);
        Allowance {
            limits: Limits {
                per_second: min(l.per_second, b.per_second),
                per_minute: min(l.per_minute, b.per_minute),
                per_hour: min(l.per_hour, b.per_hour),
                per_day: min(l.per_day, b.per_day),
                burst: min(l.burst, b.burst),
            },
            cost: self.cost.max(bound.cost),
        }
    }
}

/// The request as a rule sees it (`request` in a script).
#[derive(Debug, Clone)]
pub struct RuleRequest {
    pub method: ImmutableString,
    pub route: ImmutableString,
    pub path: ImmutableString,
    pub module: ImmutableString,
    pub operation: ImmutableString,
    pub time_ms: i64,
    /// IANA zone the `time` fields are in.
    pub timezone: ImmutableString,
}

/// The key as a rule sees it (`key` in a script).
#[derive(Debug, Clone)]
pub struct RuleKey {
    pub id: ImmutableString,
    pub name: ImmutableString,
    pub environment: ImmutableString,
    /// Module -> access, the key record's own map (read only when a rule asks).
    pub grants: Arc<Grants>,
}

/// Calendar facts in the tenant's zone (`request.time` in a script).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    /// 1 = Monday ... 7 = Sunday.
    pub weekday: i64,
    pub days_in_month: i64,
    /// Unix seconds.
    pub timestamp: i64,
    pub zone: ImmutableString,
}

impl Calendar {
    fn is_business_hours(&self) -> bool {
        (1..=5).contains(&self.weekday) && (9..17).contains(&self.hour)
    }
}

/// What a script receives as `request` and `key`: shared, so the default rule and the tenant's
/// rule read one copy, and fields are handed out without copying strings.
#[derive(Clone)]
struct ScriptRequest(Arc<RuleRequest>);
#[derive(Clone)]
struct ScriptKey(Arc<RuleKey>);

/// `limits` in a script: each field is whatever the script stored, checked when it returns.
#[derive(Clone)]
struct ScriptLimits {
    windows: [Dynamic; 5],
    cost: Dynamic,
}

impl ScriptLimits {
    fn new(a: &Allowance) -> Self {
        let opt =
            |v: Option<u64>| v.map_or(Dynamic::UNIT, |n| Dynamic::from(i64::try_from(n).unwrap_or(i64::MAX)));
        let l = &a.limits;
        Self {
            windows: [opt(l.per_second), opt(l.per_minute), opt(l.per_hour), opt(l.per_day), opt(l.burst)],
            cost: Dynamic::from(i64::try_from(a.cost).unwrap_or(1)),
        }
    }
}

/// A sandboxed engine: no file, network or process access (rhai has none without packages that
/// add them), no `eval`, and limits on operations, call depth, expression depth and sizes.
/// `request`, `key`, `limits` and `request.time` are registered types with fields, so a call
/// builds no maps.
pub fn sandbox() -> Engine {
    sandbox_with_budget(Duration::from_millis(2))
}

/// [`sandbox`] where a rule's run is stopped once it has taken `budget`.
pub fn sandbox_with_budget(budget: Duration) -> Engine {
    let mut engine = Engine::new();
    // Checked every 256 operations: reading the clock on each would cost more than the rule.
    engine.on_progress(move |operations| {
        let over = operations % 256 == 0
            && RUN_STARTED.with(|s| s.get()).is_some_and(|started| started.elapsed() > budget);
        over.then(|| Dynamic::from("the rule ran past its time budget"))
    });
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
    register_request(&mut engine);
    register_limits(&mut engine);
    engine.register_fn("is_business_hours", |t: &mut Calendar| t.is_business_hours());
    engine.register_fn("is_weekend", |t: &mut Calendar| t.weekday >= 6);
    engine.register_fn("days_left_in_month", |t: &mut Calendar| t.days_in_month - t.day);
    engine.register_fn("min", |a: i64, b: i64| a.min(b));
    engine.register_fn("max", |a: i64, b: i64| a.max(b));
    engine
}

fn register_request(engine: &mut Engine) {
    engine
        .register_type_with_name::<ScriptRequest>("Request")
        .register_get("method", |r: &mut ScriptRequest| r.0.method.clone())
        .register_get("route", |r: &mut ScriptRequest| r.0.route.clone())
        .register_get("path", |r: &mut ScriptRequest| r.0.path.clone())
        // `module` is a reserved word in rhai: rules see the module as `resource`.
        .register_get("resource", |r: &mut ScriptRequest| r.0.module.clone())
        .register_get("operation", |r: &mut ScriptRequest| r.0.operation.clone())
        .register_get("time", |r: &mut ScriptRequest| cached_calendar(r.0.time_ms, &r.0.timezone));
    engine
        .register_type_with_name::<ScriptKey>("Key")
        .register_get("id", |k: &mut ScriptKey| k.0.id.clone())
        .register_get("name", |k: &mut ScriptKey| k.0.name.clone())
        .register_get("environment", |k: &mut ScriptKey| k.0.environment.clone())
        .register_get("grants", |k: &mut ScriptKey| -> Map {
            k.0.grants
                .iter()
                .map(|(module, access)| (module.as_str().into(), access.as_str().into()))
                .collect()
        });
    engine
        .register_type_with_name::<Calendar>("Time")
        .register_get("year", |t: &mut Calendar| t.year)
        .register_get("month", |t: &mut Calendar| t.month)
        .register_get("day", |t: &mut Calendar| t.day)
        .register_get("hour", |t: &mut Calendar| t.hour)
        .register_get("minute", |t: &mut Calendar| t.minute)
        .register_get("weekday", |t: &mut Calendar| t.weekday)
        .register_get("days_in_month", |t: &mut Calendar| t.days_in_month)
        .register_get("timestamp", |t: &mut Calendar| t.timestamp)
        .register_get("zone", |t: &mut Calendar| t.zone.clone());
}

fn register_limits(engine: &mut Engine) {
    engine.register_type_with_name::<ScriptLimits>("Limits");
    // Setters for an integer and for `()` resolve at once; the `Dynamic` one takes anything
    // else, for `run` to refuse with a message naming the field.
    macro_rules! window {
        ($name:literal, $i:literal) => {
            engine
                .register_get($name, |l: &mut ScriptLimits| l.windows[$i].clone())
                .register_set($name, |l: &mut ScriptLimits, v: i64| l.windows[$i] = Dynamic::from(v))
                .register_set($name, |l: &mut ScriptLimits, _: ()| l.windows[$i] = Dynamic::UNIT)
                .register_set($name, |l: &mut ScriptLimits, v: Dynamic| l.windows[$i] = v);
        };
    }
    window!("per_second", 0);
    window!("per_minute", 1);
    window!("per_hour", 2);
    window!("per_day", 3);
    window!("burst", 4);
    engine
        .register_get("cost", |l: &mut ScriptLimits| l.cost.clone())
        .register_set("cost", |l: &mut ScriptLimits, v: i64| l.cost = Dynamic::from(v))
        .register_set("cost", |l: &mut ScriptLimits, v: Dynamic| l.cost = v);
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

/// One request's `request` and `key`, made once and given to every rule that runs.
#[derive(Clone)]
pub struct Inputs {
    request: Dynamic,
    key: Dynamic,
}

impl Inputs {
    pub fn new(request: RuleRequest, key: RuleKey) -> Self {
        Self {
            request: Dynamic::from(ScriptRequest(Arc::new(request))),
            key: Dynamic::from(ScriptKey(Arc::new(key))),
        }
    }
}

thread_local! {
    /// When the rule running on this thread started, for the time budget.
    static RUN_STARTED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs a rule; any failure (a limit exceeded, a runtime error, a bad return value) is an error.
pub fn run(engine: &Engine, ast: &AST, inputs: &Inputs, limits: Allowance) -> Result<Allowance, ScriptError> {
    let mut scope = Scope::new();
    // Rule files hold only functions: skip re-running the top level on every request.
    let options = rhai::CallFnOptions::new().eval_ast(false).rewind_scope(false);
    RUN_STARTED.with(|s| s.set(Some(Instant::now())));
    let out = engine.call_fn_with_options::<Dynamic>(
        options,
        &mut scope,
        ast,
        "rule",
        (inputs.request.clone(), inputs.key.clone(), Dynamic::from(ScriptLimits::new(&limits))),
    );
    RUN_STARTED.with(|s| s.set(None));
    let out = out.map_err(|e| error_at(e.to_string(), e.position()))?;
    if out.is::<ScriptLimits>() {
        let l = out.cast::<ScriptLimits>();
        return read_limits(|field| match field {
            "cost" => Some(l.cost.clone()),
            _ => WINDOWS.iter().position(|w| *w == field).map(|i| l.windows[i].clone()),
        });
    }
    // A rule may also return a map of its own with the same fields.
    let map = out.try_cast::<Map>().ok_or_else(|| ScriptError {
        message: "`rule` must return the limits".into(),
        line: None,
        column: None,
    })?;
    read_limits(|field| map.get(field).cloned())
}

/// Checks what a rule returned: windows are positive integers or `()`, cost is 0 to 1000.
fn read_limits(field: impl Fn(&str) -> Option<Dynamic>) -> Result<Allowance, ScriptError> {
    let bad = |name: &str| ScriptError {
        message: format!("`limits.{name}` must be a positive integer or ()"),
        line: None,
        column: None,
    };
    let window = |name: &str| -> Result<Option<u64>, ScriptError> {
        match field(name) {
            None => Ok(None),
            Some(v) if v.is_unit() => Ok(None),
            Some(v) => v
                .as_int()
                .ok()
                .filter(|n| *n >= 1)
                .and_then(|n| u64::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| bad(name)),
        }
    };
    let cost = match field("cost") {
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
    let limits = Limits {
        per_second: window(WINDOWS[0])?,
        per_minute: window(WINDOWS[1])?,
        per_hour: window(WINDOWS[2])?,
        per_day: window(WINDOWS[3])?,
        burst: window(WINDOWS[4])?,
    };
    Ok(Allowance { limits, cost })
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

/// The calendar changes once a second at most: keep the last one per thread and zone.
fn cached_calendar(ms: i64, zone: &ImmutableString) -> Calendar {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(i64, Calendar)>> = const { std::cell::RefCell::new(None) };
    }
    let second = ms.div_euclid(1000);
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((s, c)) = last.as_ref()
            && *s == second
            && c.zone == *zone
        {
            return c.clone();
        }
        let c = calendar(ms, zone);
        *last = Some((second, c.clone()));
        c
    })
}

/// Calendar facts in the tenant's zone (UTC when the zone is unknown).
pub fn calendar(ms: i64, zone: &str) -> Calendar {
    let tz = zone_by_name(zone);
    let ts = jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let z = ts.to_zoned(tz);
    Calendar {
        year: i64::from(z.year()),
        month: i64::from(z.month()),
        day: i64::from(z.day()),
        hour: i64::from(z.hour()),
        minute: i64::from(z.minute()),
        weekday: i64::from(z.weekday().to_monday_one_offset()),
        days_in_month: i64::from(z.days_in_month()),
        timestamp: ms.div_euclid(1000),
        zone: zone.into(),
    }
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
        RuleKey {
            id: "key_1".into(),
            name: "Analytics".into(),
            environment: env.into(),
            grants: Default::default(),
        }
    }

    fn inputs(method: &str, route: &str, env: &str) -> Inputs {
        Inputs::new(req(method, route), key(env))
    }

    fn base() -> Allowance {
        crate::sample_limits()
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
        let out = run(&e, &ast, &inputs("POST", "/v1/orders", "test"), base()).expect("runs");
        assert_eq!((out.cost, out.limits.per_second, out.limits.per_minute), (2, Some(5), Some(100)));
        let out = run(&e, &ast, &inputs("GET", "/v1/orders", "live"), base()).expect("runs");
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
        assert!(run(&e, &forever, &inputs("GET", "/v1/x", "live"), base()).is_err());
        let hog = compile(&e, "fn rule(request, key, limits) { let s = \"x\"; loop { s += s; } limits }")
            .expect("compiles");
        assert!(run(&e, &hog, &inputs("GET", "/v1/x", "live"), base()).is_err());
        let bad = compile(&e, "fn rule(request, key, limits) { limits.per_minute = -1; limits }")
            .expect("compiles");
        assert!(run(&e, &bad, &inputs("GET", "/v1/x", "live"), base()).is_err());
        assert!(compile(&e, "fn rule(request, key, limits) { eval(\"1\"); limits }").is_err());
    }

    #[test]
    fn every_documented_field_reads_and_a_map_may_be_returned() {
        let e = sandbox();
        let ast = compile(
            &e,
            r#"fn rule(request, key, limits) {
            let t = request.time;
            let seen = [request.method, request.route, request.path, request.resource, request.operation,
                        key.id, key.name, key.environment, key.grants["orders"], t.zone];
            let n = t.year + t.month + t.day + t.hour + t.minute + t.weekday + t.days_in_month + t.timestamp;
            if seen.len() == 10 && n > 0 && !is_weekend(t) && days_left_in_month(t) == 12 && is_business_hours(t) {
                #{ per_minute: limits.per_minute * 2, cost: limits.cost + 1 }
            } else {
                limits
            }
        }"#,
        )
        .expect("compiles");
        let mut k = key("live");
        Arc::make_mut(&mut k.grants).insert("orders".into(), angage_core::key::Access::Read);
        let out = run(&e, &ast, &Inputs::new(req("GET", "/v1/orders"), k), base()).expect("runs");
        assert_eq!(out, Allowance { limits: Limits { per_minute: Some(200), ..Limits::default() }, cost: 2 });
        let stringly = compile(&e, r#"fn rule(request, key, limits) { limits.burst = "many"; limits }"#)
            .expect("compiles");
        let err = run(&e, &stringly, &inputs("GET", "/v1/x", "live"), base()).expect_err("not an integer");
        assert!(err.message.contains("limits.burst"), "{}", err.message);
    }

    #[test]
    fn time_is_in_the_tenants_zone() {
        // 2026-11-18T11:06:40Z is 12:06 in Berlin, a Wednesday.
        let t = calendar(1_795_000_000_000, "Europe/Berlin");
        assert_eq!((t.hour, t.weekday, t.days_in_month), (12, 3, 30));
        let utc = calendar(1_795_000_000_000, "Nowhere/Unknown");
        assert_eq!(utc.hour, 11);
    }
}
