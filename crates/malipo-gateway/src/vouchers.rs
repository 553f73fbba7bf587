//! Vouchers: prepaid codes operators issue in batches and customers spend
//! as a payment method (`method: "voucher"`).
//!
//! - **Codes**: 16 characters drawn uniformly (rejection sampling over a
//!   CSPRNG) from an alphabet without look-alikes ([`VOUCHER_CODE_ALPHABET`]:
//!   no 0/O, 1/I/L), about 79 bits, shown grouped `XXXX-XXXX-XXXX-XXXX`
//!   once, in the batch's creation response (JSON or CSV). Only the keyed
//!   hash is stored ([`crate::auth::KeyHasher`], as for API keys); no code
//!   is logged, listed or audited. Codes are accepted with or without
//!   dashes and spaces, in any case.
//! - **Scope**: a batch is issued in one mode (test or live) and either for
//!   one merchant or for every merchant (`merchant` omitted). A code outside
//!   the caller's mode or merchant answers exactly like an unknown or
//!   malformed one: `invalid`, nothing more.
//! - **Partial use**: a voucher pays any amount up to what it still holds,
//!   in its own currency; the remainder stays on it until spent or expired
//!   (status `used` once nothing remains). A payment for more than it holds
//!   is refused (no split tender).
//! - **Single use under concurrency**: a redemption is one conditional
//!   UPDATE (`remaining >= amount AND status = 'active' AND expires_at > now`)
//!   in the transaction that writes the payment, its ledger entries and
//!   events; `rows_affected` decides. Parallel redemptions can never take
//!   more than the face value, and the `vouchers_outstanding` ledger account
//!   can't go below zero either.
//! - **Ledger**: see [`crate::ledger_entries`] (issue, redemption, expiry).
//! - **Expiry**: the worker's [`Gateway::expire_due_vouchers`] marks vouchers
//!   past `expires_at` expired and releases what they held back to funding,
//!   once per voucher (a conditional UPDATE and transfer ids derived from the
//!   voucher id).
//! - **Guessing**: besides the per-key and per-address rate limits of every
//!   request, each API key may get at most
//!   [`VOUCHER_INVALID_ATTEMPTS_PER_KEY_PER_MINUTE`] `invalid` answers
//!   (validation or payment) per minute; beyond that both answer 429 until
//!   the minute ends. Counted per node, in memory.

use crate::auth::{Actor, AuditChange, MerchantContext, audit_state};
use crate::idempotency::{IdempotencyGuard, complete};
use crate::payments::{NewPayment, event, plan_outcome, post};
use crate::{ApiError, ErrorKind, Gateway, GatewayError, GatewayResult, ledger_entries};
use crate::{now_ms, now_seconds};
use malipo_connectors::PaymentOutcome;
use malipo_core::id::{IdKind, new_id};
use malipo_core::objects::{List, Payment};
use malipo_core::payment::{PaymentMethod, PaymentStatus};
use malipo_core::{Asset, MinorUnits, Mode};
use malipo_store::{Filter, Page, PaymentRecord, VoucherBatchRecord, VoucherRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use utoipa::{IntoParams, ToSchema};

/// The characters codes are made of: digits and capitals without 0, O, 1,
/// I and L (31 characters, ~4.95 bits each).
pub const VOUCHER_CODE_ALPHABET: &[u8; 31] = malipo_core::reference::UNAMBIGUOUS_ALPHABET;
/// Characters in a code (~79 bits).
pub const VOUCHER_CODE_LENGTH: usize = 16;
/// Characters between dashes when a code is shown.
pub const VOUCHER_CODE_GROUP_LENGTH: usize = 4;
/// Input longer than this is not a code (and is not hashed).
pub const VOUCHER_CODE_INPUT_LENGTH_MAX: usize = 64;
/// The most vouchers one batch may issue.
pub const VOUCHER_BATCH_COUNT_MAX: u32 = 10_000;
/// The latest expiry a batch may have, from now: about five years.
pub const VOUCHER_LIFETIME_SECONDS_MAX: i64 = 5 * 366 * 24 * 3600;
pub const VOUCHER_DESCRIPTION_LENGTH_MAX: usize = 1_000;
/// `invalid` answers an API key may get per minute before it is refused
/// (429) until the minute ends.
pub const VOUCHER_INVALID_ATTEMPTS_PER_KEY_PER_MINUTE: u32 = 30;
/// The most keys whose invalid attempts are counted at once; older minutes
/// are dropped first.
const ATTEMPT_WINDOWS_MAX: usize = 10_000;
/// The connector name voucher payments carry.
pub const VOUCHER_CONNECTOR: &str = "voucher";

pub const VOUCHER_BATCH_ID_PREFIX: &str = "vb_";
pub const VOUCHER_ID_PREFIX: &str = "vch_";

/// A time-sortable id under a prefix the core has no kind for yet (as the
/// audit log does).
pub(crate) fn prefixed_id(prefix: &str) -> String {
    let id = new_id(IdKind::Request);
    let random = id.strip_prefix(IdKind::Request.prefix()).unwrap_or(&id);
    format!("{prefix}{random}")
}

/// A normalized code: 16 characters of the alphabet, no dashes. `Debug`
/// never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct VoucherCode(String);

impl fmt::Debug for VoucherCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VoucherCode([redacted])")
    }
}

impl VoucherCode {
    /// A new random code.
    fn generate() -> VoucherCode {
        VoucherCode(malipo_core::reference::random_from_alphabet(
            VOUCHER_CODE_LENGTH,
        ))
    }

    /// Reads a code as a person typed it: dashes and spaces ignored, any
    /// case. `None` when it can't be a code.
    pub fn parse(input: &str) -> Option<VoucherCode> {
        if input.len() > VOUCHER_CODE_INPUT_LENGTH_MAX {
            return None;
        }
        let code: String = input
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        (code.len() == VOUCHER_CODE_LENGTH
            && code.bytes().all(|b| VOUCHER_CODE_ALPHABET.contains(&b)))
        .then_some(VoucherCode(code))
    }

    /// `XXXX-XXXX-XXXX-XXXX`, for people.
    pub fn grouped(&self) -> String {
        let mut out = String::with_capacity(VOUCHER_CODE_LENGTH + 3);
        for (index, c) in self.0.chars().enumerate() {
            if index > 0 && index % VOUCHER_CODE_GROUP_LENGTH == 0 {
                out.push('-');
            }
            out.push(c);
        }
        out
    }

    fn hash(&self, gateway: &Gateway) -> String {
        gateway.key_hasher().hash(&self.0)
    }
}

/// `voucher` in `POST /v1/payments` (method `voucher`).
#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoucherDetails {
    /// The voucher's code, with or without dashes, any case.
    pub code: Option<String>,
}

impl fmt::Debug for VoucherDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VoucherDetails { code: [redacted] }")
    }
}

/// The voucher code a new payment carries: required for method `voucher`,
/// refused for every other. A malformed code is kept as an invalid one
/// (`None` inside) so it answers like an unknown code.
pub(crate) fn voucher_for_method(
    method: PaymentMethod,
    voucher: Option<VoucherDetails>,
) -> Result<Option<PaymentVoucher>, ApiError> {
    match (method, voucher) {
        (PaymentMethod::Voucher, Some(VoucherDetails { code: Some(code) })) => {
            Ok(Some(PaymentVoucher(VoucherCode::parse(&code))))
        }
        (PaymentMethod::Voucher, _) => Err(ApiError::missing("voucher[code]")),
        (_, Some(_)) => Err(ApiError::invalid(
            "voucher",
            "voucher is only for payments with method `voucher`",
        )),
        (_, None) => Ok(None),
    }
}

/// A payment's voucher code as given: `None` inside when it was malformed.
#[derive(Debug, Clone)]
pub(crate) struct PaymentVoucher(Option<VoucherCode>);

/// Per API key, the `invalid` answers of the current minute.
#[derive(Debug, Default)]
pub struct AttemptWindows {
    windows: Mutex<BTreeMap<String, (i64, u32)>>,
}

impl AttemptWindows {
    fn failures(&self, key: &str, minute: i64) -> u32 {
        let Ok(windows) = self.windows.lock() else {
            return 0;
        };
        match windows.get(key) {
            Some((window, count)) if *window == minute => *count,
            _ => 0,
        }
    }

    /// Refuses a key that had too many invalid answers this minute.
    fn check(&self, key: &str, now: i64) -> Result<(), ApiError> {
        let minute = now / 60;
        if self.failures(key, minute) < VOUCHER_INVALID_ATTEMPTS_PER_KEY_PER_MINUTE {
            return Ok(());
        }
        metrics::counter!("malipo_rate_limit_rejections_total", "scope" => "voucher").increment(1);
        Err(ApiError::new(
            ErrorKind::RateLimit,
            "voucher_attempts_limited",
            format!(
                "too many invalid voucher codes from this API key: at most {VOUCHER_INVALID_ATTEMPTS_PER_KEY_PER_MINUTE} per minute; retry after {} s",
                60 - now.rem_euclid(60)
            ),
        ))
    }

    fn record_failure(&self, key: &str, now: i64) {
        let minute = now / 60;
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        if windows.len() >= ATTEMPT_WINDOWS_MAX {
            windows.retain(|_, (window, _)| *window == minute);
        }
        let entry = windows.entry(key.to_owned()).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

/// `POST /v1/admin/vouchers/batches`
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVoucherBatch {
    /// `test` or `live`: the keys that may redeem the vouchers.
    pub mode: Option<Mode>,
    /// Any asset code (`kes`, `UGX`, `usd`, …).
    pub currency: Option<String>,
    /// Each voucher's value in the currency's minor unit: > 0, at most the
    /// currency's per-payment maximum.
    pub face_value: Option<u64>,
    /// How many vouchers: 1 to 10,000.
    pub count: Option<u32>,
    /// When the vouchers expire (Unix seconds): in the future, at most
    /// about five years ahead.
    pub expires_at: Option<i64>,
    /// The merchant the vouchers are redeemable at (`mch_…`); omitted, they
    /// are redeemable at every merchant.
    pub merchant: Option<String>,
    /// At most 1,000 characters.
    pub description: Option<String>,
}

/// A batch of vouchers. `vouchers` (with the codes) is in the creation
/// response only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct VoucherBatch {
    /// `vb_…`
    pub id: String,
    /// Always `voucher_batch`.
    pub object: &'static str,
    pub livemode: bool,
    /// The merchant the vouchers are redeemable at; `null`: every merchant.
    pub merchant: Option<String>,
    pub currency: String,
    pub face_value: u64,
    pub count: u64,
    pub expires_at: i64,
    pub description: Option<String>,
    pub created: i64,
    /// The issued vouchers with their codes: only in the response that
    /// created the batch. Codes are never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vouchers: Option<Vec<IssuedVoucher>>,
}

/// A voucher's id and code, as issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct IssuedVoucher {
    /// `vch_…`
    pub id: String,
    /// `XXXX-XXXX-XXXX-XXXX`
    pub code: String,
}

/// A voucher as operators see it (never its code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Voucher {
    /// `vch_…`
    pub id: String,
    /// Always `voucher`.
    pub object: &'static str,
    pub livemode: bool,
    /// The batch it was issued in.
    pub batch: String,
    pub merchant: Option<String>,
    pub currency: String,
    pub face_value: u64,
    /// What it can still pay.
    pub remaining: u64,
    /// `active`, `used` (nothing remains) or `expired`.
    pub status: String,
    pub expires_at: i64,
    pub created: i64,
    pub updated: i64,
}

/// `GET /v1/admin/vouchers` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct VoucherFilters {
    /// Only this batch's vouchers (`vb_…`).
    pub batch: Option<String>,
    /// `active`, `used` or `expired`.
    pub status: Option<String>,
}

pub const VOUCHER_STATUSES: [&str; 3] = ["active", "used", "expired"];

/// `POST /v1/vouchers/validate`
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateVoucher {
    /// The code, with or without dashes, any case.
    pub code: Option<String>,
}

impl fmt::Debug for ValidateVoucher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ValidateVoucher { code: [redacted] }")
    }
}

/// What a code is worth to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VoucherValidity {
    /// It can pay up to `remaining` in `currency` here.
    Valid,
    /// Unknown, malformed, or not redeemable by this merchant in this mode.
    Invalid,
    Expired,
    /// Nothing remains on it.
    Used,
}

/// The answer of `POST /v1/vouchers/validate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct VoucherValidation {
    /// Always `voucher_validation`.
    pub object: &'static str,
    pub status: VoucherValidity,
    /// For a valid voucher: its currency.
    pub currency: Option<String>,
    /// For a valid voucher: what it can still pay, in minor units.
    pub remaining: Option<u64>,
    /// For a valid voucher: when it expires (Unix seconds).
    pub expires_at: Option<i64>,
}

/// What a stored voucher (or its absence) means to this caller now.
fn judge(
    found: Option<VoucherRecord>,
    context: &MerchantContext,
    now: i64,
) -> Result<VoucherRecord, VoucherValidity> {
    let Some(voucher) = found else {
        return Err(VoucherValidity::Invalid);
    };
    let elsewhere = voucher
        .merchant_id
        .as_ref()
        .is_some_and(|merchant| *merchant != context.merchant_id);
    if voucher.livemode != context.livemode() || elsewhere {
        return Err(VoucherValidity::Invalid);
    }
    if voucher.status == "used" {
        return Err(VoucherValidity::Used);
    }
    if voucher.status != "active" || voucher.expires_at <= now {
        return Err(VoucherValidity::Expired);
    }
    if voucher.remaining == 0 {
        return Err(VoucherValidity::Used);
    }
    Ok(voucher)
}

/// The 4xx a voucher payment gets for an unusable code, naming the field.
fn refusal(validity: VoucherValidity) -> ApiError {
    let (code, message) = match validity {
        VoucherValidity::Expired => ("voucher_expired", "this voucher has expired"),
        VoucherValidity::Used => ("voucher_used", "this voucher has been used up"),
        VoucherValidity::Invalid | VoucherValidity::Valid => (
            "voucher_invalid",
            "no voucher redeemable here has this code",
        ),
    };
    ApiError::new(ErrorKind::InvalidRequest, code, message).with_param("voucher[code]")
}

fn insufficient(voucher: &VoucherRecord) -> ApiError {
    ApiError::new(
        ErrorKind::InvalidRequest,
        "voucher_insufficient_value",
        format!(
            "the voucher holds {} {} minor units, less than the amount",
            voucher.remaining, voucher.currency
        ),
    )
    .with_param("amount")
}

fn amount_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl From<VoucherRecord> for Voucher {
    fn from(record: VoucherRecord) -> Self {
        Voucher {
            id: record.id,
            object: "voucher",
            livemode: record.livemode,
            batch: record.batch_id,
            merchant: record.merchant_id,
            currency: record.currency,
            face_value: amount_of(record.face_value),
            remaining: amount_of(record.remaining),
            status: record.status,
            expires_at: record.expires_at,
            created: record.created,
            updated: record.updated,
        }
    }
}

impl From<VoucherBatchRecord> for VoucherBatch {
    fn from(record: VoucherBatchRecord) -> Self {
        VoucherBatch {
            id: record.id,
            object: "voucher_batch",
            livemode: record.livemode,
            merchant: record.merchant_id,
            currency: record.currency,
            face_value: amount_of(record.face_value),
            count: amount_of(record.voucher_count),
            expires_at: record.expires_at,
            description: record.description,
            created: record.created,
            vouchers: None,
        }
    }
}

/// A batch's codes as CSV (`id,code,currency,face_value,expires_at`), for
/// the creation response only. No field needs quoting.
pub fn voucher_batch_csv(batch: &VoucherBatch) -> String {
    let mut csv = String::from("id,code,currency,face_value,expires_at\n");
    for voucher in batch.vouchers.iter().flatten() {
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            voucher.id, voucher.code, batch.currency, batch.face_value, batch.expires_at
        ));
    }
    csv
}

/// A [`CreateVoucherBatch`] that passed every check.
struct NewBatch {
    livemode: bool,
    asset: Asset,
    face_value: i64,
    count: u32,
    expires_at: i64,
    merchant: Option<String>,
    description: Option<String>,
}

impl CreateVoucherBatch {
    fn parse(self, now: i64) -> Result<NewBatch, ApiError> {
        let mode = self.mode.ok_or_else(|| ApiError::missing("mode"))?;
        let currency = self.currency.ok_or_else(|| ApiError::missing("currency"))?;
        let asset = Asset::parse(&currency)
            .map_err(|error| ApiError::invalid("currency", error.to_string()))?;
        let face_value = self
            .face_value
            .ok_or_else(|| ApiError::missing("face_value"))?;
        // Stored as BIGINT: also capped at i64::MAX (18-decimal tokens).
        let face_value_max = asset.payment_amount_max().min(i64::MAX as u128);
        let face_value = i64::try_from(face_value)
            .ok()
            .filter(|value| *value > 0 && (*value as u128) <= face_value_max)
            .ok_or_else(|| {
                ApiError::invalid(
                    "face_value",
                    format!("face_value must be 1 to {face_value_max} {asset} minor units"),
                )
            })?;
        let count = self.count.ok_or_else(|| ApiError::missing("count"))?;
        if !(1..=VOUCHER_BATCH_COUNT_MAX).contains(&count) {
            return Err(ApiError::invalid(
                "count",
                format!("count must be 1 to {VOUCHER_BATCH_COUNT_MAX}"),
            ));
        }
        let expires_at = self
            .expires_at
            .ok_or_else(|| ApiError::missing("expires_at"))?;
        if expires_at <= now || expires_at > now.saturating_add(VOUCHER_LIFETIME_SECONDS_MAX) {
            return Err(ApiError::invalid(
                "expires_at",
                format!(
                    "expires_at must be in the future and at most {VOUCHER_LIFETIME_SECONDS_MAX} seconds ahead (Unix seconds)"
                ),
            ));
        }
        if self
            .description
            .as_ref()
            .is_some_and(|text| text.chars().count() > VOUCHER_DESCRIPTION_LENGTH_MAX)
        {
            return Err(ApiError::invalid(
                "description",
                format!("description may be at most {VOUCHER_DESCRIPTION_LENGTH_MAX} characters"),
            ));
        }
        Ok(NewBatch {
            livemode: mode.is_live(),
            asset,
            face_value,
            count,
            expires_at,
            merchant: self.merchant,
            description: self.description,
        })
    }
}

impl Gateway {
    pub(crate) fn voucher_attempts(&self) -> &AttemptWindows {
        &self.inner.voucher_attempts
    }

    /// Operator: issues a batch of vouchers; the codes are in the answer and
    /// nowhere else. The batch, its vouchers (hashed), its ledger liability
    /// and its audit entry (no codes) commit together.
    pub async fn issue_voucher_batch(
        &self,
        actor: &Actor,
        request: CreateVoucherBatch,
    ) -> GatewayResult<VoucherBatch> {
        let now = now_seconds();
        let new = request.parse(now)?;
        if let Some(merchant) = &new.merchant {
            let mut reader = self.store().reader().await?;
            if reader.conn().merchant(merchant).await?.is_none() {
                return Err(ApiError::invalid(
                    "merchant",
                    format!("no such merchant: `{merchant}`"),
                )
                .into());
            }
        }
        let batch = VoucherBatchRecord {
            id: prefixed_id(VOUCHER_BATCH_ID_PREFIX),
            livemode: new.livemode,
            merchant_id: new.merchant,
            currency: new.asset.code().to_owned(),
            face_value: new.face_value,
            voucher_count: i64::from(new.count),
            expires_at: new.expires_at,
            description: new.description,
            created: now,
        };
        let mut issued = Vec::with_capacity(new.count as usize);
        let mut vouchers = Vec::with_capacity(new.count as usize);
        for _ in 0..new.count {
            let code = VoucherCode::generate();
            let id = prefixed_id(VOUCHER_ID_PREFIX);
            vouchers.push(VoucherRecord {
                id: id.clone(),
                batch_id: batch.id.clone(),
                livemode: batch.livemode,
                merchant_id: batch.merchant_id.clone(),
                code_hash: code.hash(self),
                currency: batch.currency.clone(),
                face_value: batch.face_value,
                remaining: batch.face_value,
                status: "active".into(),
                expires_at: batch.expires_at,
                created: now,
                updated: now,
            });
            issued.push(IssuedVoucher {
                id,
                code: code.grouped(),
            });
        }
        let total = u128::from(new.count) * (batch.face_value as u128);
        let (accounts, issue) =
            ledger_entries::voucher_batch_issued(batch.livemode, &batch.currency, &batch.id, total);
        let mut answer = VoucherBatch::from(batch.clone());
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        conn.insert_voucher_batch(&batch).await?;
        conn.insert_vouchers(&vouchers).await?;
        post(&mut conn, &accounts, &[issue]).await?;
        actor
            .record(
                &mut tx,
                AuditChange {
                    action: "voucher_batch.create",
                    object_type: "voucher_batch",
                    object_id: &batch.id,
                    merchant_id: batch.merchant_id.as_deref(),
                    livemode: Some(batch.livemode),
                    before: None,
                    after: Some(audit_state(&answer)?),
                },
            )
            .await?;
        tx.commit().await?;
        metrics::counter!("malipo_vouchers_issued_total").increment(u64::from(new.count));
        answer.vouchers = Some(issued);
        Ok(answer)
    }

    /// Operator: voucher batches, newest first (no codes).
    pub async fn voucher_batches(&self, page: &Page) -> GatewayResult<List<VoucherBatch>> {
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader.conn().voucher_batches(&[], page).await?;
        Ok(List::new(
            records.into_iter().map(VoucherBatch::from).collect(),
            has_more,
        ))
    }

    /// Operator: vouchers, newest first, with what remains on each (no codes).
    pub async fn vouchers(
        &self,
        filters: &VoucherFilters,
        page: &Page,
    ) -> GatewayResult<List<Voucher>> {
        let mut conditions = Vec::new();
        if let Some(batch) = &filters.batch {
            conditions.push(Filter::TextEquals("batch_id", batch.clone()));
        }
        if let Some(status) = &filters.status {
            if !VOUCHER_STATUSES.contains(&status.as_str()) {
                return Err(ApiError::invalid(
                    "status",
                    format!("status must be one of {}", VOUCHER_STATUSES.join(", ")),
                )
                .into());
            }
            conditions.push(Filter::TextEquals("status", status.clone()));
        }
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader.conn().vouchers(&conditions, page).await?;
        Ok(List::new(
            records.into_iter().map(Voucher::from).collect(),
            has_more,
        ))
    }

    /// Merchant: what a code is worth here. Changes nothing; an unknown, a
    /// malformed and a foreign code answer alike (`invalid`), and count
    /// against the key's invalid attempts.
    pub async fn validate_voucher(
        &self,
        context: &MerchantContext,
        request: ValidateVoucher,
    ) -> GatewayResult<VoucherValidation> {
        context.require(malipo_core::objects::Scope::PaymentsWrite)?;
        let input = request.code.ok_or_else(|| ApiError::missing("code"))?;
        let now = now_seconds();
        self.voucher_attempts().check(&context.key_id, now)?;
        let found = match VoucherCode::parse(&input) {
            Some(code) => {
                let mut reader = self.store().reader().await?;
                reader.conn().voucher_by_code_hash(&code.hash(self)).await?
            }
            None => None,
        };
        let answer = match judge(found, context, now) {
            Ok(voucher) => VoucherValidation {
                object: "voucher_validation",
                status: VoucherValidity::Valid,
                currency: Some(voucher.currency),
                remaining: Some(amount_of(voucher.remaining)),
                expires_at: Some(voucher.expires_at),
            },
            Err(validity) => {
                if validity == VoucherValidity::Invalid {
                    self.voucher_attempts().record_failure(&context.key_id, now);
                }
                VoucherValidation {
                    object: "voucher_validation",
                    status: validity,
                    currency: None,
                    remaining: None,
                    expires_at: None,
                }
            }
        };
        metrics::counter!("malipo_voucher_validations_total", "status" => format!("{:?}", answer.status).to_ascii_lowercase()).increment(1);
        Ok(answer)
    }

    /// `POST /v1/payments` with method `voucher`: takes the amount from the
    /// voucher and writes the succeeded payment, its ledger entries (the
    /// payment's and the voucher's), its events, the redemption and the
    /// idempotency record in one transaction. An unusable code is a 4xx
    /// naming `voucher[code]` and changes nothing.
    pub(crate) async fn create_voucher_payment(
        &self,
        context: &MerchantContext,
        new: NewPayment,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Payment> {
        if !new.confirm {
            return Err(ApiError::invalid(
                "confirm",
                "a voucher pays at once: confirm must be true (or omitted)",
            )
            .into());
        }
        let now = now_seconds();
        self.voucher_attempts().check(&context.key_id, now)?;
        let Some(code) = new.voucher.clone().and_then(|voucher| voucher.0) else {
            self.voucher_attempts().record_failure(&context.key_id, now);
            return Err(refusal(VoucherValidity::Invalid).into());
        };
        let code_hash = code.hash(self);
        let fee = self
            .fee_schedule(&context.merchant_id, PaymentMethod::Voucher)
            .await?
            .fee_for(MinorUnits::from(new.amount));
        let fee = u64::try_from(fee.get()).map_err(GatewayError::internal)?;
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let voucher = match judge(conn.voucher_by_code_hash(&code_hash).await?, context, now) {
            Ok(voucher) => voucher,
            Err(validity) => {
                if validity == VoucherValidity::Invalid {
                    self.voucher_attempts().record_failure(&context.key_id, now);
                }
                return Err(refusal(validity).into());
            }
        };
        if voucher.currency != new.asset.code() {
            return Err(ApiError::invalid(
                "currency",
                format!("this voucher pays in `{}`", voucher.currency),
            )
            .into());
        }
        let amount = i64::try_from(new.amount)
            .ok()
            .filter(|amount| *amount <= voucher.remaining)
            .ok_or_else(|| insufficient(&voucher))?;
        if !conn.redeem_voucher(&voucher.id, amount, now).await? {
            // Another redemption got there first, or it expired just now.
            let current = conn.voucher_by_code_hash(&code_hash).await?;
            return Err(match judge(current, context, now) {
                Ok(voucher) => insufficient(&voucher),
                Err(validity) => refusal(validity),
            }
            .into());
        }
        let mut record = PaymentRecord {
            merchant_id: context.merchant_id.clone(),
            payment: Payment {
                id: new_id(IdKind::Payment),
                object: "payment",
                livemode: context.livemode(),
                amount: new.amount,
                currency: voucher.currency.clone(),
                method: PaymentMethod::Voucher,
                connector: VOUCHER_CONNECTOR.to_owned(),
                status: PaymentStatus::RequiresConfirmation,
                capture_method: malipo_core::payment::CaptureMethod::Automatic,
                amount_capturable: 0,
                amount_received: 0,
                reference: new.reference,
                description: new.description,
                customer: new.customer,
                credit_customer: None,
                amount_refunded: 0,
                fee,
                net: new.amount - fee,
                next_action: None,
                return_url: None,
                payment_method: None,
                failure: None,
                metadata: new.metadata,
                expires_at: now,
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
        let mut events = vec![event(
            &record.merchant_id,
            record.payment.livemode,
            "payment.created",
            &record.payment,
        )?];
        let (mut money, succeeded) = plan_outcome(
            &mut record,
            PaymentOutcome::Succeeded {
                provider_reference: Some(voucher.id.clone()),
            },
        )?;
        events.extend(succeeded);
        let (outstanding, redemption) = ledger_entries::voucher_redeemed(&record);
        money.ledger_accounts.push(outstanding);
        money.transfers.push(redemption);
        conn.insert_payment(&record).await?;
        money.write(&mut conn, &record.merchant_id).await?;
        conn.insert_events(&events).await?;
        conn.insert_voucher_redemption(&record.payment.id, &voucher.id, amount, now)
            .await?;
        complete(&mut conn, guard.as_ref(), &record.payment).await?;
        tx.commit().await?;
        metrics::counter!("malipo_voucher_redemptions_total").increment(1);
        Ok(record.payment)
    }

    /// Worker step: marks active vouchers past `expires_at` expired and
    /// releases what they still held from the liability; answers how many.
    /// A voucher is released once: the conditional UPDATE and the transfer
    /// id (`vch_….expire`) both refuse a second time.
    pub async fn expire_due_vouchers(&self, limit: i64) -> GatewayResult<usize> {
        let now = now_seconds();
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let due = conn.vouchers_due_for_expiry(now, limit).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let mut accounts = Vec::new();
        let mut transfers = Vec::new();
        let mut expired = 0;
        for voucher in due {
            if !conn.expire_voucher(&voucher.id, now).await? {
                continue;
            }
            expired += 1;
            if voucher.remaining > 0 {
                let (touched, release) = ledger_entries::voucher_expired(
                    voucher.livemode,
                    &voucher.currency,
                    &voucher.id,
                    voucher.remaining as u128,
                );
                accounts.extend(touched);
                transfers.push(release);
            }
        }
        post(&mut conn, &accounts, &transfers).await?;
        tx.commit().await?;
        tracing::info!(expired, "expired vouchers released their liability");
        metrics::counter!("malipo_vouchers_expired_total").increment(expired as u64);
        Ok(expired)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_unambiguous_alphabet_and_read_back_any_way() {
        let code = VoucherCode::generate();
        assert_eq!(code.0.len(), VOUCHER_CODE_LENGTH);
        assert!(!code.0.contains(['0', 'O', '1', 'I', 'L']));
        let grouped = code.grouped();
        assert_eq!(grouped.len(), 19);
        assert_eq!(grouped.matches('-').count(), 3);
        assert_eq!(VoucherCode::parse(&grouped), Some(code.clone()));
        assert_eq!(
            VoucherCode::parse(&grouped.to_ascii_lowercase().replace('-', " ")),
            Some(code.clone())
        );
        assert_eq!(VoucherCode::parse(&code.0), Some(code.clone()));
        assert_ne!(VoucherCode::generate(), code);
        assert!(!format!("{code:?}").contains(&code.0));
    }

    #[test]
    fn malformed_codes_are_not_codes() {
        assert_eq!(VoucherCode::parse("ABCD-EFGH-JKMN-PQR0"), None, "0");
        assert_eq!(VoucherCode::parse("ABCD-EFGH-JKMN-PQRO"), None, "O");
        assert_eq!(VoucherCode::parse("ABCD-EFGH-JKMN-PQR"), None, "short");
        assert_eq!(VoucherCode::parse("ABCD-EFGH-JKMN-PQRST"), None, "long");
        assert_eq!(VoucherCode::parse(&"-".repeat(100)), None);
        assert!(VoucherCode::parse("abcd-efgh-jkmn-pqrs").is_some());
    }

    #[test]
    fn every_character_is_about_equally_likely() {
        let mut counts = [0u32; 31];
        for _ in 0..2_000 {
            for b in VoucherCode::generate().0.bytes() {
                let index = VOUCHER_CODE_ALPHABET.iter().position(|c| *c == b).unwrap();
                counts[index] += 1;
            }
        }
        // 32,000 draws: ~1,032 each; a biased modulo would skew the first ones.
        assert!(
            counts.iter().all(|n| (850..1_220).contains(n)),
            "{counts:?}"
        );
    }

    #[test]
    fn invalid_attempts_are_limited_per_key_and_minute() {
        let windows = AttemptWindows::default();
        for _ in 0..VOUCHER_INVALID_ATTEMPTS_PER_KEY_PER_MINUTE {
            assert!(windows.check("key_a", 120).is_ok());
            windows.record_failure("key_a", 120);
        }
        let refused = windows.check("key_a", 150).unwrap_err();
        assert_eq!(refused.kind, ErrorKind::RateLimit);
        assert!(
            windows.check("key_b", 150).is_ok(),
            "other keys are not affected"
        );
        assert!(
            windows.check("key_a", 180).is_ok(),
            "the next minute starts afresh"
        );
    }
}
