//! Paths of the fixture plugins, built for wasm32 by this crate's build script. A dev-dependency
//! only: `cargo check` of the server never builds them.

include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));
