//! Configuration layering and start-up errors, through the real binary.

use std::fs;

use crate::helpers::angage_bin;

fn show(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = angage_bin();
    cmd.current_dir(dir).args(args).args(["config", "show"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run angage");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no line for {key} in\n{text}"))
}

#[test]
fn layers_apply_in_order_default_file_profile_config_env_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("config")).expect("mkdir");
    fs::write(
        dir.path().join("config/default.toml"),
        "[server]\naddr = \"127.0.0.1:1111\"\nbody_limit_bytes = 2048\n[log]\nlevel = \"debug\"\n",
    )
    .expect("write");
    fs::write(dir.path().join("config/staging.toml"), "[server]\naddr = \"127.0.0.1:2222\"\n")
        .expect("write");
    fs::write(
        dir.path().join("extra.toml"),
        "[server]\naddr = \"127.0.0.1:3333\"\n[log]\nformat = \"json\"\n",
    )
    .expect("write");

    // default.toml beats the built-in default; the profile file beats default.toml.
    let (ok, out, err) = show(dir.path(), &[], &[("ANGAGE_PROFILE", "staging")]);
    assert!(ok, "{err}");
    assert!(out.contains("# profile: staging"));
    assert!(line(&out, "addr").contains("\"127.0.0.1:2222\"  # file config/staging.toml"));
    assert!(line(&out, "body_limit_bytes").contains("2048  # file config/default.toml"));
    assert!(line(&out, "max_connections").contains("8  # built-in default"));

    // --config beats the profile file; the environment beats --config.
    let (_, out, _) = show(dir.path(), &["--config", "extra.toml"], &[("ANGAGE_PROFILE", "staging")]);
    assert!(line(&out, "addr").contains("\"127.0.0.1:3333\"  # file extra.toml"));
    let (_, out, _) = show(
        dir.path(),
        &["--config", "extra.toml"],
        &[("ANGAGE_PROFILE", "staging"), ("ANGAGE_SERVER__ADDR", "127.0.0.1:4444")],
    );
    assert!(line(&out, "addr").contains("\"127.0.0.1:4444\"  # environment variable ANGAGE_SERVER__ADDR"));
    assert!(line(&out, "format").contains("\"json\"  # file extra.toml"));

    // A flag beats everything.
    let (_, out, _) = show(
        dir.path(),
        &["--config", "extra.toml", "--addr", "127.0.0.1:5555", "--log-level", "warn"],
        &[("ANGAGE_SERVER__ADDR", "127.0.0.1:4444")],
    );
    assert!(line(&out, "addr").contains("\"127.0.0.1:5555\"  # command-line flag --addr"));
    assert!(line(&out, "level").contains("\"warn\"  # command-line flag --log-level"));
}

#[test]
fn secrets_are_redacted_in_config_show() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, out, _) = show(
        dir.path(),
        &[],
        &[
            ("ANGAGE_KEYS__PEPPER", "s3cr3t-pepper-value-of-at-least-32-chars"),
            ("ANGAGE_DATABASE__URL", "postgres://app:hunter2@db:5432/angage"),
        ],
    );
    assert!(ok);
    assert!(!out.contains("s3cr3t-pepper-value-of-at-least-32-chars"));
    assert!(!out.contains("hunter2"));
    assert!(line(&out, "pepper").contains("\"<redacted>\"  # environment variable ANGAGE_KEYS__PEPPER"));
    assert!(line(&out, "url").contains("postgres://app:***@db:5432/angage"));
}

#[test]
fn bad_values_stop_start_up_with_one_line_naming_key_and_layer() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("bad.toml"), "[server]\nadress = \"127.0.0.1:1\"\n").expect("write");
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (
            &[],
            &[("ANGAGE_DATABASE__MAX_CONNECTIONS", "lots")],
            &["database.max_connections", "ANGAGE_DATABASE__MAX_CONNECTIONS"],
        ),
        (
            &[],
            &[("ANGAGE_SERVER__ADDR", "not-an-address")],
            &["server.addr", "ANGAGE_SERVER__ADDR", "invalid socket address"],
        ),
        (&["--config", "bad.toml"], &[], &["unknown configuration key `server.adress`", "file bad.toml"]),
        (&["--log-format", "xml"], &[], &["log.format", "--log-format"]),
        (&["--config", "missing.toml"], &[], &["missing.toml does not exist"]),
    ];
    for (args, env, needles) in cases {
        let mut cmd = angage_bin();
        cmd.current_dir(dir.path()).args(*args);
        for (k, v) in *env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run angage");
        assert_eq!(out.status.code(), Some(1), "{args:?} {env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one line expected, got: {err}");
        for needle in *needles {
            assert!(err.contains(needle), "`{needle}` missing from: {err}");
        }
        assert!(!dir.path().join("data").exists(), "a bad configuration must not start the server");
    }
}

#[test]
fn production_refuses_to_start_without_a_pepper() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = angage_bin()
        .current_dir(dir.path())
        .env("ANGAGE_PROFILE", "production")
        .args(["--addr", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("keys.pepper must be set in the production profile"), "{err}");
    assert!(!dir.path().join("data/pepper").exists(), "no pepper is generated in production");
}

#[test]
fn migrate_command_creates_the_embedded_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = angage_bin().current_dir(dir.path()).arg("migrate").output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("data/angage.db").is_file());
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
}
