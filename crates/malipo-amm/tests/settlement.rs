//! The movements settle as ledger batches, and the ledger then agrees with
//! the pool: the way the gateway is meant to drive a pool (apply the
//! operation to a copy, settle its movements as one batch, keep the copy
//! only if the ledger accepts).
//!
//! Accounts: a trader's or provider's account per unit may not go below
//! zero, a pool's reserve account neither, and a pool's share issuer may not
//! take back more shares than it issued. So the ledger refuses, on its own,
//! a burn of shares someone does not hold.

mod common;

use std::collections::BTreeMap;

use common::{amount, asset, no_deadline, pool};
use malipo_amm::{
    AddLiquidity, Movement, Party, Pool, RemoveLiquidity, RouteRequest, Unit, Venue, Venues,
};
use malipo_ledger::{
    Account, AccountFlags, LedgerSnapshot, TransferKind, TransferRequest, apply_batch, verify,
};
use proptest::prelude::*;

const WORLD: &str = "world";

/// An in-memory ledger: the accounts and every transfer so far.
#[derive(Default)]
struct Ledger {
    accounts: BTreeMap<String, Account>,
    transfers: Vec<malipo_ledger::Transfer>,
    batches: usize,
}

fn ledger_asset(unit: &Unit) -> String {
    match unit {
        Unit::Asset(asset) => asset.code().to_owned(),
        Unit::Shares(pool) => format!("lp.{pool}"),
    }
}

fn account_id(party: &Party, unit: &Unit) -> String {
    let owner = match party {
        Party::Owner(name) => format!("owner.{name}"),
        Party::Pool(pool) => format!("pool.{pool}"),
        Party::ShareIssuer(pool) => format!("issuer.{pool}"),
        Party::LockedShares(pool) => format!("locked.{pool}"),
        Party::Book(book) => format!("book.{book}"),
    };
    format!("{owner}.{}", ledger_asset(unit))
}

fn flags(party: &Party) -> AccountFlags {
    match party {
        // Issues shares: debits grow with every mint; it may not take back
        // more than it issued.
        Party::ShareIssuer(_) => AccountFlags {
            debits_must_not_exceed_credits: false,
            credits_must_not_exceed_debits: true,
        },
        // Everyone else holds what they were credited, and no more.
        _ => AccountFlags {
            debits_must_not_exceed_credits: true,
            credits_must_not_exceed_debits: false,
        },
    }
}

impl Ledger {
    fn account(&mut self, party: &Party, unit: &Unit) -> String {
        let id = account_id(party, unit);
        self.accounts
            .entry(id.clone())
            .or_insert_with(|| Account::new(id.clone(), ledger_asset(unit), flags(party)));
        id
    }

    /// Gives an owner some of an asset from the outside world.
    fn fund(&mut self, owner: &str, unit: Unit, amount: u128) {
        let world = format!("{WORLD}.{}", ledger_asset(&unit));
        self.accounts.entry(world.clone()).or_insert_with(|| {
            Account::new(world.clone(), ledger_asset(&unit), AccountFlags::default())
        });
        let to = self.account(&Party::Owner(owner.into()), &unit);
        self.settle_requests(vec![request(
            format!("fund.{}", self.batches),
            world,
            to,
            &unit,
            amount,
        )])
        .expect("funding never fails");
    }

    /// Settles one operation's movements as one batch, all or nothing.
    fn settle(&mut self, movements: &[Movement]) -> Result<(), malipo_ledger::BatchError> {
        let batch = self.batches;
        let requests = movements
            .iter()
            .enumerate()
            .map(|(index, movement)| {
                let debit = self.account(&movement.from, &movement.unit);
                let credit = self.account(&movement.to, &movement.unit);
                request(
                    format!("op.{batch}.{index}"),
                    debit,
                    credit,
                    &movement.unit,
                    movement.amount,
                )
            })
            .collect();
        self.settle_requests(requests)
    }

    fn settle_requests(
        &mut self,
        requests: Vec<TransferRequest>,
    ) -> Result<(), malipo_ledger::BatchError> {
        self.batches += 1;
        let snapshot = LedgerSnapshot {
            accounts: self.accounts.clone(),
            ..LedgerSnapshot::default()
        };
        let outcome = apply_batch(&snapshot, &requests, 0)?;
        for account in outcome.changed_accounts {
            self.accounts.insert(account.id.clone(), account);
        }
        self.transfers.extend(outcome.created);
        Ok(())
    }

    fn credit_balance(&self, party: &Party, unit: &Unit) -> u128 {
        self.accounts
            .get(&account_id(party, unit))
            .map_or(0, |a| a.credits_posted - a.debits_posted)
    }

    fn debit_balance(&self, party: &Party, unit: &Unit) -> u128 {
        self.accounts
            .get(&account_id(party, unit))
            .map_or(0, |a| a.debits_posted - a.credits_posted)
    }

    /// The ledger agrees with the pool, and with itself.
    fn assert_agrees_with(&self, pool: &Pool) {
        let id = pool.id().clone();
        for (asset, reserve) in pool.assets().into_iter().zip(pool.reserves()) {
            assert_eq!(
                self.credit_balance(&Party::Pool(id.clone()), &Unit::Asset(asset)),
                reserve
            );
        }
        let shares = Unit::Shares(id.clone());
        assert_eq!(
            self.debit_balance(&Party::ShareIssuer(id.clone()), &shares),
            pool.shares_total()
        );
        assert_eq!(
            self.credit_balance(&Party::LockedShares(id), &shares),
            malipo_amm::MINIMUM_LIQUIDITY
        );
        let accounts: Vec<_> = self.accounts.values().cloned().collect();
        let report = verify(&accounts, &self.transfers);
        assert!(report.ok, "{report:?}");
    }
}

fn request(
    id: String,
    debit: String,
    credit: String,
    unit: &Unit,
    amount: u128,
) -> TransferRequest {
    TransferRequest {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        asset: ledger_asset(unit),
        kind: TransferKind::Posted,
        pending_id: None,
        code: "amm".into(),
        source_id: None,
    }
}

#[derive(Debug, Clone)]
enum Operation {
    Swap {
        who: usize,
        first_in: bool,
        amount: u128,
    },
    Add {
        who: usize,
        amounts: [u128; 2],
    },
    Remove {
        who: usize,
        shares: u128,
    },
}

const PEOPLE: [&str; 3] = ["alice", "bob", "founder"];

fn operation() -> impl Strategy<Value = Operation> {
    let amount = prop_oneof![1..10_000u128, 1..10_000_000_000u128];
    prop_oneof![
        (0..3usize, any::<bool>(), amount.clone()).prop_map(|(who, first_in, amount)| {
            Operation::Swap {
                who,
                first_in,
                amount,
            }
        }),
        (0..3usize, amount.clone(), amount.clone()).prop_map(|(who, a, b)| Operation::Add {
            who,
            amounts: [a, b]
        }),
        (0..3usize, amount).prop_map(|(who, shares)| Operation::Remove { who, shares }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_ledger_agrees_with_the_pool_after_every_operation(
        operations in prop::collection::vec(operation(), 1..30),
    ) {
        let (kes, usd) = (asset("kes"), asset("usd"));
        let mut ledger = Ledger::default();
        for who in PEOPLE {
            ledger.fund(who, Unit::Asset(kes), 100_000_000_000);
            ledger.fund(who, Unit::Asset(usd), 100_000_000_000);
        }
        let (mut pool, created) = pool("p", (kes, 50_000_000), (usd, 20_000_000), 30);
        ledger.settle(&created.movements).expect("the founder has the funds");
        ledger.assert_agrees_with(&pool);

        for operation in operations {
            let mut next = pool.clone();
            let [a, b] = next.assets();
            let movements = match operation {
                Operation::Swap { who, first_in, amount } => next
                    .swap_exact_in(malipo_amm::SwapExactIn {
                        trader: PEOPLE[who].into(),
                        asset_in: if first_in { a } else { b },
                        amount_in: amount,
                        min_amount_out: 0,
                        deadline: no_deadline(),
                    })
                    .map(|r| r.movements),
                Operation::Add { who, amounts: [x, y] } => next
                    .add_liquidity(AddLiquidity {
                        provider: PEOPLE[who].into(),
                        desired: [amount(a, x), amount(b, y)],
                        minimum: [amount(a, 0), amount(b, 0)],
                        deadline: no_deadline(),
                    })
                    .map(|r| r.movements),
                Operation::Remove { who, shares } => next
                    .remove_liquidity(RemoveLiquidity {
                        provider: PEOPLE[who].into(),
                        shares,
                        minimum: [amount(a, 0), amount(b, 0)],
                        deadline: no_deadline(),
                    })
                    .map(|r| r.movements),
            };
            let Ok(movements) = movements else { continue };
            match ledger.settle(&movements) {
                Ok(()) => pool = next,
                // Only a burn of shares the provider does not hold may be
                // refused: every other operation is covered by the funding.
                Err(error) => prop_assert!(
                    matches!(operation, Operation::Remove { .. }),
                    "{:?} refused by the ledger: {:?}", operation, error
                ),
            }
            ledger.assert_agrees_with(&pool);
        }
    }
}

#[test]
fn a_route_settles_as_one_batch() {
    let (kes, usd, usdc) = (asset("kes"), asset("usd"), asset("usdc"));
    let mut ledger = Ledger::default();
    ledger.fund("founder", Unit::Asset(kes), 10_000_000_000);
    ledger.fund("founder", Unit::Asset(usd), 10_000_000_000);
    ledger.fund("founder", Unit::Asset(usdc), 10_000_000_000);
    ledger.fund("cus_1", Unit::Asset(kes), 1_000_000);
    let mut pools = Vec::new();
    for (id, a, b) in [
        ("kes_usdc", kes, usdc),
        ("usd_usdc", usd, usdc),
        ("kes_usd", kes, usd),
    ] {
        let (created, receipt) = pool(id, (a, 100_000_000), (b, 100_000_000), 30);
        ledger.settle(&receipt.movements).expect("funded");
        pools.push(Venue::from(created));
    }
    let mut venues = Venues::new(pools).expect("venues");
    let route = venues
        .quote(&RouteRequest {
            asset_in: kes,
            asset_out: usd,
            amount_in: 1_000_000,
            min_amount_out: 0,
            max_hops: 3,
            split: true,
        })
        .expect("route");
    assert_eq!(route.parts.len(), 2);
    let execution = venues
        .execute(&route, route.amount_out, "cus_1", no_deadline())
        .expect("executes");
    ledger.settle(&execution.movements).expect("one batch");
    let customer = Party::Owner("cus_1".into());
    assert_eq!(ledger.credit_balance(&customer, &Unit::Asset(kes)), 0);
    assert_eq!(
        ledger.credit_balance(&customer, &Unit::Asset(usd)),
        route.amount_out
    );
    for venue in venues.venues() {
        let Venue::Pool(pool) = venue else {
            unreachable!()
        };
        for (asset, reserve) in pool.assets().into_iter().zip(pool.reserves()) {
            assert_eq!(
                ledger.credit_balance(&Party::Pool(pool.id().clone()), &Unit::Asset(asset)),
                reserve
            );
        }
    }
    // Spending it again is refused by the ledger as a whole batch.
    let again = venues
        .quote(&RouteRequest {
            asset_in: kes,
            asset_out: usd,
            amount_in: 1_000_000,
            min_amount_out: 0,
            max_hops: 3,
            split: false,
        })
        .expect("route");
    let mut copy = venues.clone();
    let execution = copy
        .execute(&again, 0, "cus_1", no_deadline())
        .expect("the pools accept");
    assert!(ledger.settle(&execution.movements).is_err());
}
