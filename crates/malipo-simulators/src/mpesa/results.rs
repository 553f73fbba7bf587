//! APIs answered by an asynchronous `Result` POSTed to `ResultURL`:
//! B2C payment request and transaction reversal.

use super::stk::{is_kenyan_msisdn, is_shortcode};
use super::{DarajaError, MpesaState, Receipt, ResultScenario, result_description};
use crate::clock::{CivilTime, now_unix_ms};
use crate::context::{Callback, is_callback_url};
use crate::ids;
use crate::json::{digits_either, optional_text, parse_object, text, whole_amount_either};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// B2C ResultCodes the simulator sends, chosen by amount like STK
/// ([`ResultScenario::for_b2c_amount`]); an InitiatorName other than the
/// configured one always gets 2001.
pub const B2C_RESULT_CODES: &[(u32, &str)] = &[
    (0, "The service request is processed successfully."),
    (1, "The balance is insufficient for the transaction."),
    (
        2,
        "Declined due to limit rule: less than the smallest transaction amount allowed.",
    ),
    (11, "The DebitParty is in an invalid state."),
    (21, "The initiator is not allowed to initiate this request."),
    (2001, "The initiator information is invalid."),
    (
        2040,
        "Credit Party customer type (Unregistered or Registered Customer) can't be supported by the service.",
    ),
    (8006, "The security credential is locked."),
];

/// Reversal ResultCodes. The simulator decides by state, not amount:
/// `0` for a receipt it issued (STK, C2B or B2C) that is not yet reversed,
/// `R000001` for one already reversed, `R000002` for an id it never issued,
/// `2001` when `Initiator` is not the configured one. The `R` codes are
/// JSON strings on the wire, the numeric ones numbers.
pub const REVERSAL_RESULT_CODES: &[(&str, &str)] = &[
    ("0", "The service request is processed successfully."),
    ("R000001", "The transaction has already been reversed."),
    ("R000002", "The OriginalTransactionID is invalid."),
    ("2001", "The initiator information is invalid."),
];

const B2C_QUEUE_TIMEOUT_URL: &str =
    "https://internalsandbox.safaricom.co.ke/mpesa/b2cresults/v1/submit";
const REVERSAL_QUEUE_TIMEOUT_URL: &str =
    "https://internalsandbox.safaricom.co.ke/mpesa/reversalresults/v1/submit";

fn url_field(body: &Value, key: &str) -> Result<String, DarajaError> {
    text(body, key)
        .filter(|url| is_callback_url(url))
        .map(str::to_string)
        .ok_or_else(|| DarajaError::invalid(key))
}

/// Remarks: 2 to 100 characters.
fn remarks_field(body: &Value) -> Result<(), DarajaError> {
    text(body, "Remarks")
        .filter(|remarks| (2..=100).contains(&remarks.chars().count()))
        .map(|_| ())
        .ok_or_else(|| DarajaError::invalid("Remarks"))
}

fn reference_data(queue_timeout_url: &str) -> Value {
    // A single object, not an array: Daraja's shape.
    json!({"ReferenceItem": {"Key": "QueueTimeoutURL", "Value": queue_timeout_url}})
}

pub(super) async fn b2c_v1(
    State(state): State<MpesaState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, DarajaError> {
    b2c(state, headers, body, false)
}

pub(super) async fn b2c_v3(
    State(state): State<MpesaState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, DarajaError> {
    b2c(state, headers, body, true)
}

/// `POST /mpesa/b2c/v1/paymentrequest` and `/v3/` (v3 takes the
/// client's `OriginatorConversationID` and echoes it).
fn b2c(
    state: MpesaState,
    headers: HeaderMap,
    body: Bytes,
    originator_id_in_request: bool,
) -> Result<Response, DarajaError> {
    state.authorize(&headers)?;
    let body = parse_object(&body).ok_or_else(DarajaError::malformed)?;
    let originator_conversation_id = if originator_id_in_request {
        text(&body, "OriginatorConversationID")
            .ok_or_else(|| DarajaError::invalid("OriginatorConversationID"))?
            .to_string()
    } else {
        ids::originator_conversation_id()
    };
    let initiator = text(&body, "InitiatorName")
        .ok_or_else(|| DarajaError::invalid("InitiatorName"))?
        .to_string();
    text(&body, "SecurityCredential").ok_or_else(|| DarajaError::invalid("SecurityCredential"))?;
    text(&body, "CommandID")
        .filter(|command| {
            matches!(
                *command,
                "BusinessPayment" | "SalaryPayment" | "PromotionPayment"
            )
        })
        .ok_or_else(|| DarajaError::invalid("CommandID"))?;
    let amount = whole_amount_either(&body, "Amount")
        .filter(|amount| *amount >= 1)
        .ok_or_else(|| DarajaError::invalid("Amount"))?;
    digits_either(&body, "PartyA")
        .filter(|digits| is_shortcode(digits))
        .ok_or_else(|| DarajaError::invalid("PartyA"))?;
    let party_b = digits_either(&body, "PartyB")
        .filter(|digits| is_kenyan_msisdn(digits))
        .ok_or_else(|| DarajaError::invalid("PartyB"))?;
    remarks_field(&body)?;
    url_field(&body, "QueueTimeOutURL")?;
    let result_url = url_field(&body, "ResultURL")?;
    // B2C v1's documented key is `Occassion` (sic); clients send either.
    optional_text(&body, "Occassion").ok_or_else(|| DarajaError::invalid("Occassion"))?;
    optional_text(&body, "Occasion").ok_or_else(|| DarajaError::invalid("Occasion"))?;
    state.ensure_capacity()?;
    state.book().results_requested += 1;

    let now = CivilTime::east_africa(now_unix_ms());
    let conversation_id = ids::conversation_id(&now.date());
    let scenario = if initiator == state.config().initiator_name {
        ResultScenario::for_b2c_amount(amount)
    } else {
        ResultScenario::Completes(2001)
    };
    let response = json!({
        "ConversationID": conversation_id,
        "OriginatorConversationID": originator_conversation_id,
        "ResponseCode": "0",
        "ResponseDescription": "Accept the service request successfully.",
    });
    if let Some(result_code) = scenario.result_code() {
        let task_state = state.clone();
        state.context.spawn(async move {
            task_state.context.customer_delay().await;
            let counterparty = format!(
                "{party_b} - {} {}",
                task_state.config().customer_first_name,
                task_state.config().customer_last_name
            );
            let transaction_id = if result_code == 0 {
                task_state.issue_receipt(amount, counterparty.clone())
            } else {
                ids::uppercase_alphanumeric(10)
            };
            let mut result = json!({
                "ResultType": 0,
                "ResultCode": result_code,
                "ResultDesc": result_description(B2C_RESULT_CODES, result_code),
                "OriginatorConversationID": originator_conversation_id,
                "ConversationID": conversation_id,
                "TransactionID": transaction_id,
            });
            if result_code == 0 {
                let completed = CivilTime::east_africa(now_unix_ms());
                // Amount an integer, balances floats, dates strings: as sent.
                result["ResultParameters"] = json!({"ResultParameter": [
                    {"Key": "TransactionAmount", "Value": amount},
                    {"Key": "TransactionReceipt", "Value": transaction_id},
                    {"Key": "B2CRecipientIsRegisteredCustomer", "Value": "Y"},
                    {"Key": "B2CChargesPaidAccountAvailableFunds", "Value": -4510.5},
                    {"Key": "ReceiverPartyPublicName", "Value": counterparty},
                    {"Key": "TransactionCompletedDateTime", "Value": completed.dotted()},
                    {"Key": "B2CUtilityAccountAvailableFunds", "Value": 10116.5},
                    {"Key": "B2CWorkingAccountAvailableFunds", "Value": 900000.5},
                ]});
            }
            result["ReferenceData"] = reference_data(B2C_QUEUE_TIMEOUT_URL);
            let callback = Callback::post("b2c_result", &result_url, json!({"Result": result}));
            for _ in 0..scenario.callback_copies() {
                task_state.context.deliver(&callback).await;
            }
        });
    }
    Ok(axum::Json(response).into_response())
}

/// How a reversal ends.
#[derive(Debug, Clone)]
enum ReversalOutcome {
    Reversed(Receipt),
    AlreadyReversed,
    UnknownTransaction,
    InvalidInitiator,
}

/// `POST /mpesa/reversal/v1/request`.
pub(super) async fn reversal(
    State(state): State<MpesaState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, DarajaError> {
    state.authorize(&headers)?;
    let body = parse_object(&body).ok_or_else(DarajaError::malformed)?;
    let initiator = text(&body, "Initiator")
        .ok_or_else(|| DarajaError::invalid("Initiator"))?
        .to_string();
    text(&body, "SecurityCredential").ok_or_else(|| DarajaError::invalid("SecurityCredential"))?;
    text(&body, "CommandID")
        .filter(|command| *command == "TransactionReversal")
        .ok_or_else(|| DarajaError::invalid("CommandID"))?;
    let original_transaction_id = text(&body, "TransactionID")
        .ok_or_else(|| DarajaError::invalid("TransactionID"))?
        .to_string();
    whole_amount_either(&body, "Amount")
        .filter(|amount| *amount >= 1)
        .ok_or_else(|| DarajaError::invalid("Amount"))?;
    let receiver_party = digits_either(&body, "ReceiverParty")
        .filter(|digits| is_shortcode(digits))
        .ok_or_else(|| DarajaError::invalid("ReceiverParty"))?;
    // Daraja's key is misspelled `RecieverIdentifierType`; a client that
    // "corrects" it is sending a field Daraja does not know.
    digits_either(&body, "RecieverIdentifierType")
        .filter(|kind| matches!(kind.as_str(), "11" | "4"))
        .ok_or_else(|| DarajaError::invalid("RecieverIdentifierType"))?;
    let result_url = url_field(&body, "ResultURL")?;
    url_field(&body, "QueueTimeOutURL")?;
    remarks_field(&body)?;
    optional_text(&body, "Occasion").ok_or_else(|| DarajaError::invalid("Occasion"))?;
    state.ensure_capacity()?;
    state.book().results_requested += 1;

    let now = CivilTime::east_africa(now_unix_ms());
    let originator_conversation_id = ids::originator_conversation_id();
    let conversation_id = ids::conversation_id(&now.date());
    let response = json!({
        "OriginatorConversationID": originator_conversation_id,
        "ConversationID": conversation_id,
        "ResponseCode": "0",
        "ResponseDescription": "Accept the service request successfully.",
    });
    let task_state = state.clone();
    state.context.spawn(async move {
        task_state.context.customer_delay().await;
        let outcome = if initiator == task_state.config().initiator_name {
            task_state.reverse(&original_transaction_id)
        } else {
            ReversalOutcome::InvalidInitiator
        };
        let (result_code, description) = match &outcome {
            ReversalOutcome::Reversed(_) => (json!(0), REVERSAL_RESULT_CODES[0].1),
            ReversalOutcome::AlreadyReversed => (json!("R000001"), REVERSAL_RESULT_CODES[1].1),
            ReversalOutcome::UnknownTransaction => {
                (json!("R000002"), REVERSAL_RESULT_CODES[2].1)
            }
            ReversalOutcome::InvalidInitiator => (json!(2001), REVERSAL_RESULT_CODES[3].1),
        };
        let mut result = json!({
            "ResultType": 0,
            "ResultCode": result_code,
            "ResultDesc": description,
            "OriginatorConversationID": originator_conversation_id,
            "ConversationID": conversation_id,
            "TransactionID": ids::uppercase_alphanumeric(10),
        });
        if let ReversalOutcome::Reversed(receipt) = &outcome {
            let completed = CivilTime::east_africa(now_unix_ms());
            let completed_number: u64 = completed.compact().parse().unwrap_or_default();
            result["ResultParameters"] = json!({"ResultParameter": [
                {"Key": "DebitAccountBalance", "Value": "Utility Account|KES|7722179.62|7722179.62|0.00|0.00"},
                {"Key": "Amount", "Value": receipt.amount as f64},
                {"Key": "TransCompletedTime", "Value": completed_number},
                {"Key": "OriginalTransactionID", "Value": original_transaction_id},
                {"Key": "Charge", "Value": 0.0},
                {"Key": "CreditPartyPublicName", "Value": receipt.counterparty},
                {"Key": "DebitPartyPublicName", "Value": format!("{receiver_party} - Malipo Simulator")},
            ]});
        }
        result["ReferenceData"] = reference_data(REVERSAL_QUEUE_TIMEOUT_URL);
        let callback = Callback::post("reversal_result", &result_url, json!({"Result": result}));
        task_state.context.deliver(&callback).await;
    });
    Ok(axum::Json(response).into_response())
}

impl MpesaState {
    /// Marks `transaction_id` reversed if the simulator issued it.
    fn reverse(&self, transaction_id: &str) -> ReversalOutcome {
        let mut book = self.book();
        match book.receipts.get_mut(transaction_id) {
            None => ReversalOutcome::UnknownTransaction,
            Some(receipt) if receipt.reversed => ReversalOutcome::AlreadyReversed,
            Some(receipt) => {
                receipt.reversed = true;
                ReversalOutcome::Reversed(receipt.clone())
            }
        }
    }
}
