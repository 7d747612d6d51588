//! Host bindings generated from `sdk/wit`: one module per stage world. The shared `types` and
//! `host` interfaces are generated once (in `authenticator`) and reused by the others; the
//! `request` and `key` resources are the host's own types (see `handles`).

#![allow(missing_docs, unreachable_pub, clippy::all)]

pub(crate) mod authenticator {
    wasmtime::component::bindgen!({
        world: "authenticator",
        path: "../../sdk/wit",
        // A handle the host cannot resolve is the plugin's fault: trap it.
        imports: { default: trappable },
        with: {
            "angage:policy/types.request": crate::plugins::handles::RequestRef,
            "angage:policy/types.key": crate::plugins::handles::KeyRef,
        },
    });
}

pub(crate) mod authorizer {
    wasmtime::component::bindgen!({
        world: "authorizer",
        path: "../../sdk/wit",
        with: {
            "angage:policy/types": super::authenticator::angage::policy::types,
            "angage:policy/host": super::authenticator::angage::policy::host,
        },
    });
}

pub(crate) mod rate_limiter {
    wasmtime::component::bindgen!({
        world: "rate-limiter",
        path: "../../sdk/wit",
        with: {
            "angage:policy/types": super::authenticator::angage::policy::types,
            "angage:policy/host": super::authenticator::angage::policy::host,
        },
    });
}

pub(crate) mod usage_enricher {
    wasmtime::component::bindgen!({
        world: "usage-enricher",
        path: "../../sdk/wit",
        with: {
            "angage:policy/types": super::authenticator::angage::policy::types,
            "angage:policy/host": super::authenticator::angage::policy::host,
        },
    });
}

pub(crate) use authenticator::angage::policy::host;
pub(crate) use authenticator::angage::policy::types;
