//! Fresh databases for tests: a temporary SQLite file, or a new database on
//! the PostgreSQL server named by [`POSTGRES_URL_VARIABLE`], dropped when the
//! [`TestDatabase`] is dropped.
//!
//! Without that variable the PostgreSQL half of a test is skipped with a
//! visible message, except in CI (`CI=true`) where it is a failure: the CI
//! run always exercises both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sqlx::Connection;

/// The variable naming the PostgreSQL server for tests, e.g.
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub const POSTGRES_URL_VARIABLE: &str = "MALIPO_TEST_DATABASE_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists as long as this value does.
pub struct TestDatabase {
    /// The URL to give the store.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { server_url: String, name: String },
}

impl TestDatabase {
    /// A fresh, empty database, or `None` when PostgreSQL is asked for and
    /// not configured outside CI (a message says the test skipped).
    pub async fn create(backend: Backend) -> Option<TestDatabase> {
        match backend {
            Backend::Sqlite => {
                let directory = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", directory.path().join("malipo.db").display());
                Some(TestDatabase {
                    url,
                    cleanup: Cleanup::Sqlite(directory),
                })
            }
            Backend::Postgres => {
                let Ok(server_url) = std::env::var(POSTGRES_URL_VARIABLE) else {
                    if std::env::var("CI").is_ok_and(|value| value == "true") {
                        panic!(
                            "{POSTGRES_URL_VARIABLE} must be set in CI: PostgreSQL tests never skip there"
                        );
                    }
                    eprintln!(
                        "SKIPPED (PostgreSQL): set {POSTGRES_URL_VARIABLE}=postgres://… to run this test on PostgreSQL"
                    );
                    return None;
                };
                let name = format!("malipo_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = sqlx::PgConnection::connect(&server_url)
                    .await
                    .expect("connect to test PostgreSQL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .expect("create test database");
                let url = malipo_store::postgres_url_with_database(&server_url, &name);
                Some(TestDatabase {
                    url,
                    cleanup: Cleanup::Postgres { server_url, name },
                })
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Cleanup::Postgres { server_url, name } = &self.cleanup else {
            return;
        };
        let (server_url, name) = (server_url.clone(), name.clone());
        // Drop runs outside async context: use a runtime of its own, on a
        // thread of its own (a runtime can't start inside another).
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&server_url).await {
                    let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(statement))
                        .execute(&mut admin)
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}
