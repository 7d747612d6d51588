//! Turns figment's provenance into the words a user reads: which layer set a key.

use figment::Figment;
use figment::Source;

/// Names the layer that supplied `key` (a dotted path), e.g. `file config/production.toml` or
/// `environment variable ANGAGE_SERVER__ADDR`.
pub fn describe_origin(figment: &Figment, key: &str) -> String {
    let Some(meta) = figment.find_metadata(key).or_else(|| parent_metadata(figment, key)) else {
        return "an unknown layer".into();
    };
    match &meta.source {
        Some(Source::File(path)) => format!("file {}", path.display()),
        _ if meta.name.contains("environment") => {
            format!("environment variable ANGAGE_{}", key.to_ascii_uppercase().replace('.', "__"))
        }
        _ if meta.name == super::FLAGS => format!("command-line flag --{}", flag_name(key)),
        _ => meta.name.to_string(),
    }
}

/// figment records metadata for leaf values; an unknown section may only be found by its parent.
fn parent_metadata<'a>(figment: &'a Figment, key: &str) -> Option<&'a figment::Metadata> {
    let mut path = key;
    while let Some((parent, _)) = path.rsplit_once('.') {
        if let Some(meta) = figment.find_metadata(parent) {
            return Some(meta);
        }
        path = parent;
    }
    None
}

/// The flag that sets `key`: `server.addr` is `--addr`, `log.level` is `--log-level`.
pub(super) fn flag_name(key: &str) -> String {
    match key {
        "server.addr" => "addr".into(),
        other => other.replace(['.', '_'], "-"),
    }
}
