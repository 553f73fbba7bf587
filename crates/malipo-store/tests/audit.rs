//! The audit log is append-only in the database itself, on SQLite and
//! PostgreSQL: entries are written and read, but an UPDATE, a DELETE or a
//! TRUNCATE of `audit_log` (a bug, an injected statement, a hand at the SQL
//! prompt) is refused and changes nothing, also after a restart migrated
//! the database again.

use malipo_store::{AuditFilters, AuditRecord, Cursor, Page, Store, StoreOptions};
use malipo_test_support::{Backend, TestDatabase};

fn entry() -> AuditRecord {
    AuditRecord {
        id: "aud_1".into(),
        action: "merchant.create".into(),
        actor_type: "operator".into(),
        actor_id: Some("op_1".into()),
        actor_prefix: Some("op_abc".into()),
        source_ip: Some("127.0.0.1".into()),
        request_id: None,
        merchant_id: Some("mer_1".into()),
        livemode: Some(false),
        object_type: "merchant".into(),
        object_id: "mer_1".into(),
        before: None,
        after: Some(serde_json::json!({"name": "Duka"})),
        created: 1_764_000_000,
    }
}

async fn entries(store: &Store) -> Vec<AuditRecord> {
    let mut reader = store.reader().await.expect("reader");
    let (entries, _) = reader
        .conn()
        .audit_entries(
            &AuditFilters::default(),
            &Page {
                limit: 100,
                cursor: Cursor::Newest,
            },
        )
        .await
        .expect("list");
    entries
}

/// Runs `statement` on a connection of its own, outside the store.
async fn raw(backend: Backend, url: &str, statement: &'static str) -> Result<u64, sqlx::Error> {
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.expect("sqlite");
            let done = sqlx::query(statement).execute(&pool).await;
            pool.close().await;
            done.map(|done| done.rows_affected())
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.expect("postgres");
            let done = sqlx::query(statement).execute(&pool).await;
            pool.close().await;
            done.map(|done| done.rows_affected())
        }
    }
}

async fn the_audit_log_refuses_every_change(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let store = Store::connect(&StoreOptions::new(&database.url))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    // A restart migrates again: the guard is created idempotently.
    store.migrate().await.expect("migrate again");
    let mut tx = store.begin().await.expect("begin");
    tx.conn()
        .insert_audit_entry(&entry())
        .await
        .expect("insert");
    tx.commit().await.expect("commit");

    let statements = [
        "UPDATE audit_log SET action = 'merchant.delete'",
        "UPDATE audit_log SET after_json = NULL WHERE id = 'aud_1'",
        "DELETE FROM audit_log WHERE id = 'aud_1'",
        "DELETE FROM audit_log",
    ];
    for statement in statements {
        let refused = raw(backend, &database.url, statement)
            .await
            .expect_err(statement);
        assert!(
            refused.to_string().contains("audit_log is append-only"),
            "{statement}: {refused}"
        );
    }
    if backend == Backend::Postgres {
        let refused = raw(backend, &database.url, "TRUNCATE audit_log")
            .await
            .expect_err("truncate");
        assert!(refused.to_string().contains("append-only"), "{refused}");
    }
    assert_eq!(entries(&store).await, vec![entry()], "nothing changed");

    // Appending still works.
    let mut second = entry();
    second.id = "aud_2".into();
    let mut tx = store.begin().await.expect("begin");
    tx.conn().insert_audit_entry(&second).await.expect("insert");
    tx.commit().await.expect("commit");
    assert_eq!(entries(&store).await.len(), 2);
}

#[tokio::test]
async fn the_audit_log_refuses_every_change_on_sqlite() {
    the_audit_log_refuses_every_change(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_audit_log_refuses_every_change_on_postgres() {
    the_audit_log_refuses_every_change(Backend::Postgres).await;
}
