//! Refund statuses and their named transitions, and the rule that splits a
//! payment's fee across its refunds.

use crate::MinorUnits;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Pending,
    Succeeded,
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

impl fmt::Display for RefundStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a refund was asked for (Stripe's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    Duplicate,
    Fraudulent,
    RequestedByCustomer,
}

impl RefundReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::Fraudulent => "fraudulent",
            Self::RequestedByCustomer => "requested_by_customer",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Duplicate, Self::Fraudulent, Self::RequestedByCustomer]
            .into_iter()
            .find(|reason| reason.as_str() == text)
    }
}

/// How much of the payment's fee a refund gives back.
///
/// A refund reverses the payment's ledger entries in proportion to the amount
/// refunded: `fee * refund / amount`, rounded down, except that the refund
/// which brings `amount_refunded` to the full amount returns whatever fee is
/// left. So the fees returned by all refunds of a payment add up to its fee
/// exactly, and the merchant never gives back more than it received.
pub fn fee_share_of_refund(
    payment_amount: MinorUnits,
    payment_fee: MinorUnits,
    refunded_before: MinorUnits,
    fee_refunded_before: MinorUnits,
    refund_amount: MinorUnits,
) -> Option<MinorUnits> {
    let refunded_after = refunded_before.checked_add(refund_amount)?;
    if refunded_after > payment_amount {
        return None;
    }
    if refunded_after == payment_amount {
        return payment_fee.checked_sub(fee_refunded_before);
    }
    let share = payment_fee.mul_div_floor(refund_amount.get(), payment_amount.get())?;
    // Rounding down each share can only leave fee behind for the last refund,
    // never take more than what is left.
    let left = payment_fee.checked_sub(fee_refunded_before)?;
    Some(share.min(left))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(value: u128) -> MinorUnits {
        MinorUnits::new(value)
    }

    #[test]
    fn full_refund_returns_the_whole_fee() {
        assert_eq!(
            fee_share_of_refund(m(1000), m(29), m(0), m(0), m(1000)),
            Some(m(29))
        );
    }

    #[test]
    fn over_refund_is_refused() {
        assert_eq!(
            fee_share_of_refund(m(1000), m(29), m(900), m(26), m(101)),
            None
        );
    }

    proptest! {
        #[test]
        fn shares_add_up_to_the_fee(amount in 1u128..10_000_000, fee_bps in 0u128..10_000, cuts in proptest::collection::vec(1u128..1_000_000, 1..8)) {
            let fee = amount * fee_bps / 10_000;
            let (mut refunded, mut fee_refunded) = (m(0), m(0));
            for cut in cuts {
                let left = amount - refunded.get();
                if left == 0 { break; }
                let refund = m(cut.min(left));
                let share = fee_share_of_refund(m(amount), m(fee), refunded, fee_refunded, refund).expect("within amount");
                prop_assert!(share <= refund || fee > amount);
                refunded = refunded.checked_add(refund).expect("fits");
                fee_refunded = fee_refunded.checked_add(share).expect("fits");
            }
            let left = m(amount - refunded.get());
            if !left.is_zero() {
                let share = fee_share_of_refund(m(amount), m(fee), refunded, fee_refunded, left).expect("rest");
                fee_refunded = fee_refunded.checked_add(share).expect("fits");
            }
            prop_assert_eq!(fee_refunded, m(fee));
        }
    }
}
