//! Embeds the WIT contract into the export macros, so a plugin crate generates its world's
//! bindings without carrying the WIT files itself.

use std::fmt::Write;

const WORLDS: &[&str] = &["authenticator", "authorizer", "rate-limiter", "usage-enricher"];

fn main() {
    println!("cargo:rerun-if-changed=wit");
    let wit = std::fs::read_to_string("wit/policy.wit").expect("sdk/wit/policy.wit");
    let mut out = String::from(
        "/// Generates one stage world's bindings in the calling crate (used by the export macros).\n\
         #[doc(hidden)]\n#[macro_export]\nmacro_rules! __angage_generate {\n",
    );
    for world in WORLDS {
        let _ = write!(
            out,
            "    ({world}) => {{\n        ::angage_plugin_sdk::__wit_bindgen::generate!({{\n            inline: r#\"{wit}\"#,\n            \
             world: \"{world}\",\n            runtime_path: \"::angage_plugin_sdk::__wit_bindgen::rt\",\n            \
             with: {{\n                \"angage:policy/types@1.0.0\": ::angage_plugin_sdk::bindings::angage::policy::types,\n                \
             \"angage:policy/host@1.0.0\": ::angage_plugin_sdk::bindings::angage::policy::host,\n            }},\n        }});\n    }};\n"
        );
    }
    out.push_str("}\n");
    let path = std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("generate.rs");
    std::fs::write(path, out).expect("write generate.rs");
}
