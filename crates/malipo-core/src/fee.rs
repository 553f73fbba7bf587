//! Fee schedules: basis points of the amount plus a fixed part.
//!
//! `fee = round_half_up(amount * basis_points / 10_000) + fixed`, capped at the
//! amount so the merchant's net is never negative. Integer math only.

use crate::MinorUnits;
use serde::{Deserialize, Serialize};

/// The most a percentage part may be: 100%.
pub const BASIS_POINTS_MAX: u32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeeSchedule {
    /// Hundredths of a percent of the amount (290 = 2.9%).
    pub basis_points: u32,
    /// Added to every payment, in the payment currency's minor units.
    pub fixed: u64,
}

/// Why a fee schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("basis_points must be at most {BASIS_POINTS_MAX}, got {0}")]
pub struct InvalidFeeSchedule(pub u32);

impl FeeSchedule {
    pub fn new(basis_points: u32, fixed: u64) -> Result<Self, InvalidFeeSchedule> {
        if basis_points > BASIS_POINTS_MAX {
            return Err(InvalidFeeSchedule(basis_points));
        }
        Ok(FeeSchedule {
            basis_points,
            fixed,
        })
    }

    /// The fee on `amount`: rounded half up to the minor unit, never more
    /// than the amount itself.
    pub fn fee_for(&self, amount: MinorUnits) -> MinorUnits {
        let percentage_part = amount
            .get()
            .saturating_mul(u128::from(self.basis_points))
            .saturating_add(5_000)
            / 10_000;
        let fee = percentage_part.saturating_add(u128::from(self.fixed));
        MinorUnits::new(fee.min(amount.get()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rounds_half_up() {
        let schedule = FeeSchedule::new(250, 0).expect("valid");
        // 2.5% of 10 = 0.25 -> 0; of 20 = 0.5 -> 1; of 100 = 2.5 -> 3
        assert_eq!(schedule.fee_for(MinorUnits::new(10)).get(), 0);
        assert_eq!(schedule.fee_for(MinorUnits::new(20)).get(), 1);
        assert_eq!(schedule.fee_for(MinorUnits::new(100)).get(), 3);
    }

    #[test]
    fn fixed_part_is_added_and_capped_at_the_amount() {
        let schedule = FeeSchedule::new(290, 30).expect("valid");
        assert_eq!(schedule.fee_for(MinorUnits::new(10_000)).get(), 290 + 30);
        assert_eq!(schedule.fee_for(MinorUnits::new(10)).get(), 10);
    }

    #[test]
    fn refuses_more_than_one_hundred_percent() {
        assert!(FeeSchedule::new(10_001, 0).is_err());
    }

    proptest! {
        #[test]
        fn fee_never_exceeds_amount(amount in any::<u64>(), bps in 0u32..=10_000, fixed in any::<u64>()) {
            let schedule = FeeSchedule::new(bps, fixed).expect("valid");
            let amount = MinorUnits::from(amount);
            prop_assert!(schedule.fee_for(amount) <= amount);
        }
    }
}
