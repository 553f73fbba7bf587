//! Which ledger accounts and transfers each step of a payment's or a
//! refund's life produces. Pure functions: the use cases post the result in
//! the transaction of the state change.
//!
//! Accounts, one per (mode, owner, asset, purpose):
//! - `{mode}/connector/{name}/{asset}/clearing`: money the provider owes us
//!   (it goes "negative" as payments succeed: debits exceed credits).
//! - `{mode}/merchant/{id}/{asset}/available`: what the merchant has; it can
//!   never go below zero (`debits_must_not_exceed_credits`).
//! - `{mode}/platform/{asset}/fees`: the platform's fee revenue, never below zero.
//! - `{mode}/platform/{asset}/voucher_funding`: the value the platform put
//!   behind the vouchers it issued (it goes "negative" as batches are
//!   issued, and back as unused value expires).
//! - `{mode}/platform/{asset}/vouchers_outstanding`: the liability of
//!   issued vouchers not yet redeemed or expired; never below zero
//!   (`debits_must_not_exceed_credits`), so no redemption can take more
//!   than was issued.
//!
//! - `{mode}/customer/{id}/{asset}/available` and `…/held`: a customer's
//!   balance, and what its open orders hold (see `trading.rs`); never below
//!   zero.
//! - `{mode}/platform/{asset}/trading_fees`: the venue's fee revenue.
//! - `test/platform/{asset}/test_funding`: where test-mode credits come
//!   from (it goes "negative").
//! - `{mode}/platform/{asset}/fx`: the platform's currency position from
//!   conversion payments (no limit either way).
//!
//! - `{mode}/merchant/{id}/{asset}/payouts_in_transit`: the merchant's
//!   payouts sent and not yet paid; never below zero.
//!
//! Payouts: creating one moves its amount from the merchant's available
//! balance to its payouts in transit (`po_….transit`, refused when the
//! balance can't cover it); paid moves it on to the connector's clearing
//! account (`po_….paid`), failed back to available (`po_….return`).
//!
//! Vouchers: issuing a batch moves `count × face_value` from funding to
//! outstanding (`vb_….issue`); a voucher payment is a payment through the
//! `voucher` connector (clearing to merchant and fees, posted at once) whose
//! clearing is settled by the voucher in the same batch (`pay_….voucher`:
//! outstanding to clearing); the expiry job moves what an expired voucher
//! still held back from outstanding to funding (`vch_….expire`).
//!
//! Conversion payments (paid in one asset, credited in another at a locked
//! quote): the same steps (reserve, post, void) with three legs in one
//! batch: the whole amount from the connector's clearing account to the
//! platform's FX account in the paid asset (`pay_….fx`), and `net` and
//! `fee` of the converted amount from the platform's FX account in the
//! credited asset to the merchant and the fees (`pay_….net`, `pay_….fee`).
//! Each asset balances on its own. A voucher refund gives the value back
//! to the liability (`re_….voucher`: clearing to outstanding).
//!
//! A payment moves `net` from clearing to the merchant and `fee` from clearing
//! to the platform. While the provider is processing, both are pending
//! transfers (the merchant's pending balance); success posts them, failure or
//! expiry voids them. An authorisation (manual capture) is reserved the same
//! way for the whole amount; a capture posts the net and fee of the
//! captured amount from those reservations (the ledger releases the rest,
//! TigerBeetle's partial post), and a cancel or expiry voids them. A refund reverses the entries in proportion (see
//! `malipo_core::refund::fee_share_of_refund`), reserved first and posted
//! when the provider confirms. Transfer ids derive from the object id, so a
//! retried step can never post twice.

use malipo_core::Mode;
use malipo_ledger::{Account, AccountFlags, TransferKind, TransferRequest};
use malipo_store::{PaymentRecord, PayoutRecord};

fn mode_of(livemode: bool) -> &'static str {
    Mode::from_livemode(livemode).as_str()
}

pub fn clearing_account(livemode: bool, connector: &str, asset: &str) -> Account {
    Account::new(
        format!(
            "{}/connector/{connector}/{asset}/clearing",
            mode_of(livemode)
        ),
        asset.to_owned(),
        AccountFlags::default(),
    )
}

pub fn merchant_account(livemode: bool, merchant_id: &str, asset: &str) -> Account {
    Account::new(
        format!(
            "{}/merchant/{merchant_id}/{asset}/available",
            mode_of(livemode)
        ),
        asset.to_owned(),
        AccountFlags {
            debits_must_not_exceed_credits: true,
            credits_must_not_exceed_debits: false,
        },
    )
}

/// The prefix shared by all of a merchant's accounts in a mode.
pub fn merchant_account_prefix(livemode: bool, merchant_id: &str) -> String {
    format!("{}/merchant/{merchant_id}/", mode_of(livemode))
}

pub fn fees_account(livemode: bool, asset: &str) -> Account {
    Account::new(
        format!("{}/platform/{asset}/fees", mode_of(livemode)),
        asset.to_owned(),
        AccountFlags {
            debits_must_not_exceed_credits: true,
            credits_must_not_exceed_debits: false,
        },
    )
}

pub fn voucher_funding_account(livemode: bool, asset: &str) -> Account {
    Account::new(
        format!("{}/platform/{asset}/voucher_funding", mode_of(livemode)),
        asset.to_owned(),
        AccountFlags::default(),
    )
}

pub fn vouchers_outstanding_account(livemode: bool, asset: &str) -> Account {
    Account::new(
        format!(
            "{}/platform/{asset}/vouchers_outstanding",
            mode_of(livemode)
        ),
        asset.to_owned(),
        AccountFlags {
            debits_must_not_exceed_credits: true,
            credits_must_not_exceed_debits: false,
        },
    )
}

/// `{mode}/platform/{asset}/fx`: the platform's position in an asset from
/// conversions. It takes what customers paid in one asset and pays what
/// merchants are credited in another, so it goes "negative" in the asset
/// credited and "positive" in the asset paid; no limit either way.
pub fn fx_account(livemode: bool, asset: &str) -> Account {
    Account::new(
        format!("{}/platform/{asset}/fx", mode_of(livemode)),
        asset.to_owned(),
        AccountFlags::default(),
    )
}

/// The clearing, merchant and fee accounts of a payment in its own currency.
fn own_currency_accounts(record: &PaymentRecord) -> [Account; 3] {
    let payment = &record.payment;
    [
        clearing_account(payment.livemode, &payment.connector, &payment.currency),
        merchant_account(payment.livemode, &record.merchant_id, &payment.currency),
        fees_account(payment.livemode, &payment.currency),
    ]
}

/// The accounts a payment touches, to create before posting: its clearing,
/// merchant and fee accounts, or for a conversion payment the clearing
/// account and the FX account in the paid currency, then the FX, merchant
/// and fee accounts in the credited one.
pub fn payment_accounts(record: &PaymentRecord) -> Vec<Account> {
    let payment = &record.payment;
    match &payment.conversion {
        None => own_currency_accounts(record).to_vec(),
        Some(conversion) => vec![
            clearing_account(payment.livemode, &payment.connector, &payment.currency),
            fx_account(payment.livemode, &payment.currency),
            fx_account(payment.livemode, &conversion.to_currency),
            merchant_account(
                payment.livemode,
                &record.merchant_id,
                &conversion.to_currency,
            ),
            fees_account(payment.livemode, &conversion.to_currency),
        ],
    }
}

struct Leg {
    suffix: &'static str,
    debit: Account,
    credit: Account,
    amount: u128,
    code: &'static str,
}

fn payment_legs(record: &PaymentRecord) -> Vec<Leg> {
    let payment = &record.payment;
    if let Some(conversion) = &payment.conversion {
        // Both legs of the conversion in one batch: the paid currency
        // into the platform's FX position, the credited currency out of it.
        let to = conversion.to_currency.as_str();
        let fx_to = fx_account(payment.livemode, to);
        return vec![
            Leg {
                suffix: "fx",
                debit: clearing_account(payment.livemode, &payment.connector, &payment.currency),
                credit: fx_account(payment.livemode, &payment.currency),
                amount: u128::from(payment.amount),
                code: "fx_in",
            },
            Leg {
                suffix: "net",
                debit: fx_to.clone(),
                credit: merchant_account(payment.livemode, &record.merchant_id, to),
                amount: u128::from(conversion.net),
                code: "payment",
            },
            Leg {
                suffix: "fee",
                debit: fx_to,
                credit: fees_account(payment.livemode, to),
                amount: u128::from(conversion.fee),
                code: "fee",
            },
        ];
    }
    let [clearing, merchant, fees] = own_currency_accounts(record);
    vec![
        Leg {
            suffix: "net",
            debit: clearing.clone(),
            credit: merchant,
            amount: u128::from(payment.net),
            code: "payment",
        },
        Leg {
            suffix: "fee",
            debit: clearing,
            credit: fees,
            amount: u128::from(payment.fee),
            code: "fee",
        },
    ]
}

fn request(
    id: String,
    leg: &Leg,
    kind: TransferKind,
    pending_id: Option<String>,
    source_id: &str,
) -> TransferRequest {
    TransferRequest {
        id,
        debit_account_id: leg.debit.id.clone(),
        credit_account_id: leg.credit.id.clone(),
        amount: if pending_id.is_some() { 0 } else { leg.amount },
        asset: leg.debit.asset.clone(),
        kind,
        pending_id,
        code: leg.code.to_owned(),
        source_id: Some(source_id.to_owned()),
    }
}

/// The payment succeeded without having reserved funds: post at once.
pub fn payment_posted(record: &PaymentRecord) -> Vec<TransferRequest> {
    let id = &record.payment.id;
    payment_legs(record)
        .iter()
        .filter(|leg| leg.amount > 0)
        .map(|leg| {
            request(
                format!("{id}.{}", leg.suffix),
                leg,
                TransferKind::Posted,
                None,
                id,
            )
        })
        .collect()
}

/// The payment started processing: reserve the amounts as pending.
pub fn payment_reserved(record: &PaymentRecord) -> Vec<TransferRequest> {
    let id = &record.payment.id;
    payment_legs(record)
        .iter()
        .filter(|leg| leg.amount > 0)
        .map(|leg| TransferRequest {
            amount: leg.amount,
            ..request(
                format!("{id}.{}.pending", leg.suffix),
                leg,
                TransferKind::Pending,
                None,
                id,
            )
        })
        .collect()
}

/// The reserved payment succeeded (`post`) or did not (`void`).
pub fn payment_reservation_released(record: &PaymentRecord, post: bool) -> Vec<TransferRequest> {
    let id = &record.payment.id;
    let (kind, step) = if post {
        (TransferKind::PostPending, "post")
    } else {
        (TransferKind::VoidPending, "void")
    };
    payment_legs(record)
        .iter()
        .filter(|leg| leg.amount > 0)
        .map(|leg| {
            request(
                format!("{id}.{}.{step}", leg.suffix),
                leg,
                kind,
                Some(format!("{id}.{}.pending", leg.suffix)),
                id,
            )
        })
        .collect()
}

/// An authorisation reserved with [`payment_reserved`] (the record still
/// holds its fee and net) was captured for `net + fee`: each reservation
/// posts its captured part, or is voided when that part is 0 (a post of 0
/// would mean "all of it").
pub fn payment_captured(record: &PaymentRecord, net: u64, fee: u64) -> Vec<TransferRequest> {
    let id = &record.payment.id;
    payment_legs(record)
        .iter()
        .filter(|leg| leg.amount > 0)
        .map(|leg| {
            let captured = u128::from(if leg.suffix == "net" { net } else { fee });
            let pending_id = Some(format!("{id}.{}.pending", leg.suffix));
            if captured == 0 {
                request(
                    format!("{id}.{}.void", leg.suffix),
                    leg,
                    TransferKind::VoidPending,
                    pending_id,
                    id,
                )
            } else {
                TransferRequest {
                    amount: captured,
                    ..request(
                        format!("{id}.{}.post", leg.suffix),
                        leg,
                        TransferKind::PostPending,
                        pending_id,
                        id,
                    )
                }
            }
        })
        .collect()
}

/// The legs of a refund: the merchant gives back `amount - fee_share`, the
/// platform gives back `fee_share`, both to the connector's clearing account.
fn refund_legs(record: &PaymentRecord, amount: u64, fee_share: u64) -> Vec<Leg> {
    let [clearing, merchant, fees] = own_currency_accounts(record);
    vec![
        Leg {
            suffix: "net",
            debit: merchant,
            credit: clearing.clone(),
            amount: u128::from(amount.saturating_sub(fee_share)),
            code: "refund",
        },
        Leg {
            suffix: "fee",
            debit: fees,
            credit: clearing,
            amount: u128::from(fee_share),
            code: "fee_refund",
        },
    ]
}

/// A refund was asked for: reserve the money it will take back.
pub fn refund_reserved(
    record: &PaymentRecord,
    refund_id: &str,
    amount: u64,
    fee_share: u64,
) -> Vec<TransferRequest> {
    refund_legs(record, amount, fee_share)
        .iter()
        .filter(|leg| leg.amount > 0)
        .map(|leg| TransferRequest {
            amount: leg.amount,
            ..request(
                format!("{refund_id}.{}.pending", leg.suffix),
                leg,
                TransferKind::Pending,
                None,
                refund_id,
            )
        })
        .collect()
}

/// The provider confirmed (`post`) or refused (`void`) the refund.
pub fn refund_reservation_released(
    record: &PaymentRecord,
    refund_id: &str,
    amount: u64,
    fee_share: u64,
    post: bool,
) -> Vec<TransferRequest> {
    let (kind, step) = if post {
        (TransferKind::PostPending, "post")
    } else {
        (TransferKind::VoidPending, "void")
    };
    refund_legs(record, amount, fee_share)
        .iter()
        .filter(|leg| leg.amount > 0)
        .map(|leg| {
            request(
                format!("{refund_id}.{}.{step}", leg.suffix),
                leg,
                kind,
                Some(format!("{refund_id}.{}.pending", leg.suffix)),
                refund_id,
            )
        })
        .collect()
}

fn posted(
    id: String,
    debit: &Account,
    credit: &Account,
    amount: u128,
    code: &str,
    source_id: &str,
) -> TransferRequest {
    TransferRequest {
        id,
        debit_account_id: debit.id.clone(),
        credit_account_id: credit.id.clone(),
        amount,
        asset: debit.asset.clone(),
        kind: TransferKind::Posted,
        pending_id: None,
        code: code.to_owned(),
        source_id: Some(source_id.to_owned()),
    }
}

/// A voucher batch was issued: its whole value becomes a liability.
pub fn voucher_batch_issued(
    livemode: bool,
    asset: &str,
    batch_id: &str,
    total: u128,
) -> ([Account; 2], TransferRequest) {
    let funding = voucher_funding_account(livemode, asset);
    let outstanding = vouchers_outstanding_account(livemode, asset);
    let transfer = posted(
        format!("{batch_id}.issue"),
        &funding,
        &outstanding,
        total,
        "voucher_issue",
        batch_id,
    );
    ([funding, outstanding], transfer)
}

/// A voucher paid for `record` (a payment through the `voucher`
/// connector): the liability settles the connector's clearing account.
pub fn voucher_redeemed(record: &PaymentRecord) -> (Account, TransferRequest) {
    let payment = &record.payment;
    let outstanding = vouchers_outstanding_account(payment.livemode, &payment.currency);
    let clearing = clearing_account(payment.livemode, &payment.connector, &payment.currency);
    let transfer = posted(
        format!("{}.voucher", payment.id),
        &outstanding,
        &clearing,
        u128::from(payment.amount),
        "voucher_redemption",
        &payment.id,
    );
    (outstanding, transfer)
}

/// A refund of the voucher payment `record` gave `amount` back to its
/// voucher: the connector's clearing account (refilled by the refund's own
/// legs) owes it back to the voucher liability.
pub fn voucher_refunded(
    record: &PaymentRecord,
    refund_id: &str,
    amount: u64,
) -> (Account, TransferRequest) {
    let payment = &record.payment;
    let outstanding = vouchers_outstanding_account(payment.livemode, &payment.currency);
    let clearing = clearing_account(payment.livemode, &payment.connector, &payment.currency);
    let transfer = posted(
        format!("{refund_id}.voucher"),
        &clearing,
        &outstanding,
        u128::from(amount),
        "voucher_refund",
        refund_id,
    );
    (outstanding, transfer)
}

/// A voucher expired holding `remaining`: the liability is released.
pub fn voucher_expired(
    livemode: bool,
    asset: &str,
    voucher_id: &str,
    remaining: u128,
) -> ([Account; 2], TransferRequest) {
    let funding = voucher_funding_account(livemode, asset);
    let outstanding = vouchers_outstanding_account(livemode, asset);
    let transfer = posted(
        format!("{voucher_id}.expire"),
        &outstanding,
        &funding,
        remaining,
        "voucher_expiry",
        voucher_id,
    );
    ([funding, outstanding], transfer)
}

/// The end of every payouts-in-transit account's id.
pub const PAYOUTS_IN_TRANSIT_SUFFIX: &str = "/payouts_in_transit";

/// `{mode}/merchant/{id}/{asset}/payouts_in_transit`: a merchant's payouts
/// sent and not yet reported paid; never below zero.
pub fn payouts_in_transit_account(livemode: bool, merchant_id: &str, asset: &str) -> Account {
    Account::new(
        format!(
            "{}/merchant/{merchant_id}/{asset}{PAYOUTS_IN_TRANSIT_SUFFIX}",
            mode_of(livemode)
        ),
        asset.to_owned(),
        AccountFlags {
            debits_must_not_exceed_credits: true,
            credits_must_not_exceed_debits: false,
        },
    )
}

/// The accounts a payout touches: the available balance that pays it (the
/// merchant's, or the customer's for a withdrawal), the merchant's payouts
/// in transit, and the clearing account of the payout's connector.
pub fn payout_accounts(record: &PayoutRecord) -> [Account; 3] {
    let payout = &record.payout;
    let source = match &payout.customer {
        Some(customer) => customer_account(payout.livemode, customer, &payout.currency, false),
        None => merchant_account(payout.livemode, &record.merchant_id, &payout.currency),
    };
    [
        source,
        payouts_in_transit_account(payout.livemode, &record.merchant_id, &payout.currency),
        clearing_account(payout.livemode, &payout.connector, &payout.currency),
    ]
}

/// A payout was created: its amount leaves the available balance (refused
/// by the ledger when the balance can't cover it) for the in-transit account.
pub fn payout_sent(record: &PayoutRecord) -> TransferRequest {
    let [available, in_transit, _] = payout_accounts(record);
    let id = &record.payout.id;
    posted(
        format!("{id}.transit"),
        &available,
        &in_transit,
        u128::from(record.payout.amount),
        "payout",
        id,
    )
}

/// The provider paid the recipient: the amount leaves Malipo through the
/// provider (its clearing account: the provider owes us that much less).
pub fn payout_paid(record: &PayoutRecord) -> TransferRequest {
    let [_, in_transit, clearing] = payout_accounts(record);
    let id = &record.payout.id;
    posted(
        format!("{id}.paid"),
        &in_transit,
        &clearing,
        u128::from(record.payout.amount),
        "payout",
        id,
    )
}

/// The payout failed: its amount returns to the available balance it came
/// from (the customer's, for a withdrawal).
pub fn payout_returned(record: &PayoutRecord) -> TransferRequest {
    let [available, in_transit, _] = payout_accounts(record);
    let id = &record.payout.id;
    posted(
        format!("{id}.return"),
        &in_transit,
        &available,
        u128::from(record.payout.amount),
        "payout_failure",
        id,
    )
}

/// Ends the id of a customer's account that open orders hold.
pub const CUSTOMER_HELD_SUFFIX: &str = "/held";

/// A customer's `available` (or, with `held`, its held) account for one
/// asset; neither can go below zero.
pub fn customer_account(livemode: bool, customer_id: &str, asset: &str, held: bool) -> Account {
    let purpose = if held { "held" } else { "available" };
    Account::new(
        format!(
            "{}/customer/{customer_id}/{asset}/{purpose}",
            mode_of(livemode)
        ),
        asset.to_owned(),
        AccountFlags {
            debits_must_not_exceed_credits: true,
            credits_must_not_exceed_debits: false,
        },
    )
}

/// The prefix shared by all of a customer's accounts.
pub fn customer_account_prefix(livemode: bool, customer_id: &str) -> String {
    format!("{}/customer/{customer_id}/", mode_of(livemode))
}

/// The venue's fee revenue in one asset.
pub fn trading_fees_account(livemode: bool, asset: &str) -> Account {
    Account::new(
        format!("{}/platform/{asset}/trading_fees", mode_of(livemode)),
        asset.to_owned(),
        AccountFlags {
            debits_must_not_exceed_credits: true,
            credits_must_not_exceed_debits: false,
        },
    )
}

/// Test mode only: the source of test credits to customers.
pub fn test_funding_account(asset: &str) -> Account {
    Account::new(
        format!("test/platform/{asset}/test_funding"),
        asset.to_owned(),
        AccountFlags::default(),
    )
}

/// A payment created with `credit_customer`: on success its net amount
/// moves on from the merchant's balance to the customer's (`pay_….customer`),
/// in the same batch as the payment's own transfers.
pub fn payment_credits_customer(
    record: &PaymentRecord,
    customer_id: &str,
) -> ([Account; 2], TransferRequest) {
    let payment = &record.payment;
    let merchant = merchant_account(payment.livemode, &record.merchant_id, &payment.currency);
    let customer = customer_account(payment.livemode, customer_id, &payment.currency, false);
    let transfer = TransferRequest {
        id: format!("{}.customer", payment.id),
        debit_account_id: merchant.id.clone(),
        credit_account_id: customer.id.clone(),
        amount: u128::from(payment.net),
        asset: payment.currency.clone(),
        kind: TransferKind::Posted,
        pending_id: None,
        code: "customer_deposit".into(),
        source_id: Some(payment.id.clone()),
    };
    ([merchant, customer], transfer)
}

/// The refund of a payment that credited a customer takes back what the
/// customer got of it (`amount − fee_share`, the refunded part of the
/// payment's net) from the customer's available balance to the merchant's,
/// posted (`{refund}.customer`), before the merchant's balance is reserved
/// for the refund: the merchant pays nothing twice. With `back`, the
/// reverse (`{refund}.customer.back`), when the provider refuses the
/// refund.
pub fn refund_takes_from_customer(
    record: &PaymentRecord,
    customer_id: &str,
    refund_id: &str,
    amount: u64,
    back: bool,
) -> ([Account; 2], TransferRequest) {
    let payment = &record.payment;
    let merchant = merchant_account(payment.livemode, &record.merchant_id, &payment.currency);
    let customer = customer_account(payment.livemode, customer_id, &payment.currency, false);
    let (id, debit, credit, code) = if back {
        (
            format!("{refund_id}.customer.back"),
            &merchant,
            &customer,
            "customer_refund_failed",
        )
    } else {
        (
            format!("{refund_id}.customer"),
            &customer,
            &merchant,
            "customer_refund",
        )
    };
    let transfer = posted(id, debit, credit, u128::from(amount), code, refund_id);
    ([merchant, customer], transfer)
}

/// A pool's reserve of one asset: it equals the pool row's reserve (checked
/// by `malipo trading check`) and can never go below zero.
pub fn pool_reserve_account(livemode: bool, pool_id: &str, asset: &str) -> Account {
    Account::new(
        format!("{}/pool/{pool_id}/{asset}/reserve", mode_of(livemode)),
        asset.to_owned(),
        AccountFlags {
            debits_must_not_exceed_credits: true,
            credits_must_not_exceed_debits: false,
        },
    )
}

/// Where a pool's LP shares (ledger asset: the pool's id) are minted from
/// and burned back to: its debit balance is the shares outstanding.
pub fn pool_shares_issued_account(livemode: bool, pool_id: &str) -> Account {
    Account::new(
        format!("{}/pool/{pool_id}/shares/issued", mode_of(livemode)),
        pool_id.to_owned(),
        AccountFlags {
            debits_must_not_exceed_credits: false,
            credits_must_not_exceed_debits: true,
        },
    )
}

/// The pool's minimum liquidity, owned by nobody and never moved out.
pub fn pool_shares_locked_account(livemode: bool, pool_id: &str) -> Account {
    Account::new(
        format!("{}/pool/{pool_id}/shares/locked", mode_of(livemode)),
        pool_id.to_owned(),
        AccountFlags {
            debits_must_not_exceed_credits: true,
            credits_must_not_exceed_debits: false,
        },
    )
}
