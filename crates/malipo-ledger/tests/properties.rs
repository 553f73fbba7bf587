//! Random sequences of random batches (posted, pending, post, void,
//! replays and invalid requests) over a few accounts with random flags,
//! checking the ledger's invariants after every batch.

mod common;

use std::collections::BTreeMap;

use common::{KES, Ledger, USD, replay_of};
use malipo_ledger::{
    Account, AccountFlags, Amount, BatchError, PendingStatus, Transfer, TransferError,
    TransferKind, TransferRequest, apply_batch, apply_batches, verify,
};
use proptest::prelude::*;

/// The accounts of every case. The two "world" accounts never have limits,
/// so that money can flow into the limited ones.
const ACCOUNTS: [(&str, &str); 5] = [
    ("kes_world", KES),
    ("kes_a", KES),
    ("kes_b", KES),
    ("usd_world", USD),
    ("usd_a", USD),
];
const LIMITED: [usize; 3] = [1, 2, 4];

/// One request, described relative to whatever the ledger holds when it is
/// turned into a request (indices are taken modulo what exists).
#[derive(Debug, Clone)]
enum Operation {
    Transfer {
        pending: bool,
        in_kes: bool,
        debit: usize,
        /// The credit account is another one of the same asset, unless the
        /// mistake says otherwise.
        credit_offset: usize,
        amount: Amount,
        mistake: Option<Mistake>,
    },
    Post {
        target: usize,
        any_transfer: bool,
        /// 0 means the full pending amount.
        amount: Amount,
        spell_out: bool,
    },
    Void {
        target: usize,
        any_transfer: bool,
        /// 0: no amount; 1: the pending amount; otherwise that amount.
        amount: Amount,
    },
    Replay {
        target: usize,
        altered: bool,
    },
    RepeatPreviousId,
}

/// Ways to get a `Posted` or `Pending` request wrong.
#[derive(Debug, Clone, Copy)]
enum Mistake {
    SameAccount,
    CrossAsset,
    WrongAsset,
    ZeroAmount,
    EmptyId,
    UnknownAccount,
}

fn mistake() -> impl Strategy<Value = Option<Mistake>> {
    prop_oneof![
        60 => Just(None),
        1 => Just(Some(Mistake::SameAccount)),
        1 => Just(Some(Mistake::CrossAsset)),
        1 => Just(Some(Mistake::WrongAsset)),
        1 => Just(Some(Mistake::ZeroAmount)),
        1 => Just(Some(Mistake::EmptyId)),
        1 => Just(Some(Mistake::UnknownAccount)),
    ]
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        10 => (any::<bool>(), any::<bool>(), any::<usize>(), any::<usize>(), 1..=200u128, mistake())
            .prop_map(|(pending, in_kes, debit, credit_offset, amount, mistake)| {
                Operation::Transfer { pending, in_kes, debit, credit_offset, amount, mistake }
            }),
        3 => (
            any::<usize>(),
            prop::bool::weighted(0.05),
            prop_oneof![2 => Just(0u128), 2 => 1..=100u128, 1 => 1..=250u128],
            any::<bool>(),
        )
            .prop_map(|(target, any_transfer, amount, spell_out)| Operation::Post {
                target,
                any_transfer,
                amount,
                spell_out,
            }),
        2 => (
            any::<usize>(),
            prop::bool::weighted(0.05),
            prop_oneof![6 => Just(0u128), 3 => Just(1u128), 1 => 2..=200u128],
        )
            .prop_map(|(target, any_transfer, amount)| Operation::Void {
                target,
                any_transfer,
                amount,
            }),
        1 => (any::<usize>(), prop::bool::weighted(0.2))
            .prop_map(|(target, altered)| Operation::Replay { target, altered }),
        1 => Just(Operation::RepeatPreviousId),
    ]
}

fn flags() -> impl Strategy<Value = AccountFlags> {
    // Rarely both: an account with both flags can never move.
    (prop::bool::weighted(0.4), prop::bool::weighted(0.25)).prop_map(|(debits, credits)| {
        AccountFlags {
            debits_must_not_exceed_credits: debits,
            credits_must_not_exceed_debits: credits,
        }
    })
}

fn setup(flags: &[AccountFlags; 3]) -> Ledger {
    Ledger::with_accounts(ACCOUNTS.iter().enumerate().map(|(index, (id, asset))| {
        let flags = LIMITED
            .iter()
            .position(|&limited| limited == index)
            .map_or_else(AccountFlags::default, |position| flags[position]);
        Account::new(*id, *asset, flags)
    }))
}

/// Turns operations into requests against the ledger as it stands, with
/// fresh ids from `next_id`.
fn requests_for(
    ledger: &Ledger,
    operations: &[Operation],
    next_id: &mut usize,
) -> Vec<TransferRequest> {
    // Transfers a post or void can name: the ledger's and those requested
    // earlier in this batch (whether or not they will succeed).
    let mut nameable: Vec<Transfer> = ledger.all_transfers();
    let mut requests: Vec<TransferRequest> = Vec::new();
    for operation in operations {
        let mut fresh_id = || {
            *next_id += 1;
            format!("t{next_id}")
        };
        let pick = |target: usize, any_transfer: bool| -> Option<Transfer> {
            let candidates: Vec<&Transfer> = nameable
                .iter()
                .filter(|transfer| any_transfer || transfer.kind == TransferKind::Pending)
                .collect();
            if candidates.is_empty() {
                return None;
            }
            candidates
                .get(target % candidates.len())
                .map(|transfer| (*transfer).clone())
        };
        let request = match operation {
            Operation::Transfer {
                pending,
                in_kes,
                debit,
                credit_offset,
                amount,
                mistake,
            } => {
                let (asset, other_asset) = if *in_kes { (KES, USD) } else { (USD, KES) };
                let of_asset = |asset: &str| -> Vec<&str> {
                    ACCOUNTS
                        .iter()
                        .filter(|(_, account_asset)| *account_asset == asset)
                        .map(|(id, _)| *id)
                        .collect()
                };
                let same_asset = of_asset(asset);
                let debit_position = debit % same_asset.len();
                let credit_position = (debit_position + 1 + credit_offset % (same_asset.len() - 1))
                    % same_asset.len();
                let id = fresh_id();
                let mut request = TransferRequest {
                    source_id: Some(format!("pay_{id}")),
                    id,
                    debit_account_id: same_asset[debit_position].to_owned(),
                    credit_account_id: same_asset[credit_position].to_owned(),
                    amount: *amount,
                    asset: asset.to_owned(),
                    kind: if *pending {
                        TransferKind::Pending
                    } else {
                        TransferKind::Posted
                    },
                    pending_id: None,
                    code: "payment".to_owned(),
                };
                match mistake {
                    None => {}
                    Some(Mistake::SameAccount) => {
                        request.credit_account_id = request.debit_account_id.clone();
                    }
                    Some(Mistake::CrossAsset) => {
                        request.credit_account_id = of_asset(other_asset)[0].to_owned();
                    }
                    Some(Mistake::WrongAsset) => request.asset = other_asset.to_owned(),
                    Some(Mistake::ZeroAmount) => request.amount = 0,
                    Some(Mistake::EmptyId) => request.id = String::new(),
                    Some(Mistake::UnknownAccount) => request.debit_account_id = "nobody".to_owned(),
                }
                request
            }
            Operation::Post {
                target,
                any_transfer,
                amount,
                spell_out,
            } => {
                let target = pick(*target, *any_transfer);
                // Naming a missing transfer is kept rare, as a mistake.
                if target.is_none() && !any_transfer {
                    continue;
                }
                let mut request = common::post(
                    &fresh_id(),
                    target.as_ref().map_or("missing", |target| &target.id),
                    *amount,
                );
                if let (true, Some(target)) = (spell_out, &target) {
                    request.debit_account_id = target.debit_account_id.clone();
                    request.credit_account_id = target.credit_account_id.clone();
                    request.asset = target.asset.clone();
                }
                request
            }
            Operation::Void {
                target,
                any_transfer,
                amount,
            } => {
                let target = pick(*target, *any_transfer);
                // Naming a missing transfer is kept rare, as a mistake.
                if target.is_none() && !any_transfer {
                    continue;
                }
                let mut request = common::void(
                    &fresh_id(),
                    target.as_ref().map_or("missing", |target| &target.id),
                );
                request.amount = match (amount, &target) {
                    (1, Some(target)) => target.amount,
                    _ => *amount,
                };
                request
            }
            Operation::Replay { target, altered } => {
                let existing = ledger.all_transfers();
                let Some(transfer) = existing.get(target % existing.len().max(1)) else {
                    continue;
                };
                let mut request = replay_of(transfer);
                if *altered {
                    request.code = "altered".to_owned();
                }
                request
            }
            Operation::RepeatPreviousId => match requests.last() {
                Some(previous) => previous.clone(),
                None => continue,
            },
        };
        if request.kind == TransferKind::Pending {
            nameable.push(Transfer {
                id: request.id.clone(),
                debit_account_id: request.debit_account_id.clone(),
                credit_account_id: request.credit_account_id.clone(),
                amount: request.amount,
                asset: request.asset.clone(),
                kind: request.kind,
                pending_id: None,
                code: request.code.clone(),
                source_id: None,
                created_ms: 0,
            });
        }
        requests.push(request);
    }
    requests
}

/// The invariants that must hold after every batch.
fn check_invariants(ledger: &Ledger) -> Result<(), TestCaseError> {
    // Per asset, debits equal credits, posted and pending alike.
    let mut totals: BTreeMap<&str, [Amount; 4]> = BTreeMap::new();
    for account in ledger.accounts.values() {
        let sums = totals.entry(&account.asset).or_default();
        sums[0] += account.debits_posted;
        sums[1] += account.credits_posted;
        sums[2] += account.debits_pending;
        sums[3] += account.credits_pending;
    }
    for (
        asset,
        [
            debits_posted,
            credits_posted,
            debits_pending,
            credits_pending,
        ],
    ) in &totals
    {
        prop_assert_eq!(debits_posted, credits_posted, "posted totals of {}", asset);
        prop_assert_eq!(
            debits_pending,
            credits_pending,
            "pending totals of {}",
            asset
        );
    }

    // No account breaks its flags.
    for account in ledger.accounts.values() {
        if account.flags.debits_must_not_exceed_credits {
            prop_assert!(
                account.debits_pending + account.debits_posted <= account.credits_posted,
                "{:?}",
                account
            );
        }
        if account.flags.credits_must_not_exceed_debits {
            prop_assert!(
                account.credits_pending + account.credits_posted <= account.debits_posted,
                "{:?}",
                account
            );
        }
    }

    // Each pending transfer is resolved at most once, and its stored status
    // says how.
    let mut resolutions: BTreeMap<&str, Vec<PendingStatus>> = BTreeMap::new();
    for transfer in ledger.transfers.values() {
        let status = match transfer.kind {
            TransferKind::PostPending => PendingStatus::Posted,
            TransferKind::VoidPending => PendingStatus::Voided,
            TransferKind::Posted | TransferKind::Pending => continue,
        };
        let pending_id = transfer.pending_id.as_deref().unwrap_or_default();
        resolutions.entry(pending_id).or_default().push(status);
    }
    for transfer in ledger.transfers.values() {
        let stored = ledger.pending_status.get(&transfer.id);
        if transfer.kind != TransferKind::Pending {
            prop_assert_eq!(stored, None);
            continue;
        }
        let expected = match resolutions.get(transfer.id.as_str()).map(Vec::as_slice) {
            None => PendingStatus::Pending,
            Some([status]) => *status,
            Some(more) => return Err(TestCaseError::fail(format!("{more:?}"))),
        };
        prop_assert_eq!(stored, Some(&expected), "status of {}", transfer.id);
    }

    // The balances are exactly what the transfers add up to.
    let report = verify(&ledger.all_accounts(), &ledger.all_transfers());
    prop_assert!(report.ok, "{:?}", report);
    Ok(())
}

/// What must hold of a refused batch: the error is the first one, and it is
/// the request's own fault given what came before it.
fn check_refusal(
    ledger: &Ledger,
    requests: &[TransferRequest],
    error: &BatchError,
    now_ms: i64,
) -> Result<(), TestCaseError> {
    prop_assert!(error.index < requests.len());
    let failed = &requests[error.index];
    prop_assert_eq!(&error.id, &failed.id);

    let prefix = &requests[..error.index];
    let mut after_prefix = ledger.clone();
    let prefix_result = after_prefix.apply(prefix, now_ms);
    prop_assert!(prefix_result.is_ok(), "{:?}", prefix_result);

    if error.error == TransferError::DuplicateIdInBatch {
        prop_assert!(prefix.iter().any(|earlier| earlier.id == failed.id));
    } else {
        let alone = after_prefix.apply(std::slice::from_ref(failed), now_ms);
        prop_assert_eq!(alone.map_err(|error| error.error), Err(error.error));
    }
    Ok(())
}

/// What must hold of an accepted batch, before and after persisting it.
fn check_acceptance(
    ledger: &mut Ledger,
    requests: &[TransferRequest],
    outcome: &malipo_ledger::BatchOutcome,
    now_ms: i64,
) -> Result<(), TestCaseError> {
    // Every request is either created or a replay, in request order.
    let mut created = outcome.created.iter().peekable();
    let mut replayed = outcome.already_existed.iter().peekable();
    for request in requests {
        if created
            .peek()
            .is_some_and(|transfer| transfer.id == request.id)
        {
            created.next();
        } else {
            prop_assert_eq!(replayed.next(), Some(&request.id));
            prop_assert!(ledger.transfers.contains_key(&request.id));
        }
    }
    prop_assert!(created.next().is_none() && replayed.next().is_none());
    for transfer in &outcome.created {
        prop_assert_eq!(transfer.created_ms, now_ms);
        prop_assert!(!ledger.transfers.contains_key(&transfer.id));
    }

    // Changed accounts: sorted, unique, and really changed.
    for pair in outcome.changed_accounts.windows(2) {
        prop_assert!(pair[0].id < pair[1].id);
    }
    for account in &outcome.changed_accounts {
        prop_assert_ne!(Some(account), ledger.accounts.get(&account.id));
    }

    ledger.persist(outcome);

    // Replaying the whole batch changes nothing.
    let replay = apply_batch(&ledger.full_snapshot(), requests, now_ms + 1);
    let replay = replay.map_err(|error| TestCaseError::fail(format!("replay: {error}")))?;
    prop_assert!(replay.created.is_empty());
    prop_assert!(replay.changed_accounts.is_empty());
    prop_assert!(replay.pending_status_changes.is_empty());
    let all_ids: Vec<&String> = requests.iter().map(|request| &request.id).collect();
    prop_assert_eq!(replay.already_existed.iter().collect::<Vec<_>>(), all_ids);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_batches_keep_the_ledger_balanced_and_consistent(
        flags in [flags(), flags(), flags()],
        batches in prop::collection::vec(prop::collection::vec(operation(), 1..5), 1..12),
    ) {
        let mut ledger = setup(&flags);
        let mut next_id = 0;
        for (batch_number, operations) in batches.iter().enumerate() {
            let now_ms = 1_000 + batch_number as i64;
            let requests = requests_for(&ledger, operations, &mut next_id);

            // The snapshot the store must load gives the same result as the
            // whole ledger.
            let result = apply_batch(&ledger.snapshot_for(&requests), &requests, now_ms);
            let with_everything = apply_batch(&ledger.full_snapshot(), &requests, now_ms);
            prop_assert_eq!(&result, &with_everything);

            match result {
                Ok(outcome) => check_acceptance(&mut ledger, &requests, &outcome, now_ms)?,
                // Nothing is persisted: the ledger stays as it was.
                Err(error) => check_refusal(&ledger, &requests, &error, now_ms)?,
            }
            check_invariants(&ledger)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Group commit: many callers' batches applied in one go give each the
    /// verdict it would have had alone, in order, and leave the ledger
    /// exactly as applying and persisting them one by one would.
    #[test]
    fn batches_applied_together_equal_batches_applied_one_by_one(
        flags in [flags(), flags(), flags()],
        warmup in prop::collection::vec(operation(), 0..6),
        groups in prop::collection::vec(prop::collection::vec(operation(), 1..5), 1..8),
    ) {
        let mut ledger = setup(&flags);
        let mut next_id = 0;
        let warmup = requests_for(&ledger, &warmup, &mut next_id);
        let _ = ledger.apply(&warmup, 1_000);
        let groups: Vec<Vec<TransferRequest>> = groups
            .iter()
            .map(|operations| requests_for(&ledger, operations, &mut next_id))
            .collect();
        let now_ms = 2_000;

        let mut one_by_one = ledger.clone();
        let expected: Vec<Result<(), BatchError>> = groups
            .iter()
            .map(|requests| one_by_one.apply(requests, now_ms).map(|_| ()))
            .collect();

        let everything: Vec<TransferRequest> = groups.iter().flatten().cloned().collect();
        let slices: Vec<&[TransferRequest]> = groups.iter().map(Vec::as_slice).collect();
        let (merged, verdicts) = apply_batches(&ledger.snapshot_for(&everything), &slices, now_ms);
        prop_assert_eq!(&verdicts, &expected);
        let mut together = ledger.clone();
        together.persist(&merged);
        prop_assert_eq!(&together, &one_by_one);
        check_invariants(&together)?;
    }
}
