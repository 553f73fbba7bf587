//! One test (or a few) per rule and per error of the ledger engine.

mod common;

use common::{
    KES, Ledger, USD, credits_limited, debits_limited, no_limits, pending, post, posted, replay_of,
    request, void,
};
use malipo_ledger::{
    Account, AccountFlags, Amount, BatchError, LedgerSnapshot, PendingStatus,
    TRANSFER_ID_MAX_BYTES, Transfer, TransferError, TransferKind, TransferRequest, apply_batch,
    verify,
};

/// `customer` and `provider` are unlimited, `merchant` can't go negative,
/// `dollars` holds another asset.
fn ledger() -> Ledger {
    Ledger::with_accounts([
        Account::new("customer", KES, no_limits()),
        Account::new("merchant", KES, debits_limited()),
        Account::new("provider", KES, no_limits()),
        Account::new("dollars", USD, no_limits()),
    ])
}

/// (debits_pending, debits_posted, credits_pending, credits_posted)
fn counters(account: &Account) -> (Amount, Amount, Amount, Amount) {
    (
        account.debits_pending,
        account.debits_posted,
        account.credits_pending,
        account.credits_posted,
    )
}

/// Applies `requests` and returns the error, asserting the ledger is
/// unchanged.
fn refused(ledger: &mut Ledger, requests: &[TransferRequest]) -> BatchError {
    let before = ledger.clone();
    let error = ledger
        .apply(requests, 9_000)
        .expect_err("the batch should be refused");
    assert_eq!(*ledger, before, "a refused batch must change nothing");
    error
}

/// The error of a batch made of one request.
fn refusal(ledger: &mut Ledger, request: TransferRequest) -> TransferError {
    let error = refused(ledger, std::slice::from_ref(&request));
    assert_eq!((error.index, error.id.as_str()), (0, request.id.as_str()));
    error.error
}

fn accepted(ledger: &mut Ledger, requests: &[TransferRequest]) -> malipo_ledger::BatchOutcome {
    ledger
        .apply(requests, 1_000)
        .expect("the batch should be accepted")
}

// ---------------------------------------------------------------- posting

#[test]
fn posted_transfer_moves_posted_counters_and_is_recorded_as_given() {
    let mut ledger = ledger();
    let mut request = posted("t1", "customer", "merchant", 500);
    request.source_id = Some("pay_1".to_owned());
    let outcome = ledger.apply(&[request], 1_234).expect("accepted");

    assert_eq!(
        outcome.created,
        vec![Transfer {
            id: "t1".to_owned(),
            debit_account_id: "customer".to_owned(),
            credit_account_id: "merchant".to_owned(),
            amount: 500,
            asset: KES.to_owned(),
            kind: TransferKind::Posted,
            pending_id: None,
            code: "payment".to_owned(),
            source_id: Some("pay_1".to_owned()),
            created_ms: 1_234,
        }]
    );
    assert!(outcome.already_existed.is_empty());
    assert!(outcome.pending_status_changes.is_empty());
    assert_eq!(counters(ledger.account("customer")), (0, 500, 0, 0));
    assert_eq!(counters(ledger.account("merchant")), (0, 0, 0, 500));
}

#[test]
fn changed_accounts_are_exactly_the_moved_ones_sorted_by_id() {
    let mut ledger = Ledger::with_accounts([
        Account::new("b", KES, no_limits()),
        Account::new("a", KES, no_limits()),
        Account::new("c", KES, no_limits()),
    ]);
    let outcome = accepted(&mut ledger, &[posted("t1", "b", "a", 5)]);
    let ids: Vec<&str> = outcome
        .changed_accounts
        .iter()
        .map(|account| account.id.as_str())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(outcome.changed_accounts[0].credits_posted, 5);
    assert_eq!(outcome.changed_accounts[1].debits_posted, 5);
}

#[test]
fn an_account_moved_and_moved_back_in_one_batch_is_not_changed() {
    let mut ledger = ledger();
    let outcome = accepted(
        &mut ledger,
        &[pending("p1", "customer", "merchant", 7), void("v1", "p1")],
    );
    assert!(outcome.changed_accounts.is_empty());
    assert_eq!(outcome.created.len(), 2);
}

#[test]
fn empty_batch_changes_nothing() {
    let outcome = apply_batch(&LedgerSnapshot::default(), &[], 0).expect("accepted");
    assert!(outcome.created.is_empty());
    assert!(outcome.already_existed.is_empty());
    assert!(outcome.changed_accounts.is_empty());
    assert!(outcome.pending_status_changes.is_empty());
}

// ---------------------------------------------------------- two phases

#[test]
fn pending_transfer_reserves_and_post_of_zero_posts_it_all() {
    let mut ledger = ledger();
    let outcome = accepted(&mut ledger, &[pending("p1", "customer", "merchant", 300)]);
    assert_eq!(
        outcome.pending_status_changes,
        [("p1".to_owned(), PendingStatus::Pending)]
    );
    assert_eq!(counters(ledger.account("customer")), (300, 0, 0, 0));
    assert_eq!(counters(ledger.account("merchant")), (0, 0, 300, 0));

    let outcome = accepted(&mut ledger, &[post("c1", "p1", 0)]);
    let recorded = &outcome.created[0];
    assert_eq!(recorded.amount, 300);
    assert_eq!(recorded.debit_account_id, "customer");
    assert_eq!(recorded.credit_account_id, "merchant");
    assert_eq!(recorded.asset, KES);
    assert_eq!(recorded.pending_id.as_deref(), Some("p1"));
    assert_eq!(
        outcome.pending_status_changes,
        [("p1".to_owned(), PendingStatus::Posted)]
    );
    assert_eq!(counters(ledger.account("customer")), (0, 300, 0, 0));
    assert_eq!(counters(ledger.account("merchant")), (0, 0, 0, 300));
}

#[test]
fn partial_post_releases_the_rest_of_the_reservation() {
    let mut ledger = ledger();
    accepted(&mut ledger, &[pending("p1", "customer", "merchant", 300)]);
    let outcome = accepted(&mut ledger, &[post("c1", "p1", 120)]);
    assert_eq!(outcome.created[0].amount, 120);
    assert_eq!(counters(ledger.account("customer")), (0, 120, 0, 0));
    assert_eq!(counters(ledger.account("merchant")), (0, 0, 0, 120));
}

#[test]
fn void_releases_the_reservation_and_records_the_pending_amount() {
    let mut ledger = ledger();
    accepted(&mut ledger, &[pending("p1", "customer", "merchant", 300)]);
    let outcome = accepted(&mut ledger, &[void("v1", "p1")]);
    assert_eq!(outcome.created[0].amount, 300);
    assert_eq!(outcome.created[0].kind, TransferKind::VoidPending);
    assert_eq!(
        outcome.pending_status_changes,
        [("p1".to_owned(), PendingStatus::Voided)]
    );
    assert_eq!(counters(ledger.account("customer")), (0, 0, 0, 0));
    assert_eq!(counters(ledger.account("merchant")), (0, 0, 0, 0));
    assert_eq!(outcome.changed_accounts.len(), 2);
}

#[test]
fn void_may_name_the_full_pending_amount() {
    let mut ledger = ledger();
    accepted(&mut ledger, &[pending("p1", "customer", "merchant", 300)]);
    let mut request = void("v1", "p1");
    request.amount = 300;
    let outcome = accepted(&mut ledger, &[request]);
    assert_eq!(outcome.created[0].amount, 300);
}

#[test]
fn post_may_restate_the_pending_accounts_and_asset() {
    let mut ledger = ledger();
    accepted(&mut ledger, &[pending("p1", "customer", "merchant", 300)]);
    let mut request = request("c1", TransferKind::PostPending, "customer", "merchant", 300);
    request.pending_id = Some("p1".to_owned());
    let outcome = accepted(&mut ledger, &[request]);
    assert_eq!(outcome.created[0].amount, 300);
}

#[test]
fn a_pending_transfer_created_earlier_in_the_batch_can_be_posted_later_in_it() {
    let mut ledger = ledger();
    let outcome = accepted(
        &mut ledger,
        &[
            pending("p1", "customer", "merchant", 50),
            post("c1", "p1", 0),
        ],
    );
    assert_eq!(
        outcome.pending_status_changes,
        [
            ("p1".to_owned(), PendingStatus::Pending),
            ("p1".to_owned(), PendingStatus::Posted),
        ]
    );
    assert_eq!(
        ledger.pending_status.get("p1"),
        Some(&PendingStatus::Posted)
    );
    assert_eq!(counters(ledger.account("merchant")), (0, 0, 0, 50));
}

// ------------------------------------------------------------ batches

#[test]
fn later_requests_see_the_balances_left_by_earlier_ones() {
    let mut ledger = ledger();
    // The merchant can spend in request 1 what request 0 credited it...
    accepted(
        &mut ledger,
        &[
            posted("in", "customer", "merchant", 100),
            posted("out", "merchant", "provider", 100),
        ],
    );
    // ...but not a unit more.
    let error = refused(
        &mut ledger,
        &[
            posted("in2", "customer", "merchant", 100),
            posted("out2", "merchant", "provider", 101),
        ],
    );
    assert_eq!(
        error,
        BatchError {
            index: 1,
            id: "out2".to_owned(),
            error: TransferError::ExceedsCredits
        }
    );
}

#[test]
fn a_batch_is_all_or_nothing_and_reports_the_first_error() {
    let mut ledger = ledger();
    let error = refused(
        &mut ledger,
        &[
            posted("ok", "customer", "provider", 1),
            posted("", "customer", "provider", 1),
            posted("same", "customer", "customer", 1),
        ],
    );
    assert_eq!((error.index, error.error), (1, TransferError::IdEmpty));
    assert!(ledger.transfers.is_empty());
    assert_eq!(counters(ledger.account("customer")), (0, 0, 0, 0));
}

#[test]
fn batch_error_names_the_request_and_the_reason() {
    let error = BatchError {
        index: 2,
        id: "t9".to_owned(),
        error: TransferError::ExceedsCredits,
    };
    assert_eq!(
        error.to_string(),
        "transfer 2 (t9): the debit account's debits would exceed its posted credits"
    );
}

// -------------------------------------------------------- idempotency

#[test]
fn replaying_a_transfer_is_a_no_op() {
    let mut ledger = ledger();
    let request = posted("t1", "customer", "merchant", 500);
    accepted(&mut ledger, std::slice::from_ref(&request));
    let before = ledger.clone();
    // A later replay, at another time: created_ms is not compared.
    let outcome = ledger.apply(&[request], 5_000).expect("accepted");
    assert!(outcome.created.is_empty());
    assert_eq!(outcome.already_existed, ["t1"]);
    assert!(outcome.changed_accounts.is_empty());
    assert!(outcome.pending_status_changes.is_empty());
    assert_eq!(ledger, before);
}

#[test]
fn replaying_a_post_that_relied_on_defaults_is_a_no_op() {
    let mut ledger = ledger();
    accepted(&mut ledger, &[pending("p1", "customer", "merchant", 300)]);
    accepted(&mut ledger, &[post("c1", "p1", 0)]);
    let outcome = accepted(&mut ledger, &[post("c1", "p1", 0)]);
    assert_eq!(outcome.already_existed, ["c1"]);
    // Spelling the defaults out describes the same transfer.
    let recorded = ledger.transfers["c1"].clone();
    let outcome = accepted(&mut ledger, &[replay_of(&recorded)]);
    assert_eq!(outcome.already_existed, ["c1"]);
}

#[test]
fn replaying_a_full_post_after_a_partial_one_is_a_different_transfer() {
    let mut ledger = ledger();
    accepted(&mut ledger, &[pending("p1", "customer", "merchant", 300)]);
    accepted(&mut ledger, &[post("c1", "p1", 100)]);
    assert_eq!(
        refusal(&mut ledger, post("c1", "p1", 0)),
        TransferError::ExistsWithDifferentFields
    );
}

#[test]
fn an_existing_id_with_any_different_field_is_refused() {
    let mut ledger = ledger();
    let original = posted("t1", "customer", "merchant", 500);
    accepted(&mut ledger, std::slice::from_ref(&original));
    let variants: Vec<TransferRequest> = vec![
        TransferRequest {
            amount: 501,
            ..original.clone()
        },
        TransferRequest {
            debit_account_id: "provider".to_owned(),
            ..original.clone()
        },
        TransferRequest {
            credit_account_id: "provider".to_owned(),
            ..original.clone()
        },
        TransferRequest {
            code: "fee".to_owned(),
            ..original.clone()
        },
        TransferRequest {
            source_id: Some("pay_2".to_owned()),
            ..original.clone()
        },
        TransferRequest {
            kind: TransferKind::Pending,
            ..original.clone()
        },
        TransferRequest {
            asset: USD.to_owned(),
            ..original.clone()
        },
    ];
    for variant in variants {
        assert_eq!(
            refusal(&mut ledger, variant.clone()),
            TransferError::ExistsWithDifferentFields,
            "{variant:?}"
        );
    }
}

#[test]
fn the_same_id_twice_in_a_batch_is_refused() {
    let mut ledger = ledger();
    let error = refused(
        &mut ledger,
        &[
            posted("t1", "customer", "provider", 1),
            posted("t1", "customer", "provider", 1),
        ],
    );
    assert_eq!(
        (error.index, error.error),
        (1, TransferError::DuplicateIdInBatch)
    );

    // Even when both are replays of an existing transfer.
    accepted(&mut ledger, &[posted("t2", "customer", "provider", 1)]);
    let error = refused(
        &mut ledger,
        &[
            posted("t2", "customer", "provider", 1),
            posted("t2", "customer", "provider", 1),
        ],
    );
    assert_eq!(
        (error.index, error.error),
        (1, TransferError::DuplicateIdInBatch)
    );
}

// --------------------------------------------------------- validation

#[test]
fn id_must_not_be_empty() {
    assert_eq!(
        refusal(&mut ledger(), posted("", "customer", "provider", 1)),
        TransferError::IdEmpty
    );
}

#[test]
fn id_is_at_most_128_bytes() {
    let mut ledger = ledger();
    let longest = "x".repeat(TRANSFER_ID_MAX_BYTES);
    accepted(&mut ledger, &[posted(&longest, "customer", "provider", 1)]);
    let too_long = "x".repeat(TRANSFER_ID_MAX_BYTES + 1);
    assert_eq!(
        refusal(&mut ledger, posted(&too_long, "customer", "provider", 1)),
        TransferError::IdTooLong
    );
    // Bytes, not characters: 43 three-byte characters are 129 bytes.
    let wide = "€".repeat(43);
    assert_eq!(
        refusal(&mut ledger, posted(&wide, "customer", "provider", 1)),
        TransferError::IdTooLong
    );
}

#[test]
fn accounts_must_be_different() {
    let mut ledger = ledger();
    assert_eq!(
        refusal(&mut ledger, posted("t1", "customer", "customer", 1)),
        TransferError::AccountsMustBeDifferent
    );
    accepted(&mut ledger, &[pending("p1", "customer", "merchant", 5)]);
    let mut request = request("c1", TransferKind::PostPending, "merchant", "merchant", 0);
    request.pending_id = Some("p1".to_owned());
    assert_eq!(
        refusal(&mut ledger, request),
        TransferError::AccountsMustBeDifferent
    );
}

#[test]
fn amount_must_not_be_zero_for_posted_and_pending() {
    let mut ledger = ledger();
    assert_eq!(
        refusal(&mut ledger, posted("t1", "customer", "provider", 0)),
        TransferError::AmountMustNotBeZero
    );
    assert_eq!(
        refusal(&mut ledger, pending("t1", "customer", "provider", 0)),
        TransferError::AmountMustNotBeZero
    );
}

#[test]
fn accounts_must_exist() {
    let mut ledger = ledger();
    assert_eq!(
        refusal(&mut ledger, posted("t1", "nobody", "provider", 1)),
        TransferError::DebitAccountNotFound
    );
    assert_eq!(
        refusal(&mut ledger, posted("t1", "customer", "nobody", 1)),
        TransferError::CreditAccountNotFound
    );
    assert_eq!(
        refusal(&mut ledger, posted("t1", "", "provider", 1)),
        TransferError::DebitAccountNotFound
    );
}

#[test]
fn assets_must_match() {
    let mut ledger = ledger();
    // Accounts of different assets.
    assert_eq!(
        refusal(&mut ledger, posted("t1", "customer", "dollars", 1)),
        TransferError::AssetMismatch
    );
    // Request asset different from the accounts'.
    let mut in_dollars = posted("t1", "customer", "provider", 1);
    in_dollars.asset = USD.to_owned();
    assert_eq!(
        refusal(&mut ledger, in_dollars),
        TransferError::AssetMismatch
    );
    // A post naming another asset than the pending transfer's.
    accepted(&mut ledger, &[pending("p1", "customer", "merchant", 5)]);
    let mut post_in_dollars = post("c1", "p1", 0);
    post_in_dollars.asset = USD.to_owned();
    assert_eq!(
        refusal(&mut ledger, post_in_dollars),
        TransferError::AssetMismatch
    );
}

#[test]
fn post_and_void_require_a_pending_id() {
    let mut ledger = ledger();
    for kind in [TransferKind::PostPending, TransferKind::VoidPending] {
        for pending_id in [None, Some(String::new())] {
            let mut request = request("c1", kind, "", "", 0);
            request.pending_id = pending_id;
            assert_eq!(
                refusal(&mut ledger, request),
                TransferError::PendingIdRequired
            );
        }
    }
}

#[test]
fn posted_and_pending_must_not_have_a_pending_id() {
    let mut ledger = ledger();
    for kind in [TransferKind::Posted, TransferKind::Pending] {
        for pending_id in ["p1", ""] {
            let mut request = request("t1", kind, "customer", "provider", 1);
            request.pending_id = Some(pending_id.to_owned());
            assert_eq!(
                refusal(&mut ledger, request),
                TransferError::PendingIdMustBeEmpty
            );
        }
    }
}

#[test]
fn the_pending_transfer_must_exist() {
    let mut ledger = ledger();
    assert_eq!(
        refusal(&mut ledger, post("c1", "nothing", 0)),
        TransferError::PendingTransferNotFound
    );
    assert_eq!(
        refusal(&mut ledger, void("v1", "nothing")),
        TransferError::PendingTransferNotFound
    );
}

#[test]
fn a_pending_transfer_without_a_status_in_the_snapshot_is_not_found() {
    let mut ledger = ledger();
    accepted(&mut ledger, &[pending("p1", "customer", "merchant", 5)]);
    let mut snapshot = ledger.full_snapshot();
    snapshot.pending_status.clear();
    let error = apply_batch(&snapshot, &[post("c1", "p1", 0)], 0).expect_err("refused");
    assert_eq!(error.error, TransferError::PendingTransferNotFound);
}

#[test]
fn only_a_pending_transfer_can_be_posted_or_voided() {
    let mut ledger = ledger();
    accepted(&mut ledger, &[posted("t1", "customer", "merchant", 5)]);
    assert_eq!(
        refusal(&mut ledger, post("c1", "t1", 0)),
        TransferError::PendingTransferNotPending
    );
    assert_eq!(
        refusal(&mut ledger, void("v1", "t1")),
        TransferError::PendingTransferNotPending
    );
}

#[test]
fn a_pending_transfer_is_resolved_at_most_once() {
    let mut ledger = ledger();
    accepted(
        &mut ledger,
        &[
            pending("p1", "customer", "merchant", 5),
            pending("p2", "customer", "merchant", 5),
        ],
    );
    accepted(&mut ledger, &[post("c1", "p1", 0), void("v2", "p2")]);
    assert_eq!(
        refusal(&mut ledger, post("c1b", "p1", 0)),
        TransferError::PendingTransferAlreadyPosted
    );
    assert_eq!(
        refusal(&mut ledger, void("v1", "p1")),
        TransferError::PendingTransferAlreadyPosted
    );
    assert_eq!(
        refusal(&mut ledger, post("c2", "p2", 0)),
        TransferError::PendingTransferAlreadyVoided
    );
    assert_eq!(
        refusal(&mut ledger, void("v2b", "p2")),
        TransferError::PendingTransferAlreadyVoided
    );
    // Within one batch too.
    let error = refused(
        &mut ledger,
        &[
            pending("p3", "customer", "merchant", 5),
            void("v3", "p3"),
            post("c3", "p3", 0),
        ],
    );
    assert_eq!(
        (error.index, error.error),
        (2, TransferError::PendingTransferAlreadyVoided)
    );
}

#[test]
fn a_post_may_not_exceed_the_pending_amount() {
    let mut ledger = ledger();
    accepted(&mut ledger, &[pending("p1", "customer", "merchant", 300)]);
    assert_eq!(
        refusal(&mut ledger, post("c1", "p1", 301)),
        TransferError::ExceedsPendingAmount
    );
    accepted(&mut ledger, &[post("c1", "p1", 300)]);
}

#[test]
fn a_void_must_name_no_amount_or_the_pending_amount() {
    let mut ledger = ledger();
    accepted(&mut ledger, &[pending("p1", "customer", "merchant", 300)]);
    for amount in [1, 299, 301] {
        let mut request = void("v1", "p1");
        request.amount = amount;
        assert_eq!(
            refusal(&mut ledger, request),
            TransferError::PendingTransferHasDifferentAmount
        );
    }
}

#[test]
fn a_post_or_void_may_not_name_other_accounts_than_the_pending_transfer() {
    let mut ledger = ledger();
    accepted(&mut ledger, &[pending("p1", "customer", "merchant", 300)]);
    let mut other_debit = post("c1", "p1", 0);
    other_debit.debit_account_id = "provider".to_owned();
    assert_eq!(
        refusal(&mut ledger, other_debit),
        TransferError::PendingTransferHasDifferentAccounts
    );
    let mut other_credit = void("v1", "p1");
    other_credit.credit_account_id = "provider".to_owned();
    assert_eq!(
        refusal(&mut ledger, other_credit),
        TransferError::PendingTransferHasDifferentAccounts
    );
}

// ------------------------------------------------------- balance limits

#[test]
fn debits_must_not_exceed_credits() {
    let mut ledger = ledger();
    assert_eq!(
        refusal(&mut ledger, posted("t1", "merchant", "provider", 1)),
        TransferError::ExceedsCredits
    );
    accepted(&mut ledger, &[posted("in", "customer", "merchant", 100)]);
    // Exactly the credits is allowed.
    accepted(&mut ledger, &[posted("out", "merchant", "provider", 100)]);
    assert_eq!(ledger.account("merchant").posted_credit_balance(), Some(0));
    assert_eq!(
        refusal(&mut ledger, pending("t2", "merchant", "provider", 1)),
        TransferError::ExceedsCredits
    );
}

#[test]
fn pending_debits_count_against_the_limit_and_pending_credits_do_not_help() {
    let mut ledger = ledger();
    accepted(
        &mut ledger,
        &[
            posted("in", "customer", "merchant", 100),
            pending("hold", "merchant", "provider", 60),
        ],
    );
    assert_eq!(
        ledger.account("merchant").available_credit_balance(),
        Some(40)
    );
    assert_eq!(
        refusal(&mut ledger, posted("t1", "merchant", "provider", 41)),
        TransferError::ExceedsCredits
    );
    accepted(
        &mut ledger,
        &[pending("incoming", "customer", "merchant", 1_000)],
    );
    assert_eq!(
        refusal(&mut ledger, posted("t1", "merchant", "provider", 41)),
        TransferError::ExceedsCredits
    );
    // Voiding the hold frees the money it reserved.
    accepted(
        &mut ledger,
        &[
            void("release", "hold"),
            posted("t1", "merchant", "provider", 100),
        ],
    );
}

#[test]
fn credits_must_not_exceed_debits() {
    let mut ledger = Ledger::with_accounts([
        Account::new("payable", KES, credits_limited()),
        Account::new("world", KES, no_limits()),
    ]);
    assert_eq!(
        refusal(&mut ledger, posted("t1", "world", "payable", 1)),
        TransferError::ExceedsDebits
    );
    accepted(&mut ledger, &[posted("t2", "payable", "world", 100)]);
    assert_eq!(
        refusal(&mut ledger, pending("t3", "world", "payable", 101)),
        TransferError::ExceedsDebits
    );
    accepted(&mut ledger, &[pending("t3", "world", "payable", 100)]);
    assert_eq!(
        refusal(&mut ledger, posted("t4", "world", "payable", 1)),
        TransferError::ExceedsDebits
    );
}

// ------------------------------------------------------------ overflow

#[test]
fn overflowing_counters_are_refused_without_panicking() {
    let mut ledger = ledger();
    accepted(
        &mut ledger,
        &[posted("t1", "customer", "provider", Amount::MAX)],
    );
    assert_eq!(
        refusal(&mut ledger, posted("t2", "customer", "merchant", 1)),
        TransferError::Overflow
    );
    assert_eq!(
        refusal(&mut ledger, pending("t2", "merchant", "provider", 1)),
        TransferError::ExceedsCredits
    );
    assert_eq!(
        refusal(&mut ledger, posted("t2", "merchant", "provider", 1)),
        TransferError::ExceedsCredits
    );
    assert_eq!(
        refusal(&mut ledger, posted("t2", "dollars", "provider", 1)),
        TransferError::AssetMismatch
    );
    // Reserving is fine (the pending counters are separate), but posting
    // the reservation would overflow the posted ones.
    accepted(&mut ledger, &[pending("p1", "customer", "provider", 1)]);
    assert_eq!(
        refusal(&mut ledger, post("c1", "p1", 0)),
        TransferError::Overflow
    );
    accepted(
        &mut ledger,
        &[pending("p2", "customer", "provider", Amount::MAX - 1)],
    );
    assert_eq!(
        refusal(&mut ledger, pending("p3", "customer", "provider", 1)),
        TransferError::Overflow
    );
}

#[test]
fn an_overflowing_limit_sum_is_refused_without_panicking() {
    let mut account = Account::new("limited", KES, debits_limited());
    account.credits_posted = Amount::MAX;
    account.debits_pending = Amount::MAX;
    let mut ledger = Ledger::with_accounts([account, Account::new("other", KES, no_limits())]);
    assert_eq!(
        refusal(&mut ledger, posted("t1", "limited", "other", 1)),
        TransferError::Overflow
    );
}

// ---------------------------------------------------------------- errors

/// Every variant. Adding one without listing it here fails to compile.
fn all_errors() -> Vec<TransferError> {
    use TransferError::*;
    let all = vec![
        IdEmpty,
        IdTooLong,
        AccountsMustBeDifferent,
        AmountMustNotBeZero,
        DebitAccountNotFound,
        CreditAccountNotFound,
        AssetMismatch,
        PendingIdRequired,
        PendingIdMustBeEmpty,
        PendingTransferNotFound,
        PendingTransferNotPending,
        PendingTransferAlreadyPosted,
        PendingTransferAlreadyVoided,
        ExceedsPendingAmount,
        ExistsWithDifferentFields,
        DuplicateIdInBatch,
        ExceedsCredits,
        ExceedsDebits,
        Overflow,
        PendingTransferHasDifferentAccounts,
        PendingTransferHasDifferentAmount,
    ];
    for error in &all {
        match error {
            IdEmpty
            | IdTooLong
            | AccountsMustBeDifferent
            | AmountMustNotBeZero
            | DebitAccountNotFound
            | CreditAccountNotFound
            | AssetMismatch
            | PendingIdRequired
            | PendingIdMustBeEmpty
            | PendingTransferNotFound
            | PendingTransferNotPending
            | PendingTransferAlreadyPosted
            | PendingTransferAlreadyVoided
            | ExceedsPendingAmount
            | ExistsWithDifferentFields
            | DuplicateIdInBatch
            | ExceedsCredits
            | ExceedsDebits
            | Overflow
            | PendingTransferHasDifferentAccounts
            | PendingTransferHasDifferentAmount => {}
        }
    }
    all
}

#[test]
fn error_codes_are_distinct_snake_case_and_messages_are_sentences() {
    let errors = all_errors();
    let mut codes: Vec<&str> = errors.iter().map(TransferError::code).collect();
    for code in &codes {
        assert!(
            !code.is_empty()
                && code
                    .chars()
                    .all(|character| character.is_ascii_lowercase() || character == '_'),
            "{code}"
        );
    }
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), errors.len(), "codes must be distinct");
    assert_eq!(TransferError::ExceedsCredits.code(), "exceeds_credits");
    assert_eq!(
        TransferError::ExistsWithDifferentFields.code(),
        "exists_with_different_fields"
    );
    for error in errors {
        assert!(error.to_string().len() > 10, "{error:?}");
    }
}

// ----------------------------------------------------------- balances

#[test]
fn balance_helpers() {
    let mut account = Account::new("a", KES, AccountFlags::default());
    assert_eq!(counters(&account), (0, 0, 0, 0));
    account.credits_posted = 100;
    account.debits_posted = 30;
    account.debits_pending = 50;
    assert_eq!(account.posted_credit_balance(), Some(70));
    assert_eq!(account.posted_debit_balance(), None);
    assert_eq!(account.available_credit_balance(), Some(20));
    account.debits_pending = 71;
    assert_eq!(account.available_credit_balance(), None);
    account.debits_posted = 130;
    assert_eq!(account.posted_debit_balance(), Some(30));
    assert_eq!(account.posted_credit_balance(), None);
}

// -------------------------------------------------------------- verify

/// A ledger with posted, partially posted, voided and open pending
/// transfers in two assets.
fn busy_ledger() -> Ledger {
    let mut ledger = ledger();
    ledger.accounts.insert(
        "dollars2".to_owned(),
        Account::new("dollars2", USD, no_limits()),
    );
    let mut in_dollars = posted("d1", "dollars", "dollars2", 9);
    in_dollars.asset = USD.to_owned();
    accepted(
        &mut ledger,
        &[
            posted("t1", "customer", "merchant", 500),
            pending("p1", "customer", "merchant", 300),
            pending("p2", "merchant", "provider", 200),
            pending("p3", "customer", "provider", 50),
            in_dollars,
        ],
    );
    accepted(&mut ledger, &[post("c1", "p1", 120), void("v2", "p2")]);
    ledger
}

#[test]
fn verify_accepts_a_ledger_built_by_the_engine() {
    let ledger = busy_ledger();
    let report = verify(&ledger.all_accounts(), &ledger.all_transfers());
    assert!(report.ok, "{report:?}");
    assert!(report.mismatched_accounts.is_empty());
    let kes = &report.assets[0];
    assert_eq!(kes.asset, KES);
    assert_eq!((kes.debits_posted, kes.credits_posted), (620, 620));
    assert_eq!((kes.debits_pending, kes.credits_pending), (50, 50));
    assert!(kes.balanced);
    assert_eq!(report.assets[1].asset, USD);
    assert_eq!(report.assets[1].debits_posted, 9);
    assert_eq!(report.assets.len(), 2);
}

#[test]
fn verify_reports_an_account_whose_balances_disagree_with_its_transfers() {
    let ledger = busy_ledger();
    let mut accounts = ledger.all_accounts();
    let merchant = accounts
        .iter_mut()
        .find(|account| account.id == "merchant")
        .expect("merchant");
    merchant.credits_pending += 1;
    let report = verify(&accounts, &ledger.all_transfers());
    assert_eq!(report.mismatched_accounts, ["merchant"]);
    assert!(!report.assets[0].balanced);
    assert!(!report.ok);
}

#[test]
fn verify_reports_balanced_but_wrong_accounts() {
    // Moving a balance between two accounts keeps the totals balanced, so
    // only the recomputation can catch it.
    let ledger = busy_ledger();
    let mut accounts = ledger.all_accounts();
    for account in &mut accounts {
        match account.id.as_str() {
            "merchant" => account.credits_posted -= 10,
            "provider" => account.credits_posted += 10,
            _ => {}
        }
    }
    let report = verify(&accounts, &ledger.all_transfers());
    assert!(report.assets.iter().all(|totals| totals.balanced));
    assert_eq!(report.mismatched_accounts, ["merchant", "provider"]);
    assert!(!report.ok);
}

#[test]
fn verify_reports_a_missing_transfer() {
    let ledger = busy_ledger();
    let transfers: Vec<Transfer> = ledger
        .all_transfers()
        .into_iter()
        .filter(|transfer| transfer.id != "v2")
        .collect();
    let report = verify(&ledger.all_accounts(), &transfers);
    // Without its void, p2 counts as still pending.
    assert_eq!(report.mismatched_accounts, ["merchant", "provider"]);
    assert!(!report.ok);
}

#[test]
fn verify_reports_missing_duplicated_and_cross_asset_accounts() {
    let ledger = busy_ledger();
    let accounts: Vec<Account> = ledger
        .all_accounts()
        .into_iter()
        .filter(|account| account.id != "provider")
        .collect();
    let report = verify(&accounts, &ledger.all_transfers());
    assert_eq!(report.mismatched_accounts, ["provider"]);
    assert!(!report.ok);

    let mut accounts = ledger.all_accounts();
    accounts.push(ledger.account("customer").clone());
    let report = verify(&accounts, &ledger.all_transfers());
    assert!(report.mismatched_accounts.contains(&"customer".to_owned()));
    assert!(!report.ok);

    let mut transfers = ledger.all_transfers();
    for transfer in &mut transfers {
        if transfer.id == "t1" {
            transfer.asset = USD.to_owned();
        }
    }
    let report = verify(&ledger.all_accounts(), &transfers);
    assert_eq!(report.mismatched_accounts, ["customer", "merchant"]);
    assert!(!report.ok);
}

#[test]
fn verify_of_nothing_is_ok() {
    let report = verify(&[], &[]);
    assert!(report.ok);
    assert!(report.assets.is_empty());
}

// ------------------------------------------------------------ serde

#[test]
fn records_round_trip_through_json() {
    let ledger = busy_ledger();
    for transfer in ledger.all_transfers() {
        let json = serde_json::to_string(&transfer).expect("serialize");
        let back: Transfer = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, transfer);
    }
    for account in ledger.all_accounts() {
        let json = serde_json::to_string(&account).expect("serialize");
        let back: Account = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, account);
    }
    let report = verify(&ledger.all_accounts(), &ledger.all_transfers());
    let json = serde_json::to_value(&report).expect("serialize");
    assert_eq!(json["ok"], true);
    assert_eq!(json["assets"][0]["asset"], KES);
}
