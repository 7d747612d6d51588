//! Layered configuration: built-in defaults < `config/default.toml` < `config/<profile>.toml`
//! < `--config FILE` < `ANGAGE_*` environment < command-line flags.
//!
//! Every key is declared once, in [`Settings`]; `config/default.toml` documents the same keys and
//! a unit test keeps the two equal.

mod origin;
mod show;

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

pub use origin::describe_origin;
pub use show::render as render_show;

/// Name of the built-in defaults layer, as shown by `angage config show`.
pub const BUILTIN: &str = "built-in default";
/// Name of the production profile's own defaults, under every file.
pub const PRODUCTION_DEFAULT: &str = "production default";
/// Name of the command-line flags layer.
pub const FLAGS: &str = "command-line flag";

/// The effective configuration of one process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub data: DataSettings,
    pub plugins: PluginSettings,
    pub policies: PolicySettings,
    pub keys: KeySettings,
    pub tenants: TenantCacheSettings,
    pub admin: AdminSettings,
    pub usage: UsageSettings,
    pub webhooks: WebhookSettings,
    pub log: LogSettings,
    /// The profile these settings were loaded for (not a configuration key).
    #[serde(skip)]
    pub profile: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address the HTTP server binds; port 0 picks a free port.
    pub addr: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// How long graceful shutdown waits for requests in flight, in seconds.
    pub shutdown_grace_seconds: u64,
    /// Seconds a client has to send a request's headers, counted from when the connection
    /// opened or the previous response ended: a connection that sends nothing for this long (a
    /// half-sent request or an idle keep-alive) is closed.
    pub header_timeout_seconds: u64,
    /// Seconds a request may take from its headers to its response, body upload included;
    /// beyond it the client gets 408 and the connection is closed.
    pub request_timeout_seconds: u64,
    /// Most open client connections. 0: the open-file limit less a reserve for the database,
    /// plugins and logs. At the cap the longest-idle connection is closed to admit a new one;
    /// when none is idle the new one is answered 503 and closed.
    pub max_connections: usize,
    /// Most requests being answered at once; beyond it a request gets 503 with `Retry-After`
    /// at once, before any queue grows.
    pub max_in_flight: usize,
    /// Proxies (CIDR blocks) whose `X-Forwarded-For` and `X-Forwarded-Proto` the host believes,
    /// for the client address it throttles and limits by and for HTTPS (HSTS). The API-key
    /// plugin has its own list (`plugins.config.apikey-auth.trusted_proxies`).
    pub trusted_proxies: Vec<String>,
    /// Requests a minute one client address may make without a valid API key (missing,
    /// malformed or unknown); beyond it they get 429 before any policy stage runs.
    pub unauthenticated_per_minute: u64,
    /// Empty: `/metrics` answers clients on loopback addresses only. Set: it answers requests
    /// that present it as `Authorization: Bearer <token>`, from anywhere.
    pub metrics_token: String,
    /// Empty: the operator endpoints (`/admin/v1/operator/...`, cluster-wide plugins) are off.
    /// Set: they answer requests that present it as `Authorization: Bearer <token>`.
    pub operator_token: String,
    pub tls: TlsSettings,
}

/// HTTPS served by the server itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain (leaf first). Empty, with `key_file` empty: no TLS.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the certificate.
    pub key_file: String,
}

impl TlsSettings {
    pub fn enabled(&self) -> bool {
        !self.cert_file.is_empty() || !self.key_file.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` (embedded, created on first start) or `postgres://...`.
    pub url: String,
    pub max_connections: u32,
    /// Milliseconds a request waits for a pooled connection before it is answered 503: well
    /// under a second, so an outage is reported at once instead of holding every request.
    pub acquire_timeout_ms: u64,
    /// Consecutive failures to reach the database after which requests are refused at once
    /// (503 with `Retry-After`) for `circuit_open_ms`, when one is let through to probe.
    pub circuit_failures: u32,
    pub circuit_open_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// Empty: counters and login throttling live in process. Otherwise a `redis://` URL shared
    /// by all nodes.
    pub url: String,
    /// What requests get while Redis cannot be reached: `local` (each node counts on its own,
    /// said once per outage in a warning and in `angage_redis_fallbacks_total`), `open`
    /// (not counted), `closed` (503).
    pub failure: RedisFailure,
    /// Longest wait for one round trip, in milliseconds; past it the round trip has failed.
    pub timeout_ms: u64,
    /// Prefix of every key this deployment writes (several deployments may share one Redis).
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RedisFailure {
    Local,
    Open,
    Closed,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    /// Directory for files the server owns (the embedded database, the development pepper).
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginSettings {
    /// Directory watched for `.wasm` files that override the built-in plugins.
    pub dir: PathBuf,
    /// Where compiled plugins are cached across restarts; empty: `<data.dir>/plugin-cache`.
    pub cache_dir: PathBuf,
    /// Longest a single plugin call may run, in milliseconds of its own running time (a loop is
    /// stopped within about twice this; see `plugins/deadline.rs`).
    pub deadline_ms: u64,
    /// Memory cap per plugin instance, in MiB.
    pub memory_limit_mib: u64,
    /// Warm instances per plugin; calls beyond that wait up to `queue_timeout_ms`, then fail.
    pub max_instances: usize,
    pub queue_timeout_ms: u64,
    /// Lanes that run the request-path stages: each takes the requests queued to it in batches,
    /// stage by stage, on warm instances. 0: one lane per CPU.
    pub lanes: usize,
    /// What a failing rate-limit plugin means: `closed` (refuse with 503) or `open` (let through).
    pub rate_limit_failure: FailMode,
    /// Which plugin serves each stage: a built-in name or `<plugins.dir>/<name>.wasm`.
    pub stages: StagePlugins,
    /// Each plugin's configuration, handed to it as JSON, keyed by plugin name.
    pub config: std::collections::BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    Closed,
    Open,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StagePlugins {
    pub authenticate: String,
    pub authorize: String,
    pub rate_limit: String,
    pub enrich_usage: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Directory holding `default.rhai` and `tenants/<tenant>.rhai`.
    pub dir: PathBuf,
    /// Longest one rule may run for one request, in microseconds; a rule past it is stopped
    /// like a failing one, so one tenant's heavy rule cannot slow its lane's other tenants.
    pub rule_budget_us: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// Server pepper for the HMAC-SHA256 key digests. Empty in development: one is generated
    /// once and kept in `data.dir`. Required in production.
    pub pepper: String,
    /// How long a looked-up key is served from memory before the store is asked again; changes
    /// made through this server apply at once, changes from other processes within this time.
    pub cache_ttl_seconds: u64,
    /// How often aggregated last-used times are written to the store.
    pub last_used_flush_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantCacheSettings {
    /// How long a tenant's settings are served from memory on the request path; changes made
    /// through this server apply at once, changes from other processes within this time.
    pub cache_ttl_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UsageSettings {
    /// Usage events buffered in memory before they are written; when full, events are dropped
    /// and counted (`angage_usage_dropped_total`).
    pub buffer_size: usize,
    /// Days raw usage events are kept (recent errors, drill-down); rollups are kept longer.
    pub raw_retention_days: u64,
    /// Days per-minute rollups are kept; daily rollups are kept `daily_retention_days`.
    pub minute_retention_days: u64,
    pub daily_retention_days: u64,
    /// For tenants that do not log all requests: the share of successful requests (below 400)
    /// whose raw event is kept beside every error, from 0.0 (none) to 1.0 (all). The rollups
    /// count every request either way.
    pub success_sample_rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Accept `http://` endpoint URLs (development); otherwise only `https://`.
    pub allow_insecure_urls: bool,
    /// Deliver to loopback, private, link-local and metadata addresses (development and tests);
    /// otherwise such a target is refused, checked after DNS resolution.
    pub allow_private_targets: bool,
    /// Longest wait for a receiver's answer, in milliseconds; past it the attempt has failed.
    pub timeout_ms: u64,
    /// Deliveries this node sends at once.
    pub max_in_flight: usize,
    /// Deliveries this node sends at once to one endpoint, so a slow receiver holds only its own.
    pub max_in_flight_per_endpoint: usize,
    /// Days finished deliveries, their attempts and their events are kept.
    pub retention_days: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// argon2id memory cost in KiB for admin passwords.
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    pub argon2_iterations: u32,
    /// argon2id lanes.
    pub argon2_parallelism: u32,
    /// Console session lifetime in hours.
    pub session_ttl_hours: u64,
    /// Mark the session cookie `Secure` (serve the console over HTTPS).
    pub secure_cookies: bool,
    /// Failed logins per account within the window before each further attempt waits twice as
    /// long as the last (1 s, 2 s, 4 s ... up to the window); an account is never locked.
    pub login_max_failures_per_account: u32,
    /// Failed logins per client IP within the window before that IP is locked for the window.
    pub login_max_failures_per_ip: u32,
    /// The throttling window in minutes.
    pub login_window_minutes: u64,
    /// Password checks (argon2id, `argon2_memory_kib` each) run at once; a login beyond them is
    /// answered 429 at once instead of waiting with its memory.
    pub password_checks: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter directive such as `info` or `angage_policy=debug,info`.
    pub level: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerSettings {
                addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
                body_limit_bytes: 1024 * 1024,
                shutdown_grace_seconds: 30,
                header_timeout_seconds: 10,
                request_timeout_seconds: 30,
                max_connections: 0,
                max_in_flight: 4096,
                metrics_token: String::new(),
                operator_token: String::new(),
                trusted_proxies: Vec::new(),
                unauthenticated_per_minute: 120,
                tls: TlsSettings::default(),
            },
            database: DatabaseSettings {
                url: "sqlite://data/angage.db".into(),
                max_connections: 8,
                acquire_timeout_ms: 500,
                circuit_failures: 3,
                circuit_open_ms: 1000,
            },
            redis: RedisSettings {
                url: String::new(),
                failure: RedisFailure::Local,
                timeout_ms: 20,
                prefix: "angage:".into(),
            },
            data: DataSettings { dir: "data".into() },
            plugins: PluginSettings {
                dir: "plugins.d".into(),
                cache_dir: PathBuf::new(),
                deadline_ms: 10,
                memory_limit_mib: 32,
                max_instances: 16,
                queue_timeout_ms: 100,
                lanes: 0,
                rate_limit_failure: FailMode::Closed,
                stages: StagePlugins {
                    authenticate: "apikey-auth".into(),
                    authorize: "module-scopes".into(),
                    rate_limit: "rate-limit".into(),
                    enrich_usage: "usage-enrich".into(),
                },
                config: std::collections::BTreeMap::from([(
                    "apikey-auth".to_owned(),
                    serde_json::json!({"trusted_proxies": [], "environments": ["live", "test"]}),
                )]),
            },
            policies: PolicySettings { dir: "policies".into(), rule_budget_us: 2000 },
            keys: KeySettings { pepper: String::new(), cache_ttl_seconds: 30, last_used_flush_seconds: 30 },
            tenants: TenantCacheSettings { cache_ttl_seconds: 30 },
            admin: AdminSettings {
                argon2_memory_kib: 19456,
                argon2_iterations: 2,
                argon2_parallelism: 1,
                session_ttl_hours: 12,
                secure_cookies: false,
                login_max_failures_per_account: 5,
                login_max_failures_per_ip: 20,
                login_window_minutes: 15,
                password_checks: 2,
            },
            usage: UsageSettings {
                buffer_size: 65536,
                raw_retention_days: 30,
                success_sample_rate: 0.01,
                minute_retention_days: 7,
                daily_retention_days: 400,
            },
            webhooks: WebhookSettings {
                allow_insecure_urls: false,
                allow_private_targets: false,
                timeout_ms: 10_000,
                max_in_flight: 64,
                max_in_flight_per_endpoint: 4,
                retention_days: 30,
            },
            log: LogSettings { format: LogFormat::Pretty, level: "info".into() },
            profile: String::new(),
        }
    }
}

/// Where to look for the layers; the command line fills it.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Directory of `default.toml` and `<profile>.toml`; `config` when absent.
    pub config_dir: Option<PathBuf>,
    /// Profile name; `ANGAGE_PROFILE` or `development` when absent.
    pub profile: Option<String>,
    /// The `--config FILE` layer.
    pub config_file: Option<PathBuf>,
    /// Flag values keyed by their dotted configuration key.
    pub flags: Vec<(&'static str, Value)>,
}

/// A configuration that failed to load: one line naming the key and the layer.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("unknown configuration key `{key}` (from {origin})")]
    UnknownKey { key: String, origin: String },
    #[error("invalid configuration key `{key}` (from {origin}): {reason}")]
    Invalid { key: String, origin: String, reason: String },
    #[error("configuration error: {0}")]
    Other(String),
}

/// The loaded configuration together with the figment that explains where each value came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    pub profile: String,
    pub figment: Figment,
}

impl Sources {
    /// Builds the layered figment without extracting it.
    pub fn figment(&self) -> Result<(Figment, String), ConfigError> {
        let profile = self
            .profile
            .clone()
            .or_else(|| std::env::var("ANGAGE_PROFILE").ok())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "development".into());
        let dir = self.config_dir.clone().unwrap_or_else(|| PathBuf::from("config"));
        let mut figment = Figment::new().merge(Named(Serialized::defaults(Settings::default()), BUILTIN));
        if profile == "production" {
            // Test keys are for development servers: a production server takes live keys only,
            // whether or not a configuration folder ships with it.
            let live_only =
                figment::util::nest("plugins.config.apikey-auth.environments", Value::from(vec!["live"]));
            figment = figment.merge(Named(Serialized::defaults(live_only), PRODUCTION_DEFAULT));
        }
        // The shipped files are optional: the binary runs with no config folder at all.
        for file in [dir.join("default.toml"), dir.join(format!("{profile}.toml"))] {
            if file.is_file() {
                figment = figment.merge(Toml::file_exact(file));
            }
        }
        if let Some(file) = &self.config_file {
            if !file.is_file() {
                return Err(ConfigError::MissingFile(file.clone()));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(env_provider());
        let mut flags = Dict::new();
        for (key, value) in &self.flags {
            flags = figment::util::nest(key, value.clone())
                .into_dict()
                .map(|d| merge_dicts(flags.clone(), d))
                .unwrap_or(flags);
        }
        figment = figment.merge(Named(Serialized::defaults(flags), FLAGS));
        Ok((figment, profile))
    }

    /// Loads and validates the configuration.
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        let (figment, profile) = self.figment()?;
        check_unknown_keys(&figment)?;
        let mut settings: Settings = figment.extract().map_err(|e| from_figment(&figment, e))?;
        settings.profile = profile.clone();
        validate(&settings, &figment)?;
        Ok(Loaded { settings, profile, figment })
    }
}

/// `ANGAGE_SERVER__ADDR` becomes `server.addr`. Variables that select the layers themselves or
/// belong to the test harness are not configuration keys.
fn env_provider() -> Env {
    Env::prefixed("ANGAGE_").split("__").filter(|key| {
        let key = key.as_str().to_ascii_lowercase();
        key != "profile" && key != "config_dir" && !key.starts_with("test_")
    })
}

fn merge_dicts(mut base: Dict, other: Dict) -> Dict {
    for (k, v) in other {
        let merged = match (base.remove(&k), v) {
            (Some(Value::Dict(_, a)), Value::Dict(tag, b)) => Value::Dict(tag, merge_dicts(a, b)),
            (_, v) => v,
        };
        base.insert(k, merged);
    }
    base
}

/// Every dotted key the configuration knows.
pub fn known_keys() -> Vec<String> {
    let value = Value::serialize(Settings::default()).unwrap_or(Value::from(Dict::new()));
    let mut keys = Vec::new();
    flatten("", &value, &mut |k, _| keys.push(k.to_owned()));
    keys
}

fn flatten(prefix: &str, value: &Value, out: &mut dyn FnMut(&str, &Value)) {
    match value {
        Value::Dict(_, dict) => {
            for (k, v) in dict {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        _ => out(prefix, value),
    }
}

fn check_unknown_keys(figment: &Figment) -> Result<(), ConfigError> {
    let known = known_keys();
    let merged = figment.data().map_err(|e| from_figment(figment, e))?;
    let dict = merged.get(&Profile::Default).cloned().unwrap_or_default();
    let mut unknown = None;
    flatten("", &Value::from(dict), &mut |key, _| {
        // Plugin configuration is free-form: each plugin defines its own keys.
        let is_known = known.iter().any(|k| k == key) || key.starts_with("plugins.config.");
        if !is_known && unknown.is_none() {
            unknown = Some(key.to_owned());
        }
    });
    match unknown {
        Some(key) => Err(ConfigError::UnknownKey { origin: describe_origin(figment, &key), key }),
        None => Ok(()),
    }
}

fn from_figment(figment: &Figment, err: figment::Error) -> ConfigError {
    let key = err.path.join(".");
    if key.is_empty() {
        return ConfigError::Other(err.to_string());
    }
    ConfigError::Invalid { origin: describe_origin(figment, &key), reason: err.kind.to_string(), key }
}

fn validate(settings: &Settings, figment: &Figment) -> Result<(), ConfigError> {
    let invalid = |key: &str, reason: String| ConfigError::Invalid {
        key: key.to_owned(),
        origin: describe_origin(figment, key),
        reason,
    };
    let tls = &settings.server.tls;
    if tls.enabled() && (tls.cert_file.is_empty() || tls.key_file.is_empty()) {
        let missing = if tls.cert_file.is_empty() { "server.tls.cert_file" } else { "server.tls.key_file" };
        return Err(invalid(missing, "TLS needs both a certificate and its key".into()));
    }
    if !(0.0..=1.0).contains(&settings.usage.success_sample_rate) {
        return Err(invalid("usage.success_sample_rate", "must be from 0.0 to 1.0".into()));
    }
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&settings.log.level) {
        return Err(invalid("log.level", e.to_string()));
    }
    let url = &settings.database.url;
    if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(invalid("database.url", "expected a sqlite: or postgres:// URL".into()));
    }
    let redis = &settings.redis.url;
    if !(redis.is_empty() || redis.starts_with("redis://") || redis.starts_with("rediss://")) {
        return Err(invalid("redis.url", "expected empty or a redis:// URL".into()));
    }
    if settings.admin.argon2_memory_kib < 8 * settings.admin.argon2_parallelism.max(1) {
        return Err(invalid("admin.argon2_memory_kib", "must be at least 8 KiB per lane".into()));
    }
    if settings.admin.password_checks == 0 {
        return Err(invalid("admin.password_checks", "must be at least 1".into()));
    }
    if settings.admin.argon2_iterations == 0 || settings.admin.argon2_parallelism == 0 {
        return Err(invalid(
            "admin.argon2_iterations",
            "iterations and parallelism must be at least 1".into(),
        ));
    }
    if !settings.keys.pepper.is_empty() && settings.keys.pepper.len() < 32 {
        return Err(invalid("keys.pepper", "must be at least 32 characters".into()));
    }
    if !settings.server.operator_token.is_empty() && settings.server.operator_token.len() < 24 {
        return Err(invalid("server.operator_token", "must be at least 24 characters".into()));
    }
    if settings.plugins.deadline_ms == 0
        || settings.plugins.max_instances == 0
        || settings.plugins.memory_limit_mib == 0
    {
        return Err(invalid(
            "plugins.deadline_ms",
            "deadline, instances and memory limit must be at least 1".into(),
        ));
    }
    for (i, proxy) in settings.server.trusted_proxies.iter().enumerate() {
        if let Err(e) = angage_plugin_sdk::cidr::Cidr::parse(proxy) {
            return Err(invalid(&format!("server.trusted_proxies[{i}]"), e.to_string()));
        }
    }
    if settings.server.header_timeout_seconds == 0 {
        return Err(invalid("server.header_timeout_seconds", "must be at least 1".into()));
    }
    if settings.server.request_timeout_seconds == 0 {
        return Err(invalid("server.request_timeout_seconds", "must be at least 1".into()));
    }
    if settings.server.max_in_flight == 0 {
        return Err(invalid("server.max_in_flight", "must be at least 1".into()));
    }
    if settings.redis.timeout_ms == 0 {
        return Err(invalid("redis.timeout_ms", "must be at least 1".into()));
    }
    if settings.database.acquire_timeout_ms == 0 {
        return Err(invalid("database.acquire_timeout_ms", "must be at least 1".into()));
    }
    let w = &settings.webhooks;
    if w.timeout_ms == 0 || w.max_in_flight == 0 || w.max_in_flight_per_endpoint == 0 {
        return Err(invalid(
            "webhooks.timeout_ms",
            "timeout, max_in_flight and max_in_flight_per_endpoint must be at least 1".into(),
        ));
    }
    if settings.database.max_connections == 0 {
        return Err(invalid("database.max_connections", "must be at least 1".into()));
    }
    Ok(())
}

/// A provider with a fixed, human name, so `config show` and errors can say where a value came from.
struct Named<P>(P, &'static str);

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.1)
    }

    fn data(&self) -> figment::Result<figment::value::Map<Profile, Dict>> {
        self.0.data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_default_toml_equals_builtin_defaults() {
        let shipped = include_str!("../../../../config/default.toml");
        let parsed: Settings = Figment::from(Toml::string(shipped)).extract().expect("default.toml parses");
        assert_eq!(parsed, Settings::default());
    }

    #[test]
    fn every_known_key_is_documented_in_default_toml() {
        let shipped = include_str!("../../../../config/default.toml");
        for key in known_keys() {
            let leaf = key.rsplit('.').next().unwrap_or(&key);
            assert!(shipped.contains(&format!("{leaf} =")), "{key} is not in config/default.toml");
        }
    }
}
