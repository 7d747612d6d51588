//! Test fixture: an authorizer for `angage:policy@3.0.0`, which this host does not speak.

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code, missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        inline: "
            package angage:policy@3.0.0;
            interface authorize {
                authorize: func(token: string) -> bool;
            }
            world authorizer {
                export authorize;
            }
        ",
        world: "authorizer",
    });

    struct Future;

    impl exports::angage::policy::authorize::Guest for Future {
        fn authorize(token: String) -> bool {
            !token.is_empty()
        }
    }

    export!(Future);
}

/// Present so the crate has something to build natively.
pub const CONTRACT: &str = "angage:policy@3.0.0";
