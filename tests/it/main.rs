//! Integration tests: the real server over HTTP on port 0, each test on a fresh database.
//! Storage tests run on SQLite always and on PostgreSQL when `ANGAGE_TEST_POSTGRES_URL` is set.

mod cli_config;
mod health;
mod helpers;
mod storage;
