//! Why a pool refused an operation. A refused operation changes nothing.

use malipo_core::Asset;

/// Every way a pool operation can be refused. The pool is unchanged after
/// any of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmmError {
    #[error("amounts must not be zero")]
    ZeroAmount,
    #[error("a pool needs two different assets")]
    SameAsset,
    #[error("`{0}` is not one of this pool's assets")]
    AssetNotInPool(Asset),
    #[error("the fee must be at most {max} basis points, got {fee_bps}")]
    FeeTooHigh { fee_bps: u16, max: u16 },
    #[error("the input is too small to buy one minor unit of the output")]
    ZeroOutput,
    #[error("the pool cannot pay this out: its reserves are too small")]
    InsufficientLiquidity,
    #[error(
        "the first deposit must be worth more than {minimum} shares (sqrt(a * b)), got {shares}"
    )]
    InsufficientInitialLiquidity { shares: u128, minimum: u128 },
    #[error("the deposit is too small to mint a share")]
    InsufficientLiquidityMinted,
    #[error("burning this few shares pays out nothing of one asset")]
    InsufficientLiquidityBurned,
    #[error("only {unlocked} shares can be burned; {locked} are locked forever")]
    BurnExceedsUnlockedShares { unlocked: u128, locked: u128 },
    #[error("slippage: {actual} of `{asset}` is below the minimum {minimum}")]
    Slippage {
        asset: Asset,
        minimum: u128,
        actual: u128,
    },
    #[error("slippage: {required} of `{asset}` would be needed, above the maximum {maximum}")]
    ExcessiveInput {
        asset: Asset,
        maximum: u128,
        required: u128,
    },
    #[error("the deadline {deadline_ms} ms has passed (now {now_ms} ms)")]
    Expired { deadline_ms: i64, now_ms: i64 },
    #[error(
        "the amounts are too large: reserves are capped at {}",
        crate::RESERVE_MAX
    )]
    Overflow,
    #[error("a venue id must be 1 to {max} bytes", max = crate::VENUE_ID_MAX_BYTES)]
    InvalidVenueId,
    #[error("the order book snapshot is invalid: {0}")]
    InvalidBook(&'static str),
}
