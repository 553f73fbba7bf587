//! Bank transfers with manual verification (`method: "bank_transfer"`).
//!
//! - **Accounts**: a merchant's receiving bank account ([`BankAccount`],
//!   `ba_…`) per mode and currency, configured by the merchant
//!   (`POST /v1/bank_accounts`) or an operator
//!   (`POST /v1/admin/merchants/{id}/bank_accounts`); who configured it is
//!   kept on the account and in the audit log. The newest account for the
//!   payment's mode and currency is the one payers are shown.
//! - **Payments**: `create_payment` hands `method: "bank_transfer"` to
//!   [`Gateway::create_bank_transfer_payment`]: one transaction writes the
//!   payment (`processing`, the amount reserved in the merchant's pending
//!   balance like any payment in flight), its deposit ([`BankDeposit`],
//!   `bdep_…`) with a fresh [`DepositReference`], the events and the
//!   idempotency record. `next_action` is `bank_transfer` with the
//!   instructions. Unconfirmed, the worker expires it after
//!   `bank_transfer_expiry_seconds` (default 72 h), releasing the reservation.
//! - **Confirmation** ([`Gateway::confirm_bank_deposit`]): an operator
//!   states the amount received and the bank's reference. Another amount
//!   is refused (400 `amount_mismatch`, nothing changes: no unpaid money is
//!   ever credited; the operator returns the money or the merchant asks for
//!   a new payment). A deposit is confirmed once (conditional UPDATE, 409
//!   after), and a bank reference confirms at most one deposit (UNIQUE, and
//!   the payment's provider receipt).
//! - **Four eyes**: with `bank_four_eyes` on (the default), the operator
//!   token confirming must not be the actor who configured the account
//!   (403 `four_eyes_required`).
//! - **Statements**: an uploaded CSV ([`STATEMENT_COLUMNS`]) is matched
//!   line by line by reference and amount into `matched`, `mismatched`
//!   (with a reason) and `invalid_lines`; confirming the statement confirms
//!   each match, each in its own transaction through the same path as a
//!   single confirmation, so nothing is ever confirmed twice, whatever is
//!   uploaded again.
//! - **Refunds** of bank transfer payments are refused (400 naming
//!   `payment`): Malipo does not send bank transfers; the merchant refunds
//!   from its bank.

use crate::auth::{Actor, AuditChange, MerchantContext, audit_state};
use crate::idempotency::{IdempotencyGuard, complete};
use crate::payments::{NewPayment, apply_outcome, event, plan_outcome};
use crate::vouchers::prefixed_id;
use crate::{ApiError, ErrorKind, Gateway, GatewayError, GatewayResult, now_ms, now_seconds};
use malipo_connectors::PaymentOutcome;
use malipo_core::id::{IdKind, new_id};
use malipo_core::objects::{List, NextAction, Payment, Scope};
use malipo_core::payment::{CaptureMethod, PaymentMethod, PaymentStatus};
use malipo_core::reference::DepositReference;
use malipo_core::{Asset, MinorUnits, Mode};
use malipo_store::{
    BankAccountRecord, BankDepositConfirmation, BankDepositRecord, BankStatementRecord, Filter,
    Page, PaymentRecord, Tx,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::{IntoParams, ToSchema};

/// The connector name bank transfer payments carry.
pub const BANK_TRANSFER_CONNECTOR: &str = "bank_transfer";
pub const BANK_ACCOUNT_ID_PREFIX: &str = "ba_";
pub const BANK_DEPOSIT_ID_PREFIX: &str = "bdep_";
pub const BANK_STATEMENT_ID_PREFIX: &str = "bst_";
/// Bank name, account name and branch: at most this many characters.
pub const BANK_TEXT_LENGTH_MAX: usize = 100;
/// Account numbers (an IBAN has at most 34 characters).
pub const BANK_ACCOUNT_NUMBER_LENGTH_MAX: usize = 34;
/// A bank's own transaction reference.
pub const BANK_REFERENCE_LENGTH_MAX: usize = 64;
/// The largest statement accepted (the server's body limit may be lower).
pub const STATEMENT_BYTES_MAX: usize = 1024 * 1024;
/// The most lines (after the header) one statement may have.
pub const STATEMENT_LINES_MAX: usize = 5_000;
/// The columns a statement's header must name (any order, any case; other
/// columns are ignored).
pub const STATEMENT_COLUMNS: [&str; 5] =
    ["date", "reference", "amount", "currency", "bank_reference"];
/// Attempts at a reference no other deposit holds (a collision among
/// 31⁹ ≈ 2.6 × 10¹³ references is already unlikely).
const REFERENCE_ATTEMPTS_MAX: usize = 3;

/// `POST /v1/bank_accounts` and `POST /v1/admin/merchants/{id}/bank_accounts`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBankAccount {
    /// `test` or `live`: required from an operator; from a merchant it is
    /// the key's mode (another is refused).
    pub mode: Option<Mode>,
    /// The currency the account receives (payments in it are shown this
    /// account).
    pub currency: Option<String>,
    /// At most 100 characters.
    pub bank_name: Option<String>,
    /// The account holder's name, at most 100 characters.
    pub account_name: Option<String>,
    /// Letters, digits, spaces and dashes, at most 34 characters.
    pub account_number: Option<String>,
    /// At most 100 characters.
    pub branch: Option<String>,
    /// SWIFT/BIC: 8 or 11 letters and digits.
    pub swift: Option<String>,
}

/// Who configured something, for the four-eyes rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConfiguredBy {
    /// `operator`, `api_key` or `system`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The operator token's or API key's id.
    pub id: Option<String>,
}

/// Where a merchant receives bank transfers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BankAccount {
    /// `ba_…`
    pub id: String,
    /// Always `bank_account`.
    pub object: &'static str,
    pub livemode: bool,
    pub merchant: String,
    pub currency: String,
    pub bank_name: String,
    pub account_name: String,
    pub account_number: String,
    pub branch: Option<String>,
    pub swift: Option<String>,
    pub configured_by: ConfiguredBy,
    pub created: i64,
}

impl From<BankAccountRecord> for BankAccount {
    fn from(record: BankAccountRecord) -> Self {
        BankAccount {
            id: record.id,
            object: "bank_account",
            livemode: record.livemode,
            merchant: record.merchant_id,
            currency: record.currency,
            bank_name: record.bank_name,
            account_name: record.account_name,
            account_number: record.account_number,
            branch: record.branch,
            swift: record.swift,
            configured_by: ConfiguredBy {
                kind: record.configured_by_type,
                id: record.configured_by,
            },
            created: record.created,
        }
    }
}

/// A bank transfer payment's expected deposit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BankDeposit {
    /// `bdep_…`
    pub id: String,
    /// Always `bank_deposit`.
    pub object: &'static str,
    pub livemode: bool,
    pub merchant: String,
    /// The payment (`pay_…`) it pays.
    pub payment: String,
    /// The receiving account (`ba_…`).
    pub bank_account: String,
    /// `XXXXX-XXXXX`, as the payer quotes it.
    pub reference: String,
    /// Expected, in minor units.
    pub amount: u64,
    pub currency: String,
    /// `pending`, `confirmed` or `expired`.
    pub status: String,
    /// What the operator confirmed was received (minor units).
    pub amount_received: Option<u64>,
    /// The bank's own reference of the transaction that paid it.
    pub bank_reference: Option<String>,
    /// The operator token that confirmed it.
    pub confirmed_by: Option<String>,
    pub confirmed_at: Option<i64>,
    /// The statement (`bst_…`) whose line confirmed it, if any.
    pub statement: Option<String>,
    pub expires_at: i64,
    pub created: i64,
    pub updated: i64,
}

fn amount_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn grouped(reference: &str) -> String {
    DepositReference::parse(reference)
        .map(|reference| reference.grouped())
        .unwrap_or_else(|_| reference.to_owned())
}

impl From<BankDepositRecord> for BankDeposit {
    fn from(record: BankDepositRecord) -> Self {
        BankDeposit {
            id: record.id,
            object: "bank_deposit",
            livemode: record.livemode,
            merchant: record.merchant_id,
            payment: record.payment_id,
            bank_account: record.bank_account_id,
            reference: grouped(&record.reference),
            amount: amount_of(record.amount),
            currency: record.currency,
            status: record.status,
            amount_received: record.amount_received.map(amount_of),
            bank_reference: record.bank_reference,
            confirmed_by: record.confirmed_by,
            confirmed_at: record.confirmed_at,
            statement: record.statement_id,
            expires_at: record.expires_at,
            created: record.created,
            updated: record.updated,
        }
    }
}

/// `POST /v1/admin/bank_deposits/{id}/confirm`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBankDeposit {
    /// What arrived, in minor units: must equal the deposit's amount.
    pub amount_received: Option<u64>,
    /// The bank's reference of the transaction (letters, digits and
    /// `-_/.:#`, at most 64 characters; compared without case).
    pub bank_reference: Option<String>,
}

/// `GET /v1/admin/bank_deposits` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct BankDepositFilters {
    /// `pending`, `confirmed` or `expired`.
    pub status: Option<String>,
    /// Only this merchant's (`mch_…`).
    pub merchant: Option<String>,
}

pub const BANK_DEPOSIT_STATUSES: [&str; 3] = ["pending", "confirmed", "expired"];

/// Why a statement line did not match a confirmable deposit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MismatchReason {
    /// No deposit has this reference (or it is mistyped: the check
    /// character refuses it).
    UnknownReference,
    /// The line's amount is not the deposit's.
    AmountDiffers,
    /// The line's currency is not the deposit's.
    CurrencyDiffers,
    /// The deposit was confirmed already.
    AlreadyConfirmed,
    /// The deposit expired before it was confirmed.
    Expired,
    /// Another deposit was confirmed with this bank reference.
    BankReferenceUsed,
    /// An earlier line of this statement has the same reference or bank
    /// reference.
    Duplicate,
}

/// One line of a statement, as read and judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatementLine {
    /// The line number in the file (the header is line 1).
    pub line: u64,
    pub date: String,
    /// As written in the statement.
    pub reference: String,
    /// In minor units of `currency`.
    pub amount: u64,
    pub currency: String,
    pub bank_reference: String,
    /// The deposit it names (`bdep_…`), when the reference is known.
    pub deposit: Option<String>,
    pub payment: Option<String>,
    /// For mismatches: why.
    pub reason: Option<MismatchReason>,
    /// For matches, once the statement is confirmed: `confirmed`, or the
    /// error code that kept it from being confirmed (e.g.
    /// `deposit_already_confirmed`, `four_eyes_required`).
    pub result: Option<String>,
}

/// A line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InvalidStatementLine {
    pub line: u64,
    pub message: String,
}

/// An uploaded bank statement and how its lines matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BankStatement {
    /// `bst_…`
    pub id: String,
    /// Always `bank_statement`.
    pub object: String,
    /// `uploaded`, then `confirmed` once its matches were confirmed.
    pub status: String,
    /// Lines after the header (blank lines aside).
    pub line_count: u64,
    /// Lines that pay a pending deposit exactly.
    pub matched: Vec<StatementLine>,
    /// Lines that don't, with the reason, for review.
    pub mismatched: Vec<StatementLine>,
    /// Lines that could not be read, with their line number.
    pub invalid_lines: Vec<InvalidStatementLine>,
    pub created: i64,
    pub updated: i64,
}

/// A required text field: trimmed, 1 to `max` characters, no control
/// characters.
fn required_text(param: &str, value: Option<String>, max: usize) -> Result<String, ApiError> {
    let value = value.ok_or_else(|| ApiError::missing(param))?;
    optional_text(param, Some(value), max)?.ok_or_else(|| ApiError::missing(param))
}

fn optional_text(
    param: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let value = value.trim().to_owned();
    if value.is_empty() {
        return Ok(None);
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            param,
            format!("{param} may be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            param,
            format!("{param} may not contain control characters"),
        ));
    }
    Ok(Some(value))
}

/// A bank's reference as stored: trimmed, uppercase.
fn parse_bank_reference(param: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim().to_ascii_uppercase();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_/.:#".contains(c);
    if value.is_empty() || value.len() > BANK_REFERENCE_LENGTH_MAX || !value.chars().all(allowed) {
        return Err(ApiError::invalid(
            param,
            format!("{param} is 1 to {BANK_REFERENCE_LENGTH_MAX} letters, digits or -_/.:#"),
        ));
    }
    Ok(value)
}

fn conflict(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Conflict, code, message)
}

/// The minor units of a stored (BIGINT) amount, checked.
fn stored_amount(amount: u64) -> GatewayResult<i64> {
    i64::try_from(amount).map_err(GatewayError::internal)
}

impl Gateway {
    /// A merchant configures a receiving bank account (its key's mode).
    pub async fn create_bank_account(
        &self,
        context: &MerchantContext,
        actor: &Actor,
        request: CreateBankAccount,
    ) -> GatewayResult<BankAccount> {
        context.require(Scope::Full)?;
        if request.mode.is_some_and(|mode| mode != context.mode) {
            return Err(ApiError::invalid(
                "mode",
                format!(
                    "this key configures {} mode accounts",
                    context.mode.as_str()
                ),
            )
            .into());
        }
        self.insert_bank_account(&context.merchant_id, context.mode, actor, request)
            .await
    }

    /// An operator configures a merchant's receiving bank account.
    pub async fn create_bank_account_for(
        &self,
        merchant_id: &str,
        actor: &Actor,
        request: CreateBankAccount,
    ) -> GatewayResult<BankAccount> {
        let mode = request.mode.ok_or_else(|| ApiError::missing("mode"))?;
        {
            let mut reader = self.store().reader().await?;
            if reader.conn().merchant(merchant_id).await?.is_none() {
                return Err(ApiError::not_found("merchant", merchant_id).into());
            }
        }
        self.insert_bank_account(merchant_id, mode, actor, request)
            .await
    }

    async fn insert_bank_account(
        &self,
        merchant_id: &str,
        mode: Mode,
        actor: &Actor,
        request: CreateBankAccount,
    ) -> GatewayResult<BankAccount> {
        let currency = request
            .currency
            .ok_or_else(|| ApiError::missing("currency"))?;
        let asset = Asset::parse(&currency)
            .map_err(|error| ApiError::invalid("currency", error.to_string()))?;
        let bank_name = required_text("bank_name", request.bank_name, BANK_TEXT_LENGTH_MAX)?;
        let account_name =
            required_text("account_name", request.account_name, BANK_TEXT_LENGTH_MAX)?;
        let account_number = required_text(
            "account_number",
            request.account_number,
            BANK_ACCOUNT_NUMBER_LENGTH_MAX,
        )?;
        if !account_number
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
        {
            return Err(ApiError::invalid(
                "account_number",
                "account_number is letters, digits, spaces and dashes",
            )
            .into());
        }
        let branch = optional_text("branch", request.branch, BANK_TEXT_LENGTH_MAX)?;
        let swift =
            optional_text("swift", request.swift, 11)?.map(|swift| swift.to_ascii_uppercase());
        if let Some(swift) = &swift
            && !((swift.len() == 8 || swift.len() == 11)
                && swift.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(ApiError::invalid("swift", "swift is 8 or 11 letters and digits").into());
        }
        let record = BankAccountRecord {
            id: prefixed_id(BANK_ACCOUNT_ID_PREFIX),
            merchant_id: merchant_id.to_owned(),
            livemode: mode.is_live(),
            currency: asset.code().to_owned(),
            bank_name,
            account_name,
            account_number,
            branch,
            swift,
            configured_by_type: actor.kind.as_str().to_owned(),
            configured_by: actor.id.clone(),
            created: now_seconds(),
        };
        let account = BankAccount::from(record.clone());
        let mut tx = self.store().begin().await?;
        tx.conn().insert_bank_account(&record).await?;
        actor
            .record(
                &mut tx,
                AuditChange {
                    action: "bank_account.create",
                    object_type: "bank_account",
                    object_id: &record.id,
                    merchant_id: Some(&record.merchant_id),
                    livemode: Some(record.livemode),
                    before: None,
                    after: Some(audit_state(&account)?),
                },
            )
            .await?;
        tx.commit().await?;
        Ok(account)
    }

    /// A merchant's bank accounts in its key's mode, newest first.
    pub async fn bank_accounts(
        &self,
        context: &MerchantContext,
        page: &Page,
    ) -> GatewayResult<List<BankAccount>> {
        context.require(Scope::ReadOnly)?;
        let filters = [
            Filter::TextEquals("merchant_id", context.merchant_id.clone()),
            Filter::BoolEquals("livemode", context.livemode()),
        ];
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader.conn().bank_accounts(&filters, page).await?;
        Ok(List::new(
            records.into_iter().map(BankAccount::from).collect(),
            has_more,
        ))
    }

    /// `POST /v1/payments` with method `bank_transfer`: writes the
    /// processing payment (its amount reserved), its deposit with a new
    /// reference, its events and the idempotency record in one
    /// transaction. Refused (400 naming `currency`) when the merchant has
    /// no bank account in the payment's mode and currency.
    pub(crate) async fn create_bank_transfer_payment(
        &self,
        context: &MerchantContext,
        new: NewPayment,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Payment> {
        if !new.confirm {
            return Err(ApiError::invalid(
                "confirm",
                "a bank transfer starts at once: confirm must be true (or omitted)",
            )
            .into());
        }
        let account = {
            let mut reader = self.store().reader().await?;
            reader
                .conn()
                .bank_account_for(&context.merchant_id, context.livemode(), new.asset.code())
                .await?
        }
        .ok_or_else(|| {
            ApiError::invalid(
                "currency",
                format!(
                    "this merchant has no bank account for `{}` in {} mode: configure one first (POST /v1/bank_accounts)",
                    new.asset.code(),
                    context.mode.as_str()
                ),
            )
        })?;
        let fee = self.payment_fee(&context.merchant_id, &new).await?;
        let expiry_seconds =
            i64::try_from(self.config().bank_transfer_expiry_seconds).unwrap_or(i64::MAX);
        for attempt in 1..=REFERENCE_ATTEMPTS_MAX {
            let reference = DepositReference::generate();
            match self
                .write_bank_transfer_payment(
                    context,
                    &new,
                    &account,
                    &reference,
                    fee,
                    expiry_seconds,
                    guard.as_ref(),
                )
                .await
            {
                Err(error) if is_unique_violation(&error) && attempt < REFERENCE_ATTEMPTS_MAX => {
                    tracing::warn!("a new deposit reference was taken; drawing another");
                }
                answer => return answer,
            }
        }
        Err(GatewayError::internal(ApiError::invalid(
            "reference",
            "no free deposit reference",
        )))
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_bank_transfer_payment(
        &self,
        context: &MerchantContext,
        new: &NewPayment,
        account: &BankAccountRecord,
        reference: &DepositReference,
        fee: u64,
        expiry_seconds: i64,
        guard: Option<&IdempotencyGuard>,
    ) -> GatewayResult<Payment> {
        let now = now_seconds();
        let expires_at = now.saturating_add(expiry_seconds);
        let mut record = PaymentRecord {
            merchant_id: context.merchant_id.clone(),
            payment: Payment {
                id: new_id(IdKind::Payment),
                object: "payment",
                livemode: context.livemode(),
                amount: new.amount,
                currency: new.asset.code().to_owned(),
                method: PaymentMethod::BankTransfer,
                connector: BANK_TRANSFER_CONNECTOR.to_owned(),
                status: PaymentStatus::RequiresConfirmation,
                capture_method: CaptureMethod::Automatic,
                amount_capturable: 0,
                amount_received: 0,
                reference: new.reference.clone(),
                description: new.description.clone(),
                customer: new.customer.clone(),
                credit_customer: new.credit_customer.clone(),
                amount_refunded: 0,
                fee,
                net: new.amount - fee,
                next_action: None,
                return_url: None,
                payment_method: None,
                failure: None,
                metadata: new.metadata.clone(),
                expires_at,
                created: now,
                updated: now,
                conversion: None,
            },
            fee_refunded: 0,
            provider_reference: None,
            provider_receipt: None,
            funds_reserved: false,
            started_ms: Some(now_ms()),
            next_poll_ms: None,
            pending_operation: None,
        };
        let next_action = NextAction::BankTransfer {
            reference: reference.grouped(),
            bank_name: account.bank_name.clone(),
            account_name: account.account_name.clone(),
            account_number: account.account_number.clone(),
            branch: account.branch.clone(),
            swift: account.swift.clone(),
            amount: new.amount,
            amount_decimal: MinorUnits::from(new.amount).to_decimal(new.asset.exponent()),
            currency: new.asset.code().to_owned(),
            expires_at,
        };
        let mut events = vec![event(
            &record.merchant_id,
            record.payment.livemode,
            "payment.created",
            &record.payment,
        )?];
        let (money, processing) = plan_outcome(
            &mut record,
            PaymentOutcome::Processing {
                provider_reference: Some(reference.as_str().to_owned()),
                next_action: Some(next_action),
                poll_after_ms: 0,
            },
        )?;
        // Nobody to poll: an operator's confirmation or the expiry decides.
        record.next_poll_ms = None;
        events.extend(processing);
        let deposit = BankDepositRecord {
            id: prefixed_id(BANK_DEPOSIT_ID_PREFIX),
            payment_id: record.payment.id.clone(),
            merchant_id: record.merchant_id.clone(),
            livemode: record.payment.livemode,
            bank_account_id: account.id.clone(),
            reference: reference.as_str().to_owned(),
            amount: stored_amount(new.amount)?,
            currency: record.payment.currency.clone(),
            status: "pending".into(),
            amount_received: None,
            bank_reference: None,
            confirmed_by: None,
            confirmed_at: None,
            statement_id: None,
            expires_at,
            created: now,
            updated: now,
        };
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        conn.insert_payment(&record).await?;
        conn.insert_bank_deposit(&deposit)
            .await
            .map_err(GatewayError::from)?;
        money.write(&mut conn, &record.merchant_id).await?;
        conn.insert_events(&events).await?;
        if let Some(trade) = &new.desk_trade {
            crate::desk::open_trade(&mut conn, trade, &record).await?;
        }
        complete(&mut conn, guard, &record.payment).await?;
        tx.commit().await?;
        metrics::counter!("malipo_bank_deposits_created_total").increment(1);
        Ok(record.payment)
    }

    /// Operator: deposits, newest first.
    pub async fn bank_deposits(
        &self,
        filters: &BankDepositFilters,
        page: &Page,
    ) -> GatewayResult<List<BankDeposit>> {
        let mut conditions = Vec::new();
        if let Some(status) = &filters.status {
            if !BANK_DEPOSIT_STATUSES.contains(&status.as_str()) {
                return Err(ApiError::invalid(
                    "status",
                    format!("status must be one of {}", BANK_DEPOSIT_STATUSES.join(", ")),
                )
                .into());
            }
            conditions.push(Filter::TextEquals("status", status.clone()));
        }
        if let Some(merchant) = &filters.merchant {
            conditions.push(Filter::TextEquals("merchant_id", merchant.clone()));
        }
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader.conn().bank_deposits(&conditions, page).await?;
        Ok(List::new(
            records.into_iter().map(BankDeposit::from).collect(),
            has_more,
        ))
    }

    /// Operator: one deposit.
    pub async fn bank_deposit(&self, id: &str) -> GatewayResult<BankDeposit> {
        let mut reader = self.store().reader().await?;
        let record = reader
            .conn()
            .bank_deposit(id)
            .await?
            .ok_or_else(|| ApiError::not_found("bank_deposit", id))?;
        Ok(BankDeposit::from(record))
    }

    /// Operator: confirms that a deposit arrived (see the module doc).
    pub async fn confirm_bank_deposit(
        &self,
        actor: &Actor,
        id: &str,
        request: ConfirmBankDeposit,
    ) -> GatewayResult<BankDeposit> {
        let amount_received = request
            .amount_received
            .ok_or_else(|| ApiError::missing("amount_received"))?;
        let bank_reference = request
            .bank_reference
            .ok_or_else(|| ApiError::missing("bank_reference"))?;
        let bank_reference = parse_bank_reference("bank_reference", &bank_reference)?;
        let mut tx = self.store().begin().await?;
        let deposit = self
            .confirm_deposit_in(&mut tx, actor, id, amount_received, &bank_reference, None)
            .await?;
        tx.commit().await?;
        Ok(deposit)
    }

    /// The one confirmation path, inside the caller's transaction: the
    /// payment succeeds (ledger, balance transaction, `payment.succeeded`),
    /// the deposit is marked confirmed, the operator's action audited.
    async fn confirm_deposit_in(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        id: &str,
        amount_received: u64,
        bank_reference: &str,
        statement_id: Option<&str>,
    ) -> GatewayResult<BankDeposit> {
        let now = now_seconds();
        let mut conn = tx.conn();
        let found = conn
            .bank_deposit(id)
            .await?
            .ok_or_else(|| ApiError::not_found("bank_deposit", id))?;
        // Lock order: the payment row first, then its ledger accounts.
        let mut record = conn
            .payment_by_id_for_update(&found.payment_id)
            .await?
            .ok_or_else(|| {
                GatewayError::internal(ApiError::not_found("payment", &found.payment_id))
            })?;
        let deposit = conn
            .bank_deposit(id)
            .await?
            .ok_or_else(|| ApiError::not_found("bank_deposit", id))?;
        let before = BankDeposit::from(deposit.clone());
        if deposit.status == "confirmed" {
            return Err(conflict(
                "deposit_already_confirmed",
                format!(
                    "deposit {id} was already confirmed (bank reference {})",
                    deposit.bank_reference.as_deref().unwrap_or("none")
                ),
            )
            .into());
        }
        if deposit.status == "expired"
            || record.payment.status == PaymentStatus::Expired
            || deposit.expires_at <= now
        {
            return Err(conflict(
                "deposit_expired",
                format!(
                    "deposit {id} expired; the payer's money, if it came, must be returned or paid as a new payment"
                ),
            )
            .into());
        }
        if record.payment.status != PaymentStatus::Processing {
            return Err(conflict(
                "payment_unexpected_state",
                format!(
                    "the deposit's payment is `{}`, not processing",
                    record.payment.status
                ),
            )
            .into());
        }
        if stored_amount(amount_received)? != deposit.amount {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "amount_mismatch",
                format!(
                    "deposit {id} expects {} {} minor units, not {amount_received}: nothing was confirmed; return the money to the payer or have the merchant create a payment for what arrived",
                    deposit.amount, deposit.currency
                ),
            )
            .with_param("amount_received")
            .into());
        }
        if self.config().bank_four_eyes {
            let account = conn
                .bank_account(&deposit.bank_account_id)
                .await?
                .ok_or_else(|| {
                    GatewayError::internal(ApiError::not_found(
                        "bank_account",
                        &deposit.bank_account_id,
                    ))
                })?;
            if actor.id.is_some() && actor.id == account.configured_by {
                return Err(ApiError::new(
                    ErrorKind::Permission,
                    "four_eyes_required",
                    format!(
                        "the operator policy requires another operator to confirm deposits to bank account {}: this token configured it",
                        account.id
                    ),
                )
                .into());
            }
        }
        if let Some(other) = conn.bank_deposit_by_bank_reference(bank_reference).await? {
            return Err(conflict(
                "bank_reference_used",
                format!(
                    "bank reference {bank_reference} already confirmed deposit {}",
                    other.id
                ),
            )
            .with_param("bank_reference")
            .into());
        }
        record.provider_receipt = Some(bank_reference.to_owned());
        apply_outcome(
            &mut conn,
            &mut record,
            PaymentOutcome::Succeeded {
                provider_reference: None,
            },
        )
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                GatewayError::Api(bank_reference_taken(bank_reference))
            } else {
                error
            }
        })?;
        let confirmation = BankDepositConfirmation {
            amount_received: stored_amount(amount_received)?,
            bank_reference,
            confirmed_by: actor.id.as_deref(),
            statement_id,
            now,
        };
        let confirmed = conn
            .confirm_bank_deposit(id, &confirmation)
            .await
            .map_err(|error| {
                if error.is_unique_violation() {
                    GatewayError::Api(bank_reference_taken(bank_reference))
                } else {
                    GatewayError::from(error)
                }
            })?;
        if !confirmed {
            return Err(conflict(
                "deposit_already_confirmed",
                format!("deposit {id} was already confirmed"),
            )
            .into());
        }
        let after = conn
            .bank_deposit(id)
            .await?
            .map(BankDeposit::from)
            .ok_or_else(|| ApiError::not_found("bank_deposit", id))?;
        actor
            .record(
                tx,
                AuditChange {
                    action: "bank_deposit.confirm",
                    object_type: "bank_deposit",
                    object_id: id,
                    merchant_id: Some(&after.merchant),
                    livemode: Some(after.livemode),
                    before: Some(audit_state(&before)?),
                    after: Some(audit_state(&after)?),
                },
            )
            .await?;
        metrics::counter!("malipo_bank_deposits_confirmed_total").increment(1);
        Ok(after)
    }

    /// Operator: reads a statement CSV and matches its lines (see
    /// [`STATEMENT_COLUMNS`]); stores and answers the result. Confirms
    /// nothing.
    pub async fn upload_bank_statement(
        &self,
        actor: &Actor,
        csv: &str,
    ) -> GatewayResult<BankStatement> {
        let lines = parse_statement(csv)?;
        let now = now_seconds();
        let mut statement = BankStatement {
            id: prefixed_id(BANK_STATEMENT_ID_PREFIX),
            object: "bank_statement".into(),
            status: "uploaded".into(),
            line_count: lines.line_count,
            matched: Vec::new(),
            mismatched: Vec::new(),
            invalid_lines: lines.invalid,
            created: now,
            updated: now,
        };
        let mut seen_references = BTreeSet::new();
        let mut seen_bank_references = BTreeSet::new();
        let mut reader = self.store().reader().await?;
        let mut conn = reader.conn();
        for mut line in lines.lines {
            let parsed = DepositReference::parse(&line.reference).ok();
            let deposit = match &parsed {
                Some(reference) => conn.bank_deposit_by_reference(reference.as_str()).await?,
                None => None,
            };
            let Some(deposit) = deposit else {
                line.reason = Some(MismatchReason::UnknownReference);
                statement.mismatched.push(line);
                continue;
            };
            line.deposit = Some(deposit.id.clone());
            line.payment = Some(deposit.payment_id.clone());
            let first_reference = seen_references.insert(deposit.id.clone());
            let first_bank_reference = seen_bank_references.insert(line.bank_reference.clone());
            let reason = if deposit.currency != line.currency {
                Some(MismatchReason::CurrencyDiffers)
            } else if deposit.status == "confirmed" {
                Some(MismatchReason::AlreadyConfirmed)
            } else if deposit.status == "expired" || deposit.expires_at <= now {
                Some(MismatchReason::Expired)
            } else if Some(deposit.amount) != i64::try_from(line.amount).ok() {
                Some(MismatchReason::AmountDiffers)
            } else if conn
                .bank_deposit_by_bank_reference(&line.bank_reference)
                .await?
                .is_some()
            {
                Some(MismatchReason::BankReferenceUsed)
            } else if !first_reference || !first_bank_reference {
                Some(MismatchReason::Duplicate)
            } else {
                None
            };
            line.reason = reason;
            if reason.is_some() {
                statement.mismatched.push(line);
            } else {
                statement.matched.push(line);
            }
        }
        drop(reader);
        let record = BankStatementRecord {
            id: statement.id.clone(),
            status: statement.status.clone(),
            body: serde_json::to_string(&statement).map_err(GatewayError::internal)?,
            uploaded_by: actor.id.clone(),
            created: now,
            updated: now,
        };
        let mut tx = self.store().begin().await?;
        tx.conn().insert_bank_statement(&record).await?;
        actor
            .record(
                &mut tx,
                AuditChange {
                    action: "bank_statement.upload",
                    object_type: "bank_statement",
                    object_id: &statement.id,
                    merchant_id: None,
                    livemode: None,
                    before: None,
                    after: Some(serde_json::json!({
                        "line_count": statement.line_count,
                        "matched": statement.matched.len(),
                        "mismatched": statement.mismatched.len(),
                        "invalid_lines": statement.invalid_lines.len(),
                    })),
                },
            )
            .await?;
        tx.commit().await?;
        Ok(statement)
    }

    /// Operator: one statement as uploaded (and confirmed).
    pub async fn bank_statement(&self, id: &str) -> GatewayResult<BankStatement> {
        let mut reader = self.store().reader().await?;
        let record = reader
            .conn()
            .bank_statement(id)
            .await?
            .ok_or_else(|| ApiError::not_found("bank_statement", id))?;
        serde_json::from_str(&record.body).map_err(GatewayError::internal)
    }

    /// Operator: confirms every matched line of an uploaded statement, each
    /// through [`Gateway::confirm_bank_deposit`]'s path in its own
    /// transaction (a line whose deposit was confirmed meanwhile, or that
    /// the four-eyes rule refuses, is reported in its `result` and changes
    /// nothing); then the statement is marked confirmed. A confirmed
    /// statement can't be confirmed again (409).
    pub async fn confirm_bank_statement(
        &self,
        actor: &Actor,
        id: &str,
    ) -> GatewayResult<BankStatement> {
        let mut statement = self.bank_statement(id).await?;
        if statement.status != "uploaded" {
            return Err(conflict(
                "statement_already_confirmed",
                format!("statement {id} was already confirmed"),
            )
            .into());
        }
        let mut confirmed = 0u64;
        for line in &mut statement.matched {
            let Some(deposit) = line.deposit.clone() else {
                continue;
            };
            let mut tx = self.store().begin().await?;
            let result = self
                .confirm_deposit_in(
                    &mut tx,
                    actor,
                    &deposit,
                    line.amount,
                    &line.bank_reference,
                    Some(id),
                )
                .await;
            line.result = Some(match result {
                Ok(_) => {
                    tx.commit().await?;
                    confirmed += 1;
                    "confirmed".into()
                }
                Err(GatewayError::Api(error)) => error.code.clone(),
                Err(error) => return Err(error),
            });
        }
        let now = now_seconds();
        statement.status = "confirmed".into();
        statement.updated = now;
        let body = serde_json::to_string(&statement).map_err(GatewayError::internal)?;
        let mut tx = self.store().begin().await?;
        if !tx.conn().confirm_bank_statement(id, &body, now).await? {
            return Err(conflict(
                "statement_already_confirmed",
                format!("statement {id} was already confirmed"),
            )
            .into());
        }
        actor
            .record(
                &mut tx,
                AuditChange {
                    action: "bank_statement.confirm",
                    object_type: "bank_statement",
                    object_id: id,
                    merchant_id: None,
                    livemode: None,
                    before: None,
                    after: Some(serde_json::json!({ "confirmed": confirmed })),
                },
            )
            .await?;
        tx.commit().await?;
        Ok(statement)
    }
}

/// Whether a write failed on a UNIQUE constraint (a deposit reference or
/// bank reference another row holds).
fn is_unique_violation(error: &GatewayError) -> bool {
    matches!(error, GatewayError::Internal(source)
        if source.downcast_ref::<malipo_store::StoreError>().is_some_and(|error| error.is_unique_violation()))
}

fn bank_reference_taken(bank_reference: &str) -> ApiError {
    conflict(
        "bank_reference_used",
        format!("bank reference {bank_reference} already confirmed another deposit"),
    )
    .with_param("bank_reference")
}

/// A statement's lines, read.
#[derive(Debug, Default)]
struct ParsedStatement {
    line_count: u64,
    lines: Vec<StatementLine>,
    invalid: Vec<InvalidStatementLine>,
}

/// One CSV record: fields split on commas, `"…"` quoting with `""` for a
/// quote (no line breaks inside fields).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() && !was_quoted => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, '"') => return Err("a quote in the middle of an unquoted field".into()),
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    fields.push(field);
    Ok(fields
        .into_iter()
        .map(|field| field.trim().to_owned())
        .collect())
}

/// Reads a statement: the header names the columns; every other non-blank
/// line is a transaction, or an invalid line reported with its number.
/// The file itself (too large, too many lines, no header, a column
/// missing) is a 400 naming `statement`.
fn parse_statement(csv: &str) -> Result<ParsedStatement, ApiError> {
    let refuse = |message: String| ApiError::invalid("statement", message);
    if csv.len() > STATEMENT_BYTES_MAX {
        return Err(refuse(format!(
            "a statement may be at most {STATEMENT_BYTES_MAX} bytes"
        )));
    }
    let csv = csv.strip_prefix('\u{feff}').unwrap_or(csv);
    let mut numbered = csv
        .lines()
        .enumerate()
        .map(|(index, line)| (index as u64 + 1, line))
        .filter(|(_, line)| !line.trim().is_empty());
    let Some((_, header)) = numbered.next() else {
        return Err(refuse(format!(
            "the statement is empty: it needs a header line `{}`",
            STATEMENT_COLUMNS.join(",")
        )));
    };
    let names: Vec<String> = csv_fields(header)
        .map_err(|message| refuse(format!("header: {message}")))?
        .into_iter()
        .map(|name| name.to_ascii_lowercase())
        .collect();
    let mut positions = [0usize; 5];
    for (slot, column) in positions.iter_mut().zip(STATEMENT_COLUMNS) {
        *slot = names
            .iter()
            .position(|name| name == column)
            .ok_or_else(|| {
                refuse(format!(
                    "the header has no `{column}` column; it needs {}",
                    STATEMENT_COLUMNS.join(",")
                ))
            })?;
    }
    let mut parsed = ParsedStatement::default();
    for (number, text) in numbered {
        parsed.line_count += 1;
        if parsed.line_count > STATEMENT_LINES_MAX as u64 {
            return Err(refuse(format!(
                "a statement may have at most {STATEMENT_LINES_MAX} lines after its header"
            )));
        }
        match statement_line(number, text, &positions) {
            Ok(line) => parsed.lines.push(line),
            Err(message) => parsed.invalid.push(InvalidStatementLine {
                line: number,
                message,
            }),
        }
    }
    Ok(parsed)
}

fn statement_line(
    number: u64,
    text: &str,
    positions: &[usize; 5],
) -> Result<StatementLine, String> {
    let fields = csv_fields(text)?;
    let field = |index: usize| fields.get(positions[index]).cloned().unwrap_or_default();
    let [date, reference, amount, currency, bank_reference] = [0, 1, 2, 3, 4].map(field);
    for (name, value) in [
        ("date", &date),
        ("reference", &reference),
        ("amount", &amount),
        ("currency", &currency),
        ("bank_reference", &bank_reference),
    ] {
        if value.is_empty() {
            return Err(format!("{name} is empty"));
        }
        if value.chars().count() > BANK_TEXT_LENGTH_MAX {
            return Err(format!(
                "{name} is longer than {BANK_TEXT_LENGTH_MAX} characters"
            ));
        }
    }
    let asset = Asset::parse(&currency).map_err(|error| format!("currency: {error}"))?;
    let minor = MinorUnits::parse_decimal(&amount, asset.exponent())
        .map_err(|error| format!("amount `{amount}`: {error}"))?;
    let amount = u64::try_from(minor.get())
        .ok()
        .filter(|amount| *amount > 0 && u128::from(*amount) <= asset.payment_amount_max())
        .ok_or_else(|| format!("amount `{amount}` is 0 or more than a payment can be"))?;
    let bank_reference =
        parse_bank_reference("bank_reference", &bank_reference).map_err(|error| error.message)?;
    Ok(StatementLine {
        line: number,
        date,
        reference,
        amount,
        currency: asset.code().to_owned(),
        bank_reference,
        deposit: None,
        payment: None,
        reason: None,
        result: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_handle_quotes_and_spaces() {
        assert_eq!(csv_fields("a, b ,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            csv_fields(r#""x, y","say ""hi""",z"#).unwrap(),
            ["x, y", r#"say "hi""#, "z"]
        );
        assert!(csv_fields(r#""open"#).is_err());
        assert!(csv_fields(r#"ab"c"#).is_err());
    }

    #[test]
    fn statements_report_bad_lines_by_number() {
        let csv = "Date,Reference,Amount,Currency,Bank_Reference\n\
                   2026-01-02,23456-789A9,1500.50,KES,FT001\n\
                   \n\
                   2026-01-02,23456-789A9,15.005,KES,FT002\n\
                   2026-01-02,,1,KES,FT003\n\
                   2026-01-02,X,1,XXX,FT004\n";
        let parsed = parse_statement(csv).unwrap();
        assert_eq!(parsed.line_count, 4);
        assert_eq!(parsed.lines.len(), 1);
        assert_eq!(parsed.lines[0].amount, 150_050);
        assert_eq!(parsed.lines[0].currency, "kes");
        assert_eq!(
            parsed
                .invalid
                .iter()
                .map(|line| line.line)
                .collect::<Vec<_>>(),
            [4, 5, 6]
        );
        assert!(parse_statement("date,reference,amount\n").is_err());
        assert!(parse_statement("").is_err());
        let many = format!(
            "{}\n{}",
            STATEMENT_COLUMNS.join(","),
            "d,r,1,kes,b\n".repeat(STATEMENT_LINES_MAX + 1)
        );
        assert_eq!(
            parse_statement(&many).unwrap_err().param.as_deref(),
            Some("statement")
        );
    }
}
