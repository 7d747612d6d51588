//! `angage config show`: every key, its effective value (secrets redacted) and its layer.

use std::fmt::Write;

use figment::value::Value;

use super::{Loaded, describe_origin, known_keys};

/// Keys whose values are secrets: never printed.
const SECRET_KEYS: &[&str] = &["keys.pepper", "server.metrics_token", "server.operator_token"];
/// Keys holding URLs that may embed a password.
const URL_KEYS: &[&str] = &["database.url", "redis.url"];

/// Renders the effective configuration as TOML-like lines annotated with their source.
pub fn render(loaded: &Loaded) -> String {
    let mut out = format!("# profile: {}\n", loaded.profile);
    let mut section = String::new();
    for key in known_keys() {
        let (sec, leaf) = key.split_once('.').unwrap_or(("", key.as_str()));
        if sec != section {
            let _ = writeln!(out, "\n[{sec}]");
            section = sec.to_owned();
        }
        let value = loaded.figment.find_value(&key).ok();
        let shown = match value {
            Some(v) if SECRET_KEYS.contains(&key.as_str()) => redact_secret(&v),
            Some(v) if URL_KEYS.contains(&key.as_str()) => quote(&redact_url(&as_text(&v))),
            Some(v) => render_value(&v),
            None => "(unset)".into(),
        };
        let _ = writeln!(out, "{leaf} = {shown}  # {}", describe_origin(&loaded.figment, &key));
    }
    out
}

fn redact_secret(v: &Value) -> String {
    if as_text(v).is_empty() { "\"\"".into() } else { "\"<redacted>\"".into() }
}

fn as_text(v: &Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_else(|| render_value(v))
}

fn render_value(v: &Value) -> String {
    match v {
        Value::String(_, s) => quote(s),
        Value::Num(_, n) => n
            .to_u128()
            .map(|n| n.to_string())
            .or_else(|| n.to_i128().map(|n| n.to_string()))
            .or_else(|| n.to_f64().map(|n| n.to_string()))
            .unwrap_or_default(),
        Value::Bool(_, b) => b.to_string(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// `postgres://user:secret@host/db` becomes `postgres://user:***@host/db`; a password in the
/// query (`?password=...`, `&sslpassword=...`) or in a `key=value` connection string is masked
/// too.
pub(super) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return redact_pairs(url, ' ') };
    let (rest, query) = rest.split_once('?').map_or((rest, None), |(r, q)| (r, Some(q)));
    let (authority, tail) = rest.split_once('/').map_or((rest, None), |(a, t)| (a, Some(t)));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = tail.map(|t| format!("/{t}")).unwrap_or_default();
    let query = query.map(|q| format!("?{}", redact_pairs(q, '&'))).unwrap_or_default();
    format!("{scheme}://{authority}{tail}{query}")
}

/// `key=value` pairs split by `sep`, with the value of any key naming a secret masked.
fn redact_pairs(text: &str, sep: char) -> String {
    let secret = |k: &str| {
        let k = k.trim().to_ascii_lowercase();
        ["password", "pass", "pwd", "secret", "token"].iter().any(|s| k.ends_with(s))
    };
    text.split(sep)
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if secret(k) => format!("{k}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(&sep.to_string())
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:p@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://data/angage.db"), "sqlite://data/angage.db");
        assert_eq!(redact_url("redis://:pw@h:6379"), "redis://:***@h:6379");
        assert_eq!(redact_url("postgres://u:p@ss@h/db"), "postgres://u:***@h/db", "an @ in the password");
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=s3cr3t&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
        assert_eq!(redact_url("postgres://h/db?sslpassword=k"), "postgres://h/db?sslpassword=***");
        assert_eq!(redact_url("host=h user=u password=s3cr3t"), "host=h user=u password=***");
    }
}
