//! Migrations and the first-start bootstrap on both databases.

use angage_store::db::MIGRATOR;

use crate::helpers::{backends, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_and_bootstrap_runs_once_on_every_backend() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let pool = &app.state.db.pool;
        let (applied,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(pool)
            .await
            .expect("migrations table");
        assert_eq!(applied as usize, MIGRATOR.migrations.len(), "{backend:?}");
        let banner = app.banner.clone().expect("first start prints a banner");
        assert_eq!(banner.admin_email, "admin@demo.local");
        let (slug,): (String,) =
            sqlx::query_as("SELECT slug FROM tenants").fetch_one(pool).await.expect("tenant");
        assert_eq!(slug, "demo");

        // A second start on the same database migrates nothing new and prints no banner.
        let db_url = app.db.url.clone();
        let again = angage::app::App::build(
            {
                let mut s = crate::helpers::test_settings(&app.db);
                s.database.url = db_url;
                s
            },
            angage::app::Deps::default(),
        )
        .await
        .expect("second start");
        assert!(again.banner.is_none(), "{backend:?}: banner shown twice");
        again.state().db.close().await;
        app.stop().await;
    }
}
