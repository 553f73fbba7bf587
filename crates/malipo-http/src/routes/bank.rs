//! Bank transfers: receiving accounts (`/v1/bank_accounts`, merchant;
//! `/v1/admin/merchants/{id}/bank_accounts`, operator), deposits and their
//! confirmation, and statement reconciliation (`/v1/admin/bank_…`,
//! operator). Paying by bank transfer is `POST /v1/payments` with
//! `method: "bank_transfer"`. See docs/bank_transfer.md.

use crate::AppState;
use crate::error::{ErrorBody, HttpResult};
use crate::extract::{
    JsonBody, Merchant, MerchantActor, Operator, PageParams, QueryParams, TextBody,
};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use malipo_core::objects::List;
use malipo_gateway::bank::{
    BankAccount, BankDeposit, BankDepositFilters, BankStatement, ConfirmBankDeposit,
    CreateBankAccount,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/bank_accounts", post(create_account).get(list_accounts))
        .route(
            "/v1/admin/merchants/{id}/bank_accounts",
            post(create_account_for_merchant),
        )
        .route("/v1/admin/bank_deposits", get(list_deposits))
        .route("/v1/admin/bank_deposits/{id}", get(retrieve_deposit))
        .route(
            "/v1/admin/bank_deposits/{id}/confirm",
            post(confirm_deposit),
        )
        .route("/v1/admin/bank_statements", post(upload_statement))
        .route("/v1/admin/bank_statements/{id}", get(retrieve_statement))
        .route(
            "/v1/admin/bank_statements/{id}/confirm",
            post(confirm_statement),
        )
}

/// Configure where this merchant receives bank transfers in a currency
/// (the key's mode). Bank transfer payments in that currency show the
/// newest such account to the payer.
#[utoipa::path(post, path = "/v1/bank_accounts", tag = "bank_transfer", request_body = CreateBankAccount,
    responses((status = 200, body = BankAccount), (status = 400, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn create_account(
    State(state): State<AppState>,
    MerchantActor(context, actor): MerchantActor,
    body: JsonBody<CreateBankAccount>,
) -> HttpResult<Json<BankAccount>> {
    Ok(Json(
        state
            .gateway
            .create_bank_account(&context, &actor, body.value)
            .await?,
    ))
}

/// This merchant's bank accounts in the key's mode, newest first.
#[utoipa::path(get, path = "/v1/bank_accounts", tag = "bank_transfer", params(PageParams),
    responses((status = 200, body = List<BankAccount>), (status = 400, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn list_accounts(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    QueryParams(page): QueryParams<PageParams>,
) -> HttpResult<Json<List<BankAccount>>> {
    Ok(Json(
        state.gateway.bank_accounts(&context, &page.page()?).await?,
    ))
}

/// Configure a merchant's receiving bank account as an operator (`mode`
/// required). With the four-eyes policy on, this operator token can't
/// confirm deposits to it.
#[utoipa::path(post, path = "/v1/admin/merchants/{id}/bank_accounts", tag = "bank_transfer",
    params(("id" = String, Path)), request_body = CreateBankAccount,
    responses((status = 200, body = BankAccount), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn create_account_for_merchant(
    State(state): State<AppState>,
    Operator(actor): Operator,
    Path(id): Path<String>,
    body: JsonBody<CreateBankAccount>,
) -> HttpResult<Json<BankAccount>> {
    Ok(Json(
        state
            .gateway
            .create_bank_account_for(&id, &actor, body.value)
            .await?,
    ))
}

/// Bank deposits (one per bank transfer payment), newest first.
#[utoipa::path(get, path = "/v1/admin/bank_deposits", tag = "bank_transfer", params(PageParams, BankDepositFilters),
    responses((status = 200, body = List<BankDeposit>), (status = 400, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn list_deposits(
    State(state): State<AppState>,
    _operator: Operator,
    QueryParams(page): QueryParams<PageParams>,
    QueryParams(filters): QueryParams<BankDepositFilters>,
) -> HttpResult<Json<List<BankDeposit>>> {
    Ok(Json(
        state.gateway.bank_deposits(&filters, &page.page()?).await?,
    ))
}

#[utoipa::path(get, path = "/v1/admin/bank_deposits/{id}", tag = "bank_transfer", params(("id" = String, Path)),
    responses((status = 200, body = BankDeposit), (status = 404, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn retrieve_deposit(
    State(state): State<AppState>,
    _operator: Operator,
    Path(id): Path<String>,
) -> HttpResult<Json<BankDeposit>> {
    Ok(Json(state.gateway.bank_deposit(&id).await?))
}

/// Confirm that a deposit arrived: the exact amount and the bank's
/// reference. The payment succeeds (ledger, `payment.succeeded`). Another
/// amount is refused (400 `amount_mismatch`, param `amount_received`); a
/// confirmed deposit or a used bank reference is 409; the four-eyes policy
/// refuses the account's configurer (403 `four_eyes_required`).
#[utoipa::path(post, path = "/v1/admin/bank_deposits/{id}/confirm", tag = "bank_transfer",
    params(("id" = String, Path)), request_body = ConfirmBankDeposit,
    responses((status = 200, body = BankDeposit), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn confirm_deposit(
    State(state): State<AppState>,
    Operator(actor): Operator,
    Path(id): Path<String>,
    body: JsonBody<ConfirmBankDeposit>,
) -> HttpResult<Json<BankDeposit>> {
    Ok(Json(
        state
            .gateway
            .confirm_bank_deposit(&actor, &id, body.value)
            .await?,
    ))
}

/// Upload a bank statement (CSV with a header naming
/// `date,reference,amount,currency,bank_reference`, amounts as decimals in
/// the major unit). Answers how each line matched; confirms nothing.
#[utoipa::path(post, path = "/v1/admin/bank_statements", tag = "bank_transfer",
    request_body(content = String, content_type = "text/csv", description = "The statement"),
    responses((status = 200, body = BankStatement), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn upload_statement(
    State(state): State<AppState>,
    Operator(actor): Operator,
    TextBody(csv): TextBody,
) -> HttpResult<Json<BankStatement>> {
    Ok(Json(
        state.gateway.upload_bank_statement(&actor, &csv).await?,
    ))
}

#[utoipa::path(get, path = "/v1/admin/bank_statements/{id}", tag = "bank_transfer", params(("id" = String, Path)),
    responses((status = 200, body = BankStatement), (status = 404, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn retrieve_statement(
    State(state): State<AppState>,
    _operator: Operator,
    Path(id): Path<String>,
) -> HttpResult<Json<BankStatement>> {
    Ok(Json(state.gateway.bank_statement(&id).await?))
}

/// Confirm every matched line of an uploaded statement; each line's
/// `result` says `confirmed` or why not. A statement is confirmed once (409).
#[utoipa::path(post, path = "/v1/admin/bank_statements/{id}/confirm", tag = "bank_transfer",
    params(("id" = String, Path)),
    responses((status = 200, body = BankStatement), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn confirm_statement(
    State(state): State<AppState>,
    Operator(actor): Operator,
    Path(id): Path<String>,
) -> HttpResult<Json<BankStatement>> {
    Ok(Json(
        state.gateway.confirm_bank_statement(&actor, &id).await?,
    ))
}
