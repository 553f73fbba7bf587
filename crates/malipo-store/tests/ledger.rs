//! The ledger through the store, on SQLite and PostgreSQL: random sequences
//! of batches keep debits equal to credits and respect balance limits, the
//! store persists exactly what the engine decides, refused batches change
//! nothing, concurrent writers on overlapping accounts neither deadlock
//! nor lose updates, and a rollback to a savepoint undoes only what
//! followed it.

use malipo_ledger::{
    Account, AccountFlags, BatchOutcome, LedgerSnapshot, TransferKind, TransferRequest,
};
use malipo_store::{Store, StoreError, StoreOptions};
use malipo_test_support::{Backend, TestDatabase};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::collections::BTreeMap;

const ASSETS: [&str; 2] = ["kes", "usd"];

fn accounts() -> Vec<Account> {
    let mut accounts = Vec::new();
    for asset in ASSETS {
        for index in 0..4 {
            let flags = AccountFlags {
                debits_must_not_exceed_credits: index == 1 || index == 2,
                credits_must_not_exceed_debits: index == 3,
            };
            accounts.push(Account::new(format!("{asset}/{index}"), asset, flags));
        }
    }
    accounts
}

async fn open(database: &TestDatabase) -> Store {
    let store = Store::connect(&StoreOptions::new(&database.url))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    store
}

fn random_batch(
    rng: &mut StdRng,
    next_id: &mut u64,
    pending: &[(String, String, String, String)],
) -> Vec<TransferRequest> {
    let size = rng.random_range(1..=4);
    (0..size)
        .map(|_| {
            *next_id += 1;
            let id = format!("t{next_id}");
            if !pending.is_empty() && rng.random_bool(0.3) {
                let (pending_id, debit, credit, asset) =
                    &pending[rng.random_range(0..pending.len())];
                let post = rng.random_bool(0.5);
                return TransferRequest {
                    id,
                    debit_account_id: debit.clone(),
                    credit_account_id: credit.clone(),
                    amount: 0,
                    asset: asset.clone(),
                    kind: if post {
                        TransferKind::PostPending
                    } else {
                        TransferKind::VoidPending
                    },
                    pending_id: Some(pending_id.clone()),
                    code: "test".into(),
                    source_id: None,
                };
            }
            let asset = ASSETS[rng.random_range(0..ASSETS.len())];
            let debit = rng.random_range(0..4);
            let mut credit = rng.random_range(0..4);
            if credit == debit {
                credit = (credit + 1) % 4;
            }
            TransferRequest {
                id,
                debit_account_id: format!("{asset}/{debit}"),
                credit_account_id: format!("{asset}/{credit}"),
                amount: rng.random_range(1..=1_000),
                asset: asset.into(),
                kind: if rng.random_bool(0.3) {
                    TransferKind::Pending
                } else {
                    TransferKind::Posted
                },
                pending_id: None,
                code: "test".into(),
                source_id: None,
            }
        })
        .collect()
}

async fn random_batches_keep_the_ledger_balanced(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let store = open(&database).await;
    let mut tx = store.begin().await.expect("begin");
    tx.conn()
        .ensure_ledger_accounts(&accounts(), 0)
        .await
        .expect("accounts");
    tx.commit().await.expect("commit");

    // The oracle: the pure engine over the whole ledger, kept in memory.
    let mut model = LedgerSnapshot::default();
    for account in accounts() {
        model.accounts.insert(account.id.clone(), account);
    }
    let mut rng = StdRng::seed_from_u64(7);
    let mut next_id = 0;
    let mut pending = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..120 {
        let batch = random_batch(&mut rng, &mut next_id, &pending);
        let expected = malipo_ledger::apply_batch(&model, &batch, round);
        let mut tx = store.begin().await.expect("begin");
        let result = tx.conn().post_transfers(&batch, round).await;
        match (&expected, result) {
            (Ok(outcome), Ok(stored)) => {
                tx.commit().await.expect("commit");
                assert_eq!(
                    &stored, outcome,
                    "the store applies what the engine decides"
                );
                persist(&mut model, &mut pending, outcome);
                accepted += 1;
            }
            (Err(expected_error), Err(StoreError::Ledger(error))) => {
                assert_eq!(&error, expected_error);
                drop(tx); // rolls back
                refused += 1;
            }
            (expected, actual) => panic!("engine said {expected:?}, store said {actual:?}"),
        }
    }
    assert!(
        accepted > 20 && refused > 5,
        "the sequence exercised both paths: {accepted} accepted, {refused} refused"
    );

    check_store_equals_model(&store, &model).await;
}

/// Pending transfers a later random batch may post or void.
type PendingList = Vec<(String, String, String, String)>;

/// Persists an accepted outcome into the model, as the store should have.
fn persist(model: &mut LedgerSnapshot, pending: &mut PendingList, outcome: &BatchOutcome) {
    for account in &outcome.changed_accounts {
        model.accounts.insert(account.id.clone(), account.clone());
    }
    for transfer in &outcome.created {
        model
            .transfers
            .insert(transfer.id.clone(), transfer.clone());
        if transfer.kind == TransferKind::Pending {
            pending.push((
                transfer.id.clone(),
                transfer.debit_account_id.clone(),
                transfer.credit_account_id.clone(),
                transfer.asset.clone(),
            ));
        }
    }
    for (id, status) in &outcome.pending_status_changes {
        model.pending_status.insert(id.clone(), *status);
    }
}

/// The stored balances equal the model's, the ledger verifies, and every
/// balance limit holds.
async fn check_store_equals_model(store: &Store, model: &LedgerSnapshot) {
    let mut reader = store.reader().await.expect("reader");
    let (stored_accounts, transfers) = reader.conn().ledger_everything().await.expect("everything");
    let stored: BTreeMap<_, _> = stored_accounts
        .iter()
        .map(|account| (account.id.clone(), account.clone()))
        .collect();
    assert_eq!(
        stored, model.accounts,
        "persisted balances equal the model's"
    );
    let report = malipo_ledger::verify(&stored_accounts, &transfers);
    assert!(report.ok, "{report:?}");
    for account in &stored_accounts {
        if account.flags.debits_must_not_exceed_credits {
            assert!(
                account.debits_posted + account.debits_pending <= account.credits_posted,
                "{account:?}"
            );
        }
        if account.flags.credits_must_not_exceed_debits {
            assert!(
                account.credits_posted + account.credits_pending <= account.debits_posted,
                "{account:?}"
            );
        }
    }
}

/// Group commit: several batches in one transaction, each judged on its
/// own (a refused one writes nothing, the others are written), accounts
/// created on first use, the result as if each batch had its own
/// transaction.
async fn grouped_batches_are_each_all_or_nothing(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let store = open(&database).await;
    let mut model = LedgerSnapshot::default();
    for account in accounts() {
        model.accounts.insert(account.id.clone(), account);
    }
    let mut rng = StdRng::seed_from_u64(11);
    let mut next_id = 0;
    let mut pending = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..60 {
        let groups: Vec<Vec<TransferRequest>> = (0..rng.random_range(1..=6))
            .map(|_| random_batch(&mut rng, &mut next_id, &pending))
            .collect();
        let mut expected = Vec::new();
        for batch in &groups {
            match malipo_ledger::apply_batch(&model, batch, round) {
                Ok(outcome) => {
                    persist(&mut model, &mut pending, &outcome);
                    expected.push(Ok(()));
                    accepted += 1;
                }
                Err(error) => {
                    expected.push(Err(error));
                    refused += 1;
                }
            }
        }
        let slices: Vec<&[TransferRequest]> = groups.iter().map(Vec::as_slice).collect();
        let mut tx = store.begin().await.expect("begin");
        let verdicts = tx
            .conn()
            .post_transfer_groups(&accounts(), &slices, 0, round)
            .await
            .expect("group");
        tx.commit().await.expect("commit");
        assert_eq!(verdicts, expected, "round {round}");
    }
    assert!(
        accepted > 40 && refused > 10,
        "the groups exercised both paths: {accepted} accepted, {refused} refused"
    );
    check_store_equals_model(&store, &model).await;
}

#[tokio::test]
async fn grouped_batches_are_each_all_or_nothing_on_sqlite() {
    grouped_batches_are_each_all_or_nothing(Backend::Sqlite).await;
}

#[tokio::test]
async fn grouped_batches_are_each_all_or_nothing_on_postgres() {
    grouped_batches_are_each_all_or_nothing(Backend::Postgres).await;
}

#[tokio::test]
async fn random_batches_keep_the_ledger_balanced_on_sqlite() {
    random_batches_keep_the_ledger_balanced(Backend::Sqlite).await;
}

#[tokio::test]
async fn random_batches_keep_the_ledger_balanced_on_postgres() {
    random_batches_keep_the_ledger_balanced(Backend::Postgres).await;
}

/// Writers moving money around a ring of accounts in both directions: the
/// store must lock in a fixed order (no deadlock) and lose no update.
async fn concurrent_writers_lose_nothing(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let store = open(&database).await;
    let ring: Vec<Account> = (0..5)
        .map(|index| Account::new(format!("ring/{index}"), "kes", AccountFlags::default()))
        .collect();
    let mut tx = store.begin().await.expect("begin");
    tx.conn()
        .ensure_ledger_accounts(&ring, 0)
        .await
        .expect("accounts");
    tx.commit().await.expect("commit");

    let writers = (0..6).map(|writer| {
        let store = store.clone();
        tokio::spawn(async move {
            for round in 0..25 {
                let (from, to) = if writer % 2 == 0 {
                    (round % 5, (round + 1) % 5)
                } else {
                    ((round + 1) % 5, round % 5)
                };
                let batch = vec![
                    TransferRequest {
                        id: format!("w{writer}r{round}a"),
                        debit_account_id: format!("ring/{from}"),
                        credit_account_id: format!("ring/{to}"),
                        amount: 3,
                        asset: "kes".into(),
                        kind: TransferKind::Posted,
                        pending_id: None,
                        code: "test".into(),
                        source_id: None,
                    },
                    TransferRequest {
                        id: format!("w{writer}r{round}b"),
                        debit_account_id: format!("ring/{to}"),
                        credit_account_id: format!("ring/{}", (to + 2) % 5),
                        amount: 2,
                        asset: "kes".into(),
                        kind: TransferKind::Posted,
                        pending_id: None,
                        code: "test".into(),
                        source_id: None,
                    },
                ];
                let mut tx = store.begin().await.expect("begin");
                tx.conn().post_transfers(&batch, 0).await.expect("post");
                tx.commit().await.expect("commit");
            }
        })
    });
    for writer in writers {
        writer.await.expect("writer finished");
    }
    let mut reader = store.reader().await.expect("reader");
    let (accounts, transfers) = reader.conn().ledger_everything().await.expect("everything");
    assert_eq!(transfers.len(), 6 * 25 * 2);
    let report = malipo_ledger::verify(&accounts, &transfers);
    assert!(report.ok, "{report:?}");
    let total_debits: u128 = accounts.iter().map(|account| account.debits_posted).sum();
    assert_eq!(total_debits, 6 * 25 * 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing_on_sqlite() {
    concurrent_writers_lose_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing_on_postgres() {
    concurrent_writers_lose_nothing(Backend::Postgres).await;
}

/// What a savepoint gives a caller (the desk settles a paid buy in one):
/// work after it is undone by a rollback to it, work before it and after
/// the rollback commits.
async fn a_rollback_to_the_savepoint_undoes_only_what_followed(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let store = open(&database).await;
    let pair = [
        Account::new("sp/a", "kes", AccountFlags::default()),
        Account::new("sp/b", "kes", AccountFlags::default()),
    ];
    let transfer = |id: &str, amount: u128| TransferRequest {
        id: id.into(),
        debit_account_id: "sp/a".into(),
        credit_account_id: "sp/b".into(),
        amount,
        asset: "kes".into(),
        kind: TransferKind::Posted,
        pending_id: None,
        code: "test".into(),
        source_id: None,
    };
    let mut tx = store.begin().await.expect("begin");
    let mut conn = tx.conn();
    conn.post_transfers_creating_accounts(&pair, &[transfer("before", 100)], 0, 0)
        .await
        .expect("before");
    conn.savepoint().await.expect("savepoint");
    conn.post_transfers(&[transfer("undone", 20)], 0)
        .await
        .expect("undone");
    conn.rollback_to_savepoint().await.expect("rollback");
    conn.post_transfers(&[transfer("after", 3)], 0)
        .await
        .expect("after");
    conn.savepoint().await.expect("savepoint again");
    conn.post_transfers(&[transfer("kept", 4_000)], 0)
        .await
        .expect("kept");
    conn.release_savepoint().await.expect("release");
    tx.commit().await.expect("commit");

    let mut tx = store.begin().await.expect("begin");
    let accounts = tx
        .conn()
        .ledger_accounts_with_prefix("sp/")
        .await
        .expect("accounts");
    let b = accounts
        .iter()
        .find(|account| account.id == "sp/b")
        .expect("sp/b");
    assert_eq!(b.credits_posted, 4_103, "20 was undone, the rest kept");
}

#[tokio::test]
async fn a_rollback_to_the_savepoint_undoes_only_what_followed_on_sqlite() {
    a_rollback_to_the_savepoint_undoes_only_what_followed(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_rollback_to_the_savepoint_undoes_only_what_followed_on_postgres() {
    a_rollback_to_the_savepoint_undoes_only_what_followed(Backend::Postgres).await;
}
