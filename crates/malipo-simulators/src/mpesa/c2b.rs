//! C2B: register Validation/Confirmation URLs, then a customer pays the
//! shortcode: the ValidationURL is asked first (when External Validation
//! is on), then the ConfirmationURL is told.

use super::stk::{is_kenyan_msisdn, is_shortcode};
use super::{DarajaError, MpesaState, Receipt};
use crate::Error;
use crate::clock::{CivilTime, now_unix_ms};
use crate::context::{Callback, is_callback_url};
use crate::ids;
use crate::json::{digits_either, optional_text, parse_object, text, whole_amount_either};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use std::time::Duration;

/// Words Daraja refuses inside C2B URLs (per SDK notes), lowercase.
const FORBIDDEN_URL_WORDS: &[&str] = &[
    "m-pesa",
    "mpesa",
    "safaricom",
    "exe",
    "exec",
    "cmd",
    "sql",
    "query",
];

/// Which register API version a shortcode used: v2 masks the MSISDN in
/// the notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiVersion {
    V1,
    V2,
}

/// What M-Pesa does when the ValidationURL does not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseType {
    Completed,
    Cancelled,
}

/// A shortcode's registered URLs.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    version: ApiVersion,
    response_type: ResponseType,
    confirmation_url: String,
    validation_url: String,
}

/// The kind of C2B payment (Daraja's `CommandID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum C2bCommand {
    CustomerPayBillOnline,
    CustomerBuyGoodsOnline,
}

impl C2bCommand {
    fn parse(text: &str) -> Option<C2bCommand> {
        match text {
            "CustomerPayBillOnline" => Some(C2bCommand::CustomerPayBillOnline),
            "CustomerBuyGoodsOnline" => Some(C2bCommand::CustomerBuyGoodsOnline),
            _ => None,
        }
    }

    /// The `TransactionType` notifications carry.
    fn transaction_type(self) -> &'static str {
        match self {
            C2bCommand::CustomerPayBillOnline => "Pay Bill",
            C2bCommand::CustomerBuyGoodsOnline => "Buy Goods",
        }
    }
}

/// A customer paying a shortcode (what `/mpesa/c2b/v1/simulate` asks for).
#[derive(Debug, Clone)]
pub struct C2bPayment {
    pub shortcode: String,
    pub command: C2bCommand,
    /// Whole KES.
    pub amount: u64,
    /// `2547XXXXXXXX`.
    pub msisdn: String,
    /// The account number the customer typed (paybill only).
    pub bill_ref_number: Option<String>,
}

impl C2bPayment {
    /// A paybill payment of `amount` KES from the sandbox test MSISDN.
    pub fn paybill(shortcode: &str, amount: u64, bill_ref_number: &str) -> C2bPayment {
        C2bPayment {
            shortcode: shortcode.to_string(),
            command: C2bCommand::CustomerPayBillOnline,
            amount,
            msisdn: crate::DARAJA_SANDBOX_MSISDN.to_string(),
            bill_ref_number: Some(bill_ref_number.to_string()),
        }
    }

    /// Reads Daraja's simulate body; `Err(field)` names the first bad field.
    fn from_body(body: &Value, command_required: bool) -> Result<C2bPayment, &'static str> {
        let shortcode = digits_either(body, "ShortCode")
            .filter(|digits| is_shortcode(digits))
            .ok_or("ShortCode")?;
        let command = match text(body, "CommandID") {
            Some(command) => C2bCommand::parse(command).ok_or("CommandID")?,
            None if command_required => return Err("CommandID"),
            None => C2bCommand::CustomerPayBillOnline,
        };
        let amount = whole_amount_either(body, "Amount")
            .filter(|amount| *amount >= 1)
            .ok_or("Amount")?;
        let msisdn = digits_either(body, "Msisdn")
            .filter(|digits| is_kenyan_msisdn(digits))
            .ok_or("Msisdn")?;
        let bill_ref_number = optional_text(body, "BillRefNumber")
            .ok_or("BillRefNumber")?
            .map(str::to_string);
        if command == C2bCommand::CustomerPayBillOnline
            && bill_ref_number
                .as_deref()
                .is_none_or(|text| text.trim().is_empty())
        {
            return Err("BillRefNumber");
        }
        Ok(C2bPayment {
            shortcode,
            command,
            amount,
            msisdn,
            bill_ref_number,
        })
    }

    fn validate(&self) -> Result<(), &'static str> {
        if !(is_shortcode(&self.shortcode) && self.shortcode.bytes().all(|b| b.is_ascii_digit())) {
            return Err("ShortCode");
        }
        if self.amount == 0 {
            return Err("Amount");
        }
        if !(is_kenyan_msisdn(&self.msisdn) && self.msisdn.bytes().all(|b| b.is_ascii_digit())) {
            return Err("Msisdn");
        }
        Ok(())
    }
}

/// What the merchant's ValidationURL said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum C2bValidation {
    /// No URLs are registered for the shortcode: M-Pesa takes the money
    /// and tells nobody.
    NotRegistered,
    /// External validation is off: straight to confirmation.
    Skipped,
    /// `ResultCode` `"0"` (or `0`); `ThirdPartyTransID` is echoed in the
    /// confirmation.
    Accepted {
        third_party_trans_id: Option<String>,
    },
    /// Any other `ResultCode` (e.g. `C2B00012`): the payment is cancelled.
    Rejected { result_code: String },
    /// No usable answer in time: the registered ResponseType decides.
    Unanswered,
}

/// How a C2B payment went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct C2bOutcome {
    /// The M-Pesa transaction id (`TransID`).
    pub trans_id: String,
    pub validation: C2bValidation,
    /// Whether the money moved (and the confirmation was due).
    pub completed: bool,
    /// Whether the ConfirmationURL answered 2xx.
    pub confirmation_delivered: bool,
}

/// Daraja v2 masks the MSISDN: `2547 ***** 149`.
fn masked_msisdn(msisdn: &str) -> String {
    let start = msisdn.get(..4).unwrap_or_default();
    let end = msisdn
        .get(msisdn.len().saturating_sub(3)..)
        .unwrap_or_default();
    format!("{start} ***** {end}")
}

fn url_field(body: &Value, key: &'static str) -> Result<String, DarajaError> {
    text(body, key)
        .filter(|url| is_callback_url(url))
        .filter(|url| {
            let lowercase = url.to_ascii_lowercase();
            !FORBIDDEN_URL_WORDS
                .iter()
                .any(|word| lowercase.contains(word))
        })
        .map(str::to_string)
        .ok_or_else(|| DarajaError::invalid(key))
}

pub(super) async fn register_v1(
    State(state): State<MpesaState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, DarajaError> {
    register(state, headers, body, ApiVersion::V1)
}

pub(super) async fn register_v2(
    State(state): State<MpesaState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, DarajaError> {
    register(state, headers, body, ApiVersion::V2)
}

/// `POST /mpesa/c2b/v{1,2}/registerurl`.
fn register(
    state: MpesaState,
    headers: HeaderMap,
    body: Bytes,
    version: ApiVersion,
) -> Result<Response, DarajaError> {
    state.authorize(&headers)?;
    let body = parse_object(&body).ok_or_else(DarajaError::malformed)?;
    let shortcode = digits_either(&body, "ShortCode")
        .filter(|digits| is_shortcode(digits))
        .ok_or_else(|| DarajaError::invalid("ShortCode"))?;
    let response_type = match text(&body, "ResponseType") {
        Some("Completed") => ResponseType::Completed,
        Some("Cancelled") => ResponseType::Cancelled,
        _ => return Err(DarajaError::invalid("ResponseType")),
    };
    let confirmation_url = url_field(&body, "ConfirmationURL")?;
    let validation_url = url_field(&body, "ValidationURL")?;
    state.ensure_capacity()?;
    let register_once = state.config().c2b_urls_register_once;
    {
        let mut book = state.book();
        if register_once && book.c2b_registrations.contains_key(&shortcode) {
            return Err(DarajaError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "500.003.1001",
                "Urls are already registered",
            ));
        }
        book.c2b_registrations.insert(
            shortcode,
            Registration {
                version,
                response_type,
                confirmation_url,
                validation_url,
            },
        );
    }
    // `OriginatorCoversationID` (sic): Daraja's own spelling.
    Ok(axum::Json(json!({
        "OriginatorCoversationID": ids::originator_conversation_id(),
        "ResponseCode": "0",
        "ResponseDescription": "success",
    }))
    .into_response())
}

/// `POST /mpesa/c2b/v{1,2}/simulate`: accepted at once, the payment runs
/// after the callback delay.
pub(super) async fn simulate(
    State(state): State<MpesaState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, DarajaError> {
    state.authorize(&headers)?;
    let body = parse_object(&body).ok_or_else(DarajaError::malformed)?;
    let payment = C2bPayment::from_body(&body, true).map_err(DarajaError::invalid)?;
    state.ensure_capacity()?;
    let task_state = state.clone();
    state.context.spawn(async move {
        task_state.context.customer_delay().await;
        task_state.run_c2b_payment(payment).await;
    });
    Ok(axum::Json(json!({
        "OriginatorCoversationID": ids::originator_conversation_id(),
        "ResponseCode": "0",
        "ResponseDescription": "Accept the service request successfully.",
    }))
    .into_response())
}

/// `POST /simulate/c2b` (simulator control, no auth): runs a payment now
/// and answers its [`C2bOutcome`]. Takes Daraja's simulate body;
/// `CommandID` defaults to `CustomerPayBillOnline`.
pub(super) async fn control_simulate(
    State(state): State<MpesaState>,
    body: Bytes,
) -> Result<Response, DarajaError> {
    let body = parse_object(&body).ok_or_else(DarajaError::malformed)?;
    let payment = C2bPayment::from_body(&body, false).map_err(DarajaError::invalid)?;
    state.ensure_capacity()?;
    let outcome = state.run_c2b_payment(payment).await;
    Ok(axum::Json(outcome).into_response())
}

impl MpesaState {
    /// A customer pays `payment.shortcode` now: validation, then
    /// confirmation, as registered. Waits for both calls.
    pub async fn simulate_c2b_payment(&self, payment: C2bPayment) -> Result<C2bOutcome, Error> {
        payment
            .validate()
            .map_err(|field| Error::InvalidRequest(format!("invalid C2B payment field {field}")))?;
        self.ensure_capacity().map_err(|_| {
            Error::InvalidRequest("the simulator holds transactions_max transactions".into())
        })?;
        Ok(self.run_c2b_payment(payment).await)
    }

    async fn run_c2b_payment(&self, payment: C2bPayment) -> C2bOutcome {
        let config = self.config().clone();
        let registration = self
            .book()
            .c2b_registrations
            .get(&payment.shortcode)
            .cloned();
        let trans_id = ids::uppercase_alphanumeric(10);
        let now = CivilTime::east_africa(now_unix_ms());
        let msisdn = match registration
            .as_ref()
            .map(|registration| registration.version)
        {
            Some(ApiVersion::V2) => masked_msisdn(&payment.msisdn),
            _ => payment.msisdn.clone(),
        };
        // Every value is a string on the wire, amounts with two decimals.
        let mut notification = json!({
            "TransactionType": payment.command.transaction_type(),
            "TransID": trans_id,
            "TransTime": now.compact(),
            "TransAmount": format!("{}.00", payment.amount),
            "BusinessShortCode": payment.shortcode,
            "BillRefNumber": payment.bill_ref_number.clone().unwrap_or_default(),
            "InvoiceNumber": "",
            "OrgAccountBalance": "",
            "ThirdPartyTransID": "",
            "MSISDN": msisdn,
            "FirstName": config.customer_first_name,
            "MiddleName": "",
            "LastName": config.customer_last_name,
        });
        let Some(registration) = registration else {
            self.record_c2b(&trans_id, &payment);
            return C2bOutcome {
                trans_id,
                validation: C2bValidation::NotRegistered,
                completed: true,
                confirmation_delivered: false,
            };
        };

        let validation = if config.c2b_external_validation {
            let callback = Callback::post(
                "c2b_validation",
                &registration.validation_url,
                notification.clone(),
            );
            let timeout = Duration::from_millis(config.c2b_validation_timeout_ms.max(1));
            match self.context.attempt(&callback, 1, Some(timeout)).await {
                Ok(answer) if (200..300).contains(&answer.status) => {
                    read_validation_answer(&answer.body)
                }
                _ => C2bValidation::Unanswered,
            }
        } else {
            C2bValidation::Skipped
        };
        let proceed = match &validation {
            C2bValidation::Accepted { .. } | C2bValidation::Skipped => true,
            C2bValidation::Rejected { .. } => false,
            C2bValidation::Unanswered | C2bValidation::NotRegistered => {
                registration.response_type == ResponseType::Completed
            }
        };
        if !proceed {
            return C2bOutcome {
                trans_id,
                validation,
                completed: false,
                confirmation_delivered: false,
            };
        }

        let balance = self.record_c2b(&trans_id, &payment);
        notification["OrgAccountBalance"] = json!(format!("{balance}.00"));
        if let C2bValidation::Accepted {
            third_party_trans_id: Some(id),
        } = &validation
        {
            notification["ThirdPartyTransID"] = json!(id);
        }
        let confirmation = Callback::post(
            "c2b_confirmation",
            &registration.confirmation_url,
            notification,
        );
        let confirmation_delivered = self.context.deliver(&confirmation).await;
        C2bOutcome {
            trans_id,
            validation,
            completed: true,
            confirmation_delivered,
        }
    }

    /// Records a completed C2B payment; returns the shortcode's new balance.
    fn record_c2b(&self, trans_id: &str, payment: &C2bPayment) -> u64 {
        let counterparty = format!(
            "{} - {} {}",
            payment.msisdn,
            self.config().customer_first_name,
            self.config().customer_last_name
        );
        let mut book = self.book();
        book.receipts.insert(
            trans_id.to_string(),
            Receipt {
                amount: payment.amount,
                counterparty,
                reversed: false,
            },
        );
        let balance = book
            .shortcode_balances
            .entry(payment.shortcode.clone())
            .or_insert(0);
        *balance = balance.saturating_add(payment.amount);
        *balance
    }
}

/// Reads a ValidationURL answer: `ResultCode` `"0"` or `0` accepts.
fn read_validation_answer(body: &str) -> C2bValidation {
    let Ok(answer) = serde_json::from_str::<Value>(body) else {
        return C2bValidation::Unanswered;
    };
    let code = match answer.get("ResultCode") {
        Some(Value::String(code)) => code.clone(),
        Some(Value::Number(code)) => code.to_string(),
        _ => return C2bValidation::Unanswered,
    };
    if code == "0" {
        C2bValidation::Accepted {
            third_party_trans_id: answer
                .get("ThirdPartyTransID")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_string),
        }
    } else {
        C2bValidation::Rejected { result_code: code }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_masks_the_msisdn() {
        assert_eq!(masked_msisdn("254708374149"), "2547 ***** 149");
    }

    #[test]
    fn validation_answers() {
        assert_eq!(
            read_validation_answer(r#"{"ResultCode": "0", "ResultDesc": "Accepted"}"#),
            C2bValidation::Accepted {
                third_party_trans_id: None
            }
        );
        assert_eq!(
            read_validation_answer(r#"{"ResultCode": 0, "ThirdPartyTransID": "abc"}"#),
            C2bValidation::Accepted {
                third_party_trans_id: Some("abc".into())
            }
        );
        assert_eq!(
            read_validation_answer(r#"{"ResultCode": "C2B00012", "ResultDesc": "Rejected"}"#),
            C2bValidation::Rejected {
                result_code: "C2B00012".into()
            }
        );
        assert_eq!(read_validation_answer("ok"), C2bValidation::Unanswered);
    }
}
