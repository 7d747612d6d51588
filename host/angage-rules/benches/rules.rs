//! Rule evaluation per request for the shipped examples (and the default), as the pipeline
//! runs it: make the request/key/limits values, call `rule`, read the limits back.
//!
//! ```sh
//! cargo bench --bench rules
//! ```

use std::hint::black_box;
use std::path::Path;

use angage_core::key::Access;
use angage_rules::engine::{compile, run, sandbox};
use angage_rules::{Inputs, RuleKey, RuleRequest, sample_limits};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let engine = sandbox();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let request = RuleRequest {
        method: "POST".into(),
        route: "/v1/orders".into(),
        path: "/v1/orders".into(),
        module: "orders".into(),
        operation: "write".into(),
        time_ms: 1_795_000_000_000,
        timezone: "Europe/Berlin".into(),
    };
    let key = RuleKey {
        id: "key_1".into(),
        name: "Analytics".into(),
        environment: "test".into(),
        grants: std::sync::Arc::new(
            [("orders".into(), Access::ReadWrite), ("invoices".into(), Access::Read)].into_iter().collect(),
        ),
    };
    let limits = sample_limits();
    let mut scripts = vec![("default".to_owned(), dir.join("default.rhai"))];
    let mut examples: Vec<_> = std::fs::read_dir(dir.join("examples"))
        .expect("examples")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    examples.sort();
    scripts.extend(
        examples.into_iter().map(|p| (p.file_stem().unwrap_or_default().to_string_lossy().into_owned(), p)),
    );
    for (name, path) in scripts {
        let text = std::fs::read_to_string(&path).expect("script");
        let ast = compile(&engine, &text).expect("compiles");
        c.bench_function(&format!("rules/{name}"), |b| {
            b.iter(|| {
                let inputs = Inputs::new(request.clone(), key.clone());
                black_box(run(&engine, &ast, &inputs, limits).expect("runs"))
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
