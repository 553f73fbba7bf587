//! Customers: a merchant's end users, owned by the merchant and a mode,
//! each with ledger balances per asset (two accounts per asset:
//! `available` and `held`, see [`crate::ledger_entries::customer_account`]).
//!
//! Money reaches a customer by a payment created with `customer_id` and
//! `credit_customer: true` (its net amount moves from the merchant's
//! balance to the customer's when it succeeds, in the same transaction),
//! or, in test mode only, by `POST /v1/customers/{id}/test_credits` (any
//! asset, out of a test-only funding account) so that crypto balances can
//! be tried without a crypto deposit.

use crate::auth::MerchantContext;
use crate::idempotency::{IdempotencyGuard, complete};
use crate::payments::{created_filters, owner_filters, post};
use crate::{ApiError, ErrorKind, Gateway, GatewayResult, ledger_entries, now_seconds};
use malipo_core::Asset;
use malipo_core::id::{IdKind, looks_like, new_id};
use malipo_core::metadata::{self, Metadata};
use malipo_core::objects::{List, Scope};
use malipo_core::trading::{Customer, CustomerBalance, CustomerBalances};
use malipo_ledger::{TransferKind, TransferRequest};
use malipo_store::{Conn, CustomerRecord, Page};
use serde::Deserialize;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// The longest name, in characters.
pub const CUSTOMER_NAME_LENGTH_MAX: usize = 256;
/// The longest phone number, in characters.
pub const CUSTOMER_PHONE_LENGTH_MAX: usize = 32;
/// The longest email address, in bytes.
pub const CUSTOMER_EMAIL_LENGTH_MAX: usize = 254;

/// `POST /v1/customers`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Amina Njeri", "email": "amina@example.com", "phone": "254708374149"}))]
pub struct CreateCustomer {
    /// At most 256 characters.
    pub name: Option<String>,
    /// An email address, at most 254 bytes.
    pub email: Option<String>,
    /// Digits with an optional leading `+`, at most 32 characters.
    pub phone: Option<String>,
    /// At most 50 keys of 40 characters, values of 500.
    #[serde(default)]
    pub metadata: Metadata,
}

/// `GET /v1/customers` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct CustomerFilters {
    /// Only customers with exactly this email.
    pub email: Option<String>,
    /// Created at or after (Unix seconds).
    #[serde(rename = "created[gte]")]
    #[param(rename = "created[gte]")]
    pub created_gte: Option<i64>,
    /// Created at or before (Unix seconds).
    #[serde(rename = "created[lte]")]
    #[param(rename = "created[lte]")]
    pub created_lte: Option<i64>,
}

/// `POST /v1/customers/{id}/test_credits` (test mode only)
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"asset": "btc", "amount": 100000000}))]
pub struct CreateTestCredit {
    /// Any known asset code (`usd`, `btc`, `eth`, …).
    pub asset: Option<String>,
    /// Minor units, > 0.
    pub amount: Option<u64>,
}

fn check_text(param: &str, value: &Option<String>, length_max: usize) -> Result<(), ApiError> {
    if let Some(value) = value {
        if value.chars().count() > length_max {
            return Err(ApiError::invalid(
                param,
                format!("{param} must be at most {length_max} characters"),
            ));
        }
        if let Some(problem) = metadata::text_problem(value) {
            return Err(ApiError::invalid(param, format!("{param} {problem}")));
        }
    }
    Ok(())
}

impl CreateCustomer {
    fn check(&self) -> Result<(), ApiError> {
        check_text("name", &self.name, CUSTOMER_NAME_LENGTH_MAX)?;
        if let Some(email) = &self.email
            && (!email.contains('@') || email.len() > CUSTOMER_EMAIL_LENGTH_MAX)
        {
            return Err(ApiError::invalid(
                "email",
                "email must be an email address of at most 254 bytes",
            ));
        }
        check_text("email", &self.email, CUSTOMER_EMAIL_LENGTH_MAX)?;
        if let Some(phone) = &self.phone {
            let digits = phone.strip_prefix('+').unwrap_or(phone);
            if digits.is_empty()
                || phone.len() > CUSTOMER_PHONE_LENGTH_MAX
                || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(ApiError::invalid(
                    "phone",
                    "phone must be digits with an optional leading `+`, at most 32 characters",
                ));
            }
        }
        metadata::validate(&self.metadata)
            .map_err(|error| ApiError::invalid(error.param, error.message))?;
        Ok(())
    }
}

/// A customer of the merchant in the key's mode, or 404 naming `param`.
pub(crate) async fn customer_of(
    conn: &mut Conn<'_>,
    context: &MerchantContext,
    id: &str,
    param: &str,
) -> GatewayResult<CustomerRecord> {
    let missing = || ApiError::not_found("customer", id).with_param(param);
    if !looks_like(IdKind::Customer, id) {
        return Err(missing().into());
    }
    Ok(conn
        .customer(&context.merchant_id, context.livemode(), id)
        .await?
        .ok_or_else(missing)?)
}

impl Gateway {
    pub async fn create_customer(
        &self,
        context: &MerchantContext,
        request: CreateCustomer,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Customer> {
        context.require(Scope::Full)?;
        request.check()?;
        let record = CustomerRecord {
            merchant_id: context.merchant_id.clone(),
            customer: Customer {
                id: new_id(IdKind::Customer),
                object: "customer",
                livemode: context.livemode(),
                name: request.name,
                email: request.email,
                phone: request.phone,
                metadata: request.metadata,
                created: now_seconds(),
            },
        };
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        conn.insert_customer(&record).await?;
        complete(&mut conn, guard.as_ref(), &record.customer).await?;
        tx.commit().await?;
        Ok(record.customer)
    }

    pub async fn customer(&self, context: &MerchantContext, id: &str) -> GatewayResult<Customer> {
        context.require(Scope::ReadOnly)?;
        let mut reader = self.store().reader().await?;
        Ok(customer_of(&mut reader.conn(), context, id, "id")
            .await?
            .customer)
    }

    pub async fn customers(
        &self,
        context: &MerchantContext,
        filters: &CustomerFilters,
        page: &Page,
    ) -> GatewayResult<List<Customer>> {
        context.require(Scope::ReadOnly)?;
        let mut conditions = owner_filters(context);
        if let Some(email) = &filters.email {
            conditions.push(malipo_store::Filter::TextEquals("email", email.clone()));
        }
        created_filters(&mut conditions, filters.created_gte, filters.created_lte);
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader.conn().customers(&conditions, page).await?;
        Ok(List::new(
            records.into_iter().map(|record| record.customer).collect(),
            has_more,
        ))
    }

    /// Each asset's available and held amounts, read from the ledger.
    pub async fn customer_balances(
        &self,
        context: &MerchantContext,
        id: &str,
    ) -> GatewayResult<CustomerBalances> {
        context.require(Scope::ReadOnly)?;
        let mut reader = self.store().reader().await?;
        let mut conn = reader.conn();
        let customer = customer_of(&mut conn, context, id, "id").await?.customer;
        balances_of(&mut conn, &customer).await
    }

    /// Test mode only: credits `amount` of any asset to the customer, out
    /// of the platform's test funding account.
    pub async fn create_test_credit(
        &self,
        context: &MerchantContext,
        id: &str,
        request: CreateTestCredit,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<CustomerBalances> {
        context.require(Scope::Full)?;
        if context.livemode() {
            return Err(ApiError::new(
                ErrorKind::Permission,
                "test_mode_only",
                "test credits exist only in test mode: use a test key",
            )
            .into());
        }
        let asset_code = request.asset.ok_or_else(|| ApiError::missing("asset"))?;
        let asset = Asset::parse(&asset_code.to_ascii_lowercase())
            .map_err(|error| ApiError::invalid("asset", error.to_string()))?;
        let amount = request.amount.ok_or_else(|| ApiError::missing("amount"))?;
        if amount == 0 {
            return Err(ApiError::invalid("amount", "amount must be positive").into());
        }
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let customer = customer_of(&mut conn, context, id, "id").await?.customer;
        let funding = ledger_entries::test_funding_account(asset.code());
        let available = ledger_entries::customer_account(false, &customer.id, asset.code(), false);
        post(
            &mut conn,
            &[funding.clone(), available.clone()],
            &[TransferRequest {
                id: new_id(IdKind::LedgerTransfer),
                debit_account_id: funding.id,
                credit_account_id: available.id,
                amount: u128::from(amount),
                asset: asset.code().to_owned(),
                kind: TransferKind::Posted,
                pending_id: None,
                code: "test_credit".into(),
                source_id: Some(customer.id.clone()),
            }],
        )
        .await?;
        let balances = balances_of(&mut conn, &customer).await?;
        complete(&mut conn, guard.as_ref(), &balances).await?;
        tx.commit().await?;
        Ok(balances)
    }
}

async fn balances_of(conn: &mut Conn<'_>, customer: &Customer) -> GatewayResult<CustomerBalances> {
    let prefix = ledger_entries::customer_account_prefix(customer.livemode, &customer.id);
    let accounts = conn.ledger_accounts_with_prefix(&prefix).await?;
    let mut by_asset: BTreeMap<String, CustomerBalance> = BTreeMap::new();
    for account in accounts {
        let entry = by_asset
            .entry(account.asset.clone())
            .or_insert_with(|| CustomerBalance {
                asset: account.asset.clone(),
                available: 0,
                held: 0,
            });
        let spendable = account.available_credit_balance().unwrap_or(0);
        if account.id.ends_with(ledger_entries::CUSTOMER_HELD_SUFFIX) {
            entry.held = spendable;
        } else {
            entry.available = spendable;
        }
    }
    Ok(CustomerBalances {
        object: "customer_balances",
        customer: customer.id.clone(),
        livemode: customer.livemode,
        balances: by_asset.into_values().collect(),
    })
}
