//! Safaricom M-Pesa Daraja: OAuth, STK push and query, C2B register /
//! simulate (validation then confirmation), B2C payment request and
//! reversal, with their asynchronous results.
//!
//! | path | method | what |
//! |---|---|---|
//! | `/oauth/v1/generate?grant_type=client_credentials` | GET | token (Basic consumer key:secret) |
//! | `/mpesa/stkpush/v1/processrequest` | POST | STK push; callback to `CallBackURL` |
//! | `/mpesa/stkpushquery/v1/query` | POST | STK query |
//! | `/mpesa/c2b/v1/registerurl`, `/mpesa/c2b/v2/registerurl` | POST | register Validation/Confirmation URLs (v2 masks the MSISDN) |
//! | `/mpesa/c2b/v1/simulate`, `/mpesa/c2b/v2/simulate` | POST | a customer pays the shortcode |
//! | `/mpesa/b2c/v1/paymentrequest`, `/mpesa/b2c/v3/paymentrequest` | POST | B2C; `Result` to `ResultURL` |
//! | `/mpesa/reversal/v1/request` | POST | reversal; `Result` to `ResultURL` |
//! | `/simulate/c2b` | POST | simulator control: run a C2B payment now and answer its outcome |
//!
//! Every API but OAuth needs `Authorization: Bearer <token>`; a missing or
//! non-Bearer header gets `404.001.04`, an unknown or expired token
//! `404.001.03` (HTTP status configurable, see
//! [`crate::MpesaConfig::invalid_token_http_status`]). Wrong methods get
//! `405.001`, unknown paths `404.001.01`, unparseable bodies `400.002.05`,
//! bad fields `400.002.02` `"Bad Request - Invalid <Field>"`.
//!
//! Outcomes are chosen by amount: see [`ResultScenario::for_stk_amount`] and
//! [`ResultScenario::for_b2c_amount`], and the tables in the crate docs.

mod c2b;
mod results;
mod stk;

pub use c2b::{C2bCommand, C2bOutcome, C2bPayment, C2bValidation};
pub use results::{B2C_RESULT_CODES, REVERSAL_RESULT_CODES};
pub use stk::{STK_RESULT_CODES, stk_password};

use crate::context::SimulatorContext;
use crate::ids;
use crate::tokens::{TokenStore, basic, bearer};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Amount that completes successfully but whose callback (or B2C Result)
/// is never sent: only the STK query tells.
pub const AMOUNT_CALLBACK_LOST: u64 = 7001;
/// Amount that completes successfully and whose callback is sent twice.
pub const AMOUNT_DUPLICATE_CALLBACK: u64 = 7002;
/// Amount the customer never answers: the STK query keeps answering
/// "The transaction is being processed" and no callback is sent.
pub const AMOUNT_NEVER_ANSWERED: u64 = 7003;
/// Result codes below 1 000 are chosen by `9000 + code` (so amount `1`,
/// the canonical sandbox example, still succeeds and `9001` gives 1).
pub const SMALL_RESULT_CODE_AMOUNT_OFFSET: u64 = 9_000;

/// How a simulated STK push or B2C payment ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultScenario {
    /// The outcome happens after the callback delay and is sent once with
    /// this ResultCode (0 = success).
    Completes(u32),
    /// Succeeds, but no callback is ever sent.
    CallbackLost,
    /// Succeeds, and the identical callback is sent twice.
    DuplicateCallback,
    /// Never completes and nothing is sent.
    NeverAnswered,
}

impl ResultScenario {
    /// The STK push outcome for `Amount` (whole KES): a documented ResultCode
    /// of 1 000 or more is chosen by itself (1032 -> 1032), a smaller one by
    /// `9000 + code` (9001 -> 1), 7001/7002/7003 are the delivery
    /// scenarios, and anything else succeeds.
    pub fn for_stk_amount(amount: u64) -> ResultScenario {
        Self::for_amount(amount, STK_RESULT_CODES)
    }

    /// The B2C outcome for `Amount`, by the same rule over
    /// [`B2C_RESULT_CODES`].
    pub fn for_b2c_amount(amount: u64) -> ResultScenario {
        Self::for_amount(amount, B2C_RESULT_CODES)
    }

    fn for_amount(amount: u64, codes: &[(u32, &str)]) -> ResultScenario {
        match amount {
            AMOUNT_CALLBACK_LOST => return ResultScenario::CallbackLost,
            AMOUNT_DUPLICATE_CALLBACK => return ResultScenario::DuplicateCallback,
            AMOUNT_NEVER_ANSWERED => return ResultScenario::NeverAnswered,
            _ => {}
        }
        let chosen = codes.iter().map(|(code, _)| u64::from(*code)).find(|code| {
            *code != 0
                && if *code >= 1_000 {
                    amount == *code
                } else {
                    amount == SMALL_RESULT_CODE_AMOUNT_OFFSET + code
                }
        });
        ResultScenario::Completes(
            chosen
                .and_then(|code| u32::try_from(code).ok())
                .unwrap_or(0),
        )
    }

    /// The ResultCode the transaction ends with (`None` if it never ends).
    pub fn result_code(self) -> Option<u32> {
        match self {
            ResultScenario::Completes(code) => Some(code),
            ResultScenario::CallbackLost | ResultScenario::DuplicateCallback => Some(0),
            ResultScenario::NeverAnswered => None,
        }
    }

    /// How many times the result is sent.
    fn callback_copies(self) -> usize {
        match self {
            ResultScenario::Completes(_) => 1,
            ResultScenario::CallbackLost | ResultScenario::NeverAnswered => 0,
            ResultScenario::DuplicateCallback => 2,
        }
    }
}

/// The description Daraja gives a ResultCode, from `table`.
fn result_description(table: &[(u32, &'static str)], code: u32) -> &'static str {
    table.iter().find(|(known, _)| *known == code).map_or(
        "The service request is processed successfully.",
        |(_, text)| text,
    )
}

/// A Daraja synchronous error: the generic `requestId` / `errorCode` /
/// `errorMessage` body (or an empty body where Daraja sends one).
#[derive(Debug)]
pub(crate) struct DarajaError {
    status: StatusCode,
    code: &'static str,
    message: String,
    empty_body: bool,
}

impl DarajaError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> DarajaError {
        DarajaError {
            status,
            code,
            message: message.into(),
            empty_body: false,
        }
    }

    /// `400.002.02` "Bad Request - Invalid <field>".
    pub(crate) fn invalid(field: &str) -> DarajaError {
        DarajaError::new(
            StatusCode::BAD_REQUEST,
            "400.002.02",
            format!("Bad Request - Invalid {field}"),
        )
    }

    /// `400.002.05` for a body that is not a JSON object.
    pub(crate) fn malformed() -> DarajaError {
        DarajaError::new(
            StatusCode::BAD_REQUEST,
            "400.002.05",
            "Invalid request payload",
        )
    }

    /// `500.001.1001` (merchant, credentials, pending transaction).
    pub(crate) fn merchant(message: &str) -> DarajaError {
        DarajaError::new(StatusCode::INTERNAL_SERVER_ERROR, "500.001.1001", message)
    }

    /// `500.003.03` when the simulator holds `transactions_max` already.
    pub(crate) fn quota() -> DarajaError {
        DarajaError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500.003.03",
            "Quota Violation",
        )
    }
}

impl IntoResponse for DarajaError {
    fn into_response(self) -> Response {
        if self.empty_body {
            return self.status.into_response();
        }
        let body = json!({
            "requestId": ids::daraja_request_id(),
            "errorCode": self.code,
            "errorMessage": self.message,
        });
        (self.status, axum::Json(body)).into_response()
    }
}

/// A receipt the simulator issued (STK, C2B or B2C), reversible once.
#[derive(Debug, Clone)]
pub(crate) struct Receipt {
    pub amount: u64,
    /// `<phone> - <name>` for reversal results.
    pub counterparty: String,
    pub reversed: bool,
}

/// Everything the M-Pesa simulator remembers.
#[derive(Debug)]
pub(crate) struct Book {
    tokens: TokenStore<()>,
    stk: HashMap<String, stk::StkPush>,
    receipts: HashMap<String, Receipt>,
    c2b_registrations: HashMap<String, c2b::Registration>,
    /// Each shortcode's balance in whole KES, for C2B OrgAccountBalance.
    shortcode_balances: HashMap<String, u64>,
    /// B2C and reversal requests accepted (only counted, for the bound).
    results_requested: usize,
}

impl Book {
    /// Everything kept per request, for the `transactions_max` bound.
    fn transactions(&self) -> usize {
        self.stk.len()
            + self.receipts.len()
            + self.results_requested
            + self.c2b_registrations.len()
            + self.shortcode_balances.len()
    }
}

/// The M-Pesa simulator's state; build one with [`MpesaState::new`] and
/// serve it with [`router`].
#[derive(Debug, Clone)]
pub struct MpesaState {
    context: SimulatorContext,
    book: Arc<Mutex<Book>>,
}

impl MpesaState {
    pub fn new(context: SimulatorContext) -> MpesaState {
        MpesaState {
            context,
            book: Arc::new(Mutex::new(Book {
                tokens: TokenStore::new(),
                stk: HashMap::new(),
                receipts: HashMap::new(),
                c2b_registrations: HashMap::new(),
                shortcode_balances: HashMap::new(),
                results_requested: 0,
            })),
        }
    }

    pub fn context(&self) -> &SimulatorContext {
        &self.context
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // Handlers never panic while holding the lock with a half-made
        // change, so a poisoned lock still holds consistent data.
        self.book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn config(&self) -> &crate::MpesaConfig {
        &self.context.config().mpesa
    }

    /// Checks `Authorization: Bearer` against the issued tokens.
    fn authorize(&self, headers: &HeaderMap) -> Result<(), DarajaError> {
        let status = StatusCode::from_u16(self.config().invalid_token_http_status)
            .unwrap_or(StatusCode::NOT_FOUND);
        let Some(token) = bearer(headers) else {
            return Err(DarajaError::new(
                status,
                "404.001.04",
                "Invalid Authentication passed",
            ));
        };
        if self.book().tokens.check(token).is_none() {
            return Err(DarajaError::new(
                status,
                "404.001.03",
                "Invalid Access Token",
            ));
        }
        Ok(())
    }

    /// Refuses new transactions past `transactions_max`.
    fn ensure_capacity(&self) -> Result<(), DarajaError> {
        if self.book().transactions() >= self.context.config().transactions_max {
            return Err(DarajaError::quota());
        }
        Ok(())
    }

    /// Records a new receipt and returns its number.
    fn issue_receipt(&self, amount: u64, counterparty: String) -> String {
        let mut book = self.book();
        loop {
            let number = ids::uppercase_alphanumeric(10);
            if !book.receipts.contains_key(&number) {
                book.receipts.insert(
                    number.clone(),
                    Receipt {
                        amount,
                        counterparty,
                        reversed: false,
                    },
                );
                return number;
            }
        }
    }
}

/// The Daraja API routes over `state`.
pub fn router(state: MpesaState) -> Router {
    Router::new()
        .route("/oauth/v1/generate", get(oauth))
        .route("/mpesa/stkpush/v1/processrequest", post(stk::push))
        .route("/mpesa/stkpushquery/v1/query", post(stk::query))
        .route("/mpesa/c2b/v1/registerurl", post(c2b::register_v1))
        .route("/mpesa/c2b/v2/registerurl", post(c2b::register_v2))
        .route("/mpesa/c2b/v1/simulate", post(c2b::simulate))
        .route("/mpesa/c2b/v2/simulate", post(c2b::simulate))
        .route("/mpesa/b2c/v1/paymentrequest", post(results::b2c_v1))
        .route("/mpesa/b2c/v3/paymentrequest", post(results::b2c_v3))
        .route("/mpesa/reversal/v1/request", post(results::reversal))
        .route("/simulate/c2b", post(c2b::control_simulate))
        .fallback(|| async {
            DarajaError::new(StatusCode::NOT_FOUND, "404.001.01", "Resource not found")
        })
        .method_not_allowed_fallback(|| async {
            DarajaError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "405.001",
                "Method Not Allowed",
            )
        })
        .with_state(state)
}

#[derive(Debug, serde::Deserialize)]
struct OauthQuery {
    grant_type: Option<String>,
}

/// `GET /oauth/v1/generate?grant_type=client_credentials`.
async fn oauth(
    State(state): State<MpesaState>,
    Query(query): Query<OauthQuery>,
    headers: HeaderMap,
) -> Result<Response, DarajaError> {
    let Ok(credentials) = basic(&headers) else {
        return Err(DarajaError::new(
            StatusCode::BAD_REQUEST,
            "400.008.01",
            "Invalid Authentication passed",
        ));
    };
    if query.grant_type.as_deref() != Some("client_credentials") {
        return Err(DarajaError::new(
            StatusCode::BAD_REQUEST,
            "400.008.02",
            "Invalid grant type passed",
        ));
    }
    let config = state.config();
    let valid = credentials.is_some_and(|(key, secret)| {
        key == config.consumer_key && secret == config.consumer_secret
    });
    if !valid {
        // Daraja answers wrong credentials with 400 and an empty body.
        return Err(DarajaError {
            status: StatusCode::BAD_REQUEST,
            code: "",
            message: String::new(),
            empty_body: true,
        });
    }
    let token = ids::token(28);
    let lifetime_seconds = config.token_lifetime_seconds;
    {
        let mut book = state.book();
        if config.new_token_revokes_previous {
            book.tokens.revoke_all();
        }
        book.tokens
            .issue(&token, Duration::from_secs(lifetime_seconds), ());
    }
    let expires_in = if config.expires_in_as_string {
        json!(lifetime_seconds.to_string())
    } else {
        json!(lifetime_seconds)
    };
    Ok(axum::Json(json!({"access_token": token, "expires_in": expires_in})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_choose_result_codes() {
        assert_eq!(
            ResultScenario::for_stk_amount(1),
            ResultScenario::Completes(0)
        );
        assert_eq!(
            ResultScenario::for_stk_amount(100),
            ResultScenario::Completes(0)
        );
        assert_eq!(
            ResultScenario::for_stk_amount(1032),
            ResultScenario::Completes(1032)
        );
        assert_eq!(
            ResultScenario::for_stk_amount(1037),
            ResultScenario::Completes(1037)
        );
        assert_eq!(
            ResultScenario::for_stk_amount(2001),
            ResultScenario::Completes(2001)
        );
        assert_eq!(
            ResultScenario::for_stk_amount(9001),
            ResultScenario::Completes(1)
        );
        assert_eq!(
            ResultScenario::for_stk_amount(9017),
            ResultScenario::Completes(17)
        );
        assert_eq!(
            ResultScenario::for_stk_amount(9999),
            ResultScenario::Completes(9999)
        );
        assert_eq!(
            ResultScenario::for_stk_amount(9005),
            ResultScenario::Completes(0)
        );
        assert_eq!(
            ResultScenario::for_stk_amount(7001),
            ResultScenario::CallbackLost
        );
        assert_eq!(
            ResultScenario::for_stk_amount(7002),
            ResultScenario::DuplicateCallback
        );
        assert_eq!(
            ResultScenario::for_stk_amount(7003),
            ResultScenario::NeverAnswered
        );
        assert_eq!(
            ResultScenario::for_b2c_amount(2001),
            ResultScenario::Completes(2001)
        );
        assert_eq!(
            ResultScenario::for_b2c_amount(9001),
            ResultScenario::Completes(1)
        );
        assert_eq!(
            ResultScenario::for_b2c_amount(1032),
            ResultScenario::Completes(0)
        );
    }
}
