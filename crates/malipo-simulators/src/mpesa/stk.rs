//! Lipa Na M-Pesa Online (STK push) and its query.

use super::{DarajaError, MpesaState, Receipt, ResultScenario, result_description};
use crate::clock::{CivilTime, is_compact_timestamp, now_unix_ms};
use crate::context::{Callback, is_callback_url};
use crate::ids;
use crate::json::{digits_either, optional_text, parse_object, text, whole_amount_either};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

/// STK ResultCodes (callback and query) with the descriptions the
/// simulator sends. Codes of 1 000 or more are chosen by that amount, the
/// others by `9000 + code`; see [`ResultScenario::for_stk_amount`].
pub const STK_RESULT_CODES: &[(u32, &str)] = &[
    (0, "The service request is processed successfully."),
    (1, "The balance is insufficient for the transaction."),
    (
        2,
        "Declined due to limit rule: less than the smallest transaction amount allowed.",
    ),
    (
        3,
        "Declined due to limit rule: greater than the maximum transaction amount.",
    ),
    (
        4,
        "Declined due to limit rule: would exceed daily transfer limit.",
    ),
    (
        8,
        "Declined due to limit rule: would exceed the maximum balance.",
    ),
    (17, "Rule limited."),
    (26, "System busy. The service request is rejected."),
    (
        1001,
        "Unable to lock subscriber, a transaction is already in process for the current subscriber",
    ),
    (1019, "Transaction has expired"),
    (1025, "An error occurred while sending a push request"),
    (1032, "Request cancelled by user"),
    (1037, "DS timeout user cannot be reached"),
    (2001, "The initiator information is invalid."),
    (
        2028,
        "The request is not permitted according to product assignment.",
    ),
    (8006, "The security credential is locked"),
    (9999, "An error occurred while sending a push request"),
];

/// The STK `Password`: standard base64 (padded) of
/// `shortcode + passkey + timestamp`.
pub fn stk_password(shortcode: &str, passkey: &str, timestamp: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{shortcode}{passkey}{timestamp}"))
}

/// One STK push the simulator accepted.
#[derive(Debug, Clone)]
pub(crate) struct StkPush {
    merchant_request_id: String,
    checkout_request_id: String,
    shortcode: String,
    amount: u64,
    phone: String,
    callback_url: String,
    scenario: ResultScenario,
    /// `None` while the customer has not answered.
    result_code: Option<u32>,
}

/// A Kenyan MSISDN as Daraja wants it: `2547XXXXXXXX` or `2541XXXXXXXX`.
pub(crate) fn is_kenyan_msisdn(digits: &str) -> bool {
    digits.len() == 12 && (digits.starts_with("2547") || digits.starts_with("2541"))
}

/// A shortcode: 5 to 7 digits.
pub(crate) fn is_shortcode(digits: &str) -> bool {
    (5..=7).contains(&digits.len())
}

fn shortcode_field(body: &Value, key: &str) -> Result<String, DarajaError> {
    digits_either(body, key)
        .filter(|digits| is_shortcode(digits))
        .ok_or_else(|| DarajaError::invalid(key))
}

fn msisdn_field(body: &Value, key: &str) -> Result<String, DarajaError> {
    digits_either(body, key)
        .filter(|digits| is_kenyan_msisdn(digits))
        .ok_or_else(|| DarajaError::invalid(key))
}

/// Checks BusinessShortCode / Password / Timestamp the way STK push and
/// query both do; returns the shortcode.
fn check_credentials(state: &MpesaState, body: &Value) -> Result<String, DarajaError> {
    let shortcode = shortcode_field(body, "BusinessShortCode")?;
    let password = text(body, "Password").ok_or_else(|| DarajaError::invalid("Password"))?;
    let timestamp = text(body, "Timestamp")
        .filter(|timestamp| is_compact_timestamp(timestamp))
        .ok_or_else(|| DarajaError::invalid("Timestamp"))?;
    let config = state.config();
    if shortcode != config.stk_shortcode {
        return Err(DarajaError::merchant("Merchant does not exist"));
    }
    if password != stk_password(&shortcode, &config.stk_passkey, timestamp) {
        return Err(DarajaError::merchant("Wrong credentials"));
    }
    Ok(shortcode)
}

/// `POST /mpesa/stkpush/v1/processrequest`.
pub(super) async fn push(
    State(state): State<MpesaState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, DarajaError> {
    state.authorize(&headers)?;
    let body = parse_object(&body).ok_or_else(DarajaError::malformed)?;
    // Fields are checked in the order Daraja's docs list them, so the first
    // bad one is the one named, as Daraja does.
    let shortcode = shortcode_field(&body, "BusinessShortCode")?;
    text(&body, "Password").ok_or_else(|| DarajaError::invalid("Password"))?;
    text(&body, "Timestamp")
        .filter(|timestamp| is_compact_timestamp(timestamp))
        .ok_or_else(|| DarajaError::invalid("Timestamp"))?;
    let transaction_type = text(&body, "TransactionType")
        .filter(|kind| matches!(*kind, "CustomerPayBillOnline" | "CustomerBuyGoodsOnline"))
        .ok_or_else(|| DarajaError::invalid("TransactionType"))?;
    let amount = whole_amount_either(&body, "Amount")
        .filter(|amount| *amount >= 1)
        .ok_or_else(|| DarajaError::invalid("Amount"))?;
    msisdn_field(&body, "PartyA")?;
    let party_b = shortcode_field(&body, "PartyB")?;
    let phone = msisdn_field(&body, "PhoneNumber")?;
    let callback_url = text(&body, "CallBackURL")
        .filter(|url| is_callback_url(url))
        .ok_or_else(|| DarajaError::invalid("CallBackURL"))?
        .to_string();
    text(&body, "AccountReference").ok_or_else(|| DarajaError::invalid("AccountReference"))?;
    optional_text(&body, "TransactionDesc")
        .ok_or_else(|| DarajaError::invalid("TransactionDesc"))?;
    check_credentials(&state, &body)?;
    state.ensure_capacity()?;

    // A paybill push must pay the shortcode itself; Daraja fails such a
    // push asynchronously with 2028 rather than rejecting it.
    let scenario = if transaction_type == "CustomerPayBillOnline" && party_b != shortcode {
        ResultScenario::Completes(2028)
    } else {
        ResultScenario::for_stk_amount(amount)
    };
    let now = CivilTime::east_africa(now_unix_ms());
    let push = StkPush {
        merchant_request_id: ids::merchant_request_id(),
        checkout_request_id: format!("ws_CO_{}{}", now.day_first_compact(), ids::digits(10)),
        shortcode,
        amount,
        phone,
        callback_url,
        scenario,
        result_code: None,
    };
    let response = json!({
        "MerchantRequestID": push.merchant_request_id,
        "CheckoutRequestID": push.checkout_request_id,
        "ResponseCode": "0",
        "ResponseDescription": "Success. Request accepted for processing",
        "CustomerMessage": "Success. Request accepted for processing",
    });
    let checkout_request_id = push.checkout_request_id.clone();
    state.book().stk.insert(checkout_request_id.clone(), push);
    if scenario != ResultScenario::NeverAnswered {
        let task_state = state.clone();
        state.context.spawn(async move {
            task_state.context.customer_delay().await;
            let Some((callback, copies)) = complete(&task_state, &checkout_request_id) else {
                return;
            };
            for _ in 0..copies {
                task_state.context.deliver(&callback).await;
            }
        });
    }
    Ok(axum::Json(response).into_response())
}

/// The customer answers: records the outcome (and the receipt on success)
/// and returns the callback to send with how many copies.
fn complete(state: &MpesaState, checkout_request_id: &str) -> Option<(Callback, usize)> {
    let now = CivilTime::east_africa(now_unix_ms());
    let mut book = state.book();
    let push = book.stk.get(checkout_request_id)?.clone();
    let result_code = push.scenario.result_code()?;
    let receipt = (result_code == 0).then(|| {
        loop {
            let number = ids::uppercase_alphanumeric(10);
            if !book.receipts.contains_key(&number) {
                book.receipts.insert(
                    number.clone(),
                    Receipt {
                        amount: push.amount,
                        counterparty: format!(
                            "{} - {} {}",
                            push.phone,
                            state.config().customer_first_name,
                            state.config().customer_last_name
                        ),
                        reversed: false,
                    },
                );
                break number;
            }
        }
    });
    if let Some(stored) = book.stk.get_mut(checkout_request_id) {
        stored.result_code = Some(result_code);
    }
    drop(book);

    let mut callback = json!({
        "MerchantRequestID": push.merchant_request_id,
        "CheckoutRequestID": push.checkout_request_id,
        "ResultCode": result_code,
        "ResultDesc": result_description(STK_RESULT_CODES, result_code),
    });
    if let Some(receipt) = receipt {
        // Types as Daraja sends them: Amount a (float) number,
        // TransactionDate and PhoneNumber integers, Balance without Value.
        let transaction_date: u64 = now.compact().parse().unwrap_or_default();
        let phone_number: u64 = push.phone.parse().unwrap_or_default();
        callback["CallbackMetadata"] = json!({"Item": [
            {"Name": "Amount", "Value": push.amount as f64},
            {"Name": "MpesaReceiptNumber", "Value": receipt},
            {"Name": "Balance"},
            {"Name": "TransactionDate", "Value": transaction_date},
            {"Name": "PhoneNumber", "Value": phone_number},
        ]});
    }
    let body = json!({"Body": {"stkCallback": callback}});
    Some((
        Callback::post("stk_callback", &push.callback_url, body),
        push.scenario.callback_copies(),
    ))
}

/// `POST /mpesa/stkpushquery/v1/query`.
pub(super) async fn query(
    State(state): State<MpesaState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, DarajaError> {
    state.authorize(&headers)?;
    let body = parse_object(&body).ok_or_else(DarajaError::malformed)?;
    let shortcode = check_credentials(&state, &body)?;
    let checkout_request_id = text(&body, "CheckoutRequestID")
        .ok_or_else(|| DarajaError::invalid("CheckoutRequestID"))?;
    let push = state
        .book()
        .stk
        .get(checkout_request_id)
        .filter(|push| push.shortcode == shortcode)
        .cloned()
        .ok_or_else(|| DarajaError::invalid("CheckoutRequestID"))?;
    // Until the customer answers Daraja reports an error, which means
    // "pending", not failure.
    let Some(result_code) = push.result_code else {
        return Err(DarajaError::merchant("The transaction is being processed"));
    };
    // Here both codes are strings, and Daraja's misspelling is kept.
    Ok(axum::Json(json!({
        "ResponseCode": "0",
        "ResponseDescription": "The service request has been accepted successsfully",
        "MerchantRequestID": push.merchant_request_id,
        "CheckoutRequestID": push.checkout_request_id,
        "ResultCode": result_code.to_string(),
        "ResultDesc": result_description(STK_RESULT_CODES, result_code),
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_matches_safaricoms_published_example() {
        assert_eq!(
            stk_password(
                crate::DARAJA_SANDBOX_SHORTCODE,
                crate::DARAJA_SANDBOX_PASSKEY,
                "20210628092408"
            ),
            "MTc0Mzc5YmZiMjc5ZjlhYTliZGJjZjE1OGU5N2RkNzFhNDY3Y2QyZTBjODkzMDU5YjEwZjc4ZTZiNzJhZGExZWQyYzkxOTIwMjEwNjI4MDkyNDA4"
        );
        assert_eq!(
            stk_password(
                crate::DARAJA_SANDBOX_SHORTCODE,
                crate::DARAJA_SANDBOX_PASSKEY,
                "20240101120000"
            ),
            "MTc0Mzc5YmZiMjc5ZjlhYTliZGJjZjE1OGU5N2RkNzFhNDY3Y2QyZTBjODkzMDU5YjEwZjc4ZTZiNzJhZGExZWQyYzkxOTIwMjQwMTAxMTIwMDAw"
        );
    }

    #[test]
    fn kenyan_numbers_and_shortcodes() {
        assert!(is_kenyan_msisdn("254708374149"));
        assert!(is_kenyan_msisdn("254110000000"));
        assert!(!is_kenyan_msisdn("0708374149"));
        assert!(!is_kenyan_msisdn("256708374149"));
        assert!(is_shortcode("174379"));
        assert!(!is_shortcode("1743"));
    }
}
