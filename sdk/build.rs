//! Embeds the WIT contract into the export macros, so a plugin crate generates its world's
//! bindings without carrying the WIT files itself.

use std::fmt::Write;

const WORLDS: &[&str] = &["authenticator", "authorizer", "rate-limiter", "usage-enricher"];

fn main() {
    println!("cargo:rerun-if-changed=wit");
    let wit = std::fs::read_to_string("wit/policy.wit").expect("sdk/wit/policy.wit");
    // The `with` keys name the package version: read it from the contract itself.
    let version = wit
        .lines()
        .find_map(|l| l.trim().strip_prefix("package angage:policy@"))
        .and_then(|v| v.strip_suffix(';'))
        .expect("sdk/wit/policy.wit declares `package angage:policy@<version>;`");
    let mut out = String::from(
        "/// Generates one stage world's bindings in the calling crate (used by the export macros).\n\
         #[doc(hidden)]\n#[macro_export]\nmacro_rules! __angage_generate {\n",
    );
    for world in WORLDS {
        let _ = write!(
            out,
            "    ({world}) => {{\n        ::angage_plugin_sdk::__wit_bindgen::generate!({{\n            inline: r#\"{wit}\"#,\n            \
             world: \"{world}\",\n            runtime_path: \"::angage_plugin_sdk::__wit_bindgen::rt\",\n            \
             with: {{\n                \"angage:policy/types@{version}\": ::angage_plugin_sdk::bindings::angage::policy::types,\n                \
             \"angage:policy/host@{version}\": ::angage_plugin_sdk::bindings::angage::policy::host,\n            }},\n        }});\n    }};\n"
        );
    }
    out.push_str("}\n");
    let _ = write!(
        out,
        "/// The contract version this SDK builds plugins against.\npub const CONTRACT_VERSION: &str = \"{version}\";\n"
    );
    let path = std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("generate.rs");
    std::fs::write(path, out).expect("write generate.rs");
}
