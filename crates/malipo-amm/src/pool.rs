//! A constant-product pool of two assets (Uniswap v2): create it with a
//! first deposit, add and remove liquidity, swap an exact input or for an
//! exact output. Every operation either changes the pool and answers its
//! [`Movement`]s, or changes nothing and answers an [`AmmError`].

use malipo_core::Asset;

use crate::AmmError;
use crate::arith::{mul_div_floor, sqrt_product};
use crate::curve;
use crate::movement::{Movement, Party, VENUE_ID_MAX_BYTES, VenueId};

/// Shares minted by the first deposit to nobody, for ever (as in Uniswap
/// v2). The pool can never be drained to zero, and nobody can make one share
/// so expensive that small providers are priced out.
pub const MINIMUM_LIQUIDITY: u128 = 1_000;

/// The largest reserve a pool holds: 2^112 - 1, Uniswap v2's `uint112`. It
/// keeps every intermediate product of the formulas within 256 bits, and is
/// about 5.2 * 10^15 whole tokens of an 18-decimal asset.
pub const RESERVE_MAX: u128 = (1 << 112) - 1;

/// The highest fee a pool may charge: 10%.
pub const FEE_BPS_MAX: u16 = 1_000;

/// An amount of one asset, in its minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssetAmount {
    pub asset: Asset,
    pub amount: u128,
}

/// The caller's clock and the latest time the operation may run at, both
/// in milliseconds. The pool has no clock of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub now_ms: i64,
    pub deadline_ms: i64,
}

impl Deadline {
    /// No deadline: the operation may run at any time.
    pub fn none(now_ms: i64) -> Self {
        Deadline {
            now_ms,
            deadline_ms: i64::MAX,
        }
    }

    /// Refuses once `now_ms` is past `deadline_ms`.
    pub fn check(&self) -> Result<(), AmmError> {
        if self.now_ms > self.deadline_ms {
            return Err(AmmError::Expired {
                deadline_ms: self.deadline_ms,
                now_ms: self.now_ms,
            });
        }
        Ok(())
    }
}

/// A pool's state. Its assets are kept in a canonical order (by code), so a
/// pair has one orientation whatever order it was created in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    id: VenueId,
    assets: [Asset; 2],
    reserves: [u128; 2],
    fee_bps: u16,
    shares_total: u128,
}

/// The first deposit, which creates a pool and sets its price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPool {
    pub id: VenueId,
    pub provider: String,
    pub deposits: [AssetAmount; 2],
    pub fee_bps: u16,
}

/// A deposit into an existing pool. The pool takes only the amounts at its
/// current ratio: the larger side is cut down to match the other (as
/// Uniswap v2's router does), so nothing needs refunding. `minimum` bounds
/// how far each side may be cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddLiquidity {
    pub provider: String,
    pub desired: [AssetAmount; 2],
    pub minimum: [AssetAmount; 2],
    pub deadline: Deadline,
}

/// A withdrawal: burn `shares` for their pro-rata part of both reserves
/// (rounded down), each at least `minimum`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveLiquidity {
    pub provider: String,
    pub shares: u128,
    pub minimum: [AssetAmount; 2],
    pub deadline: Deadline,
}

/// Sell exactly `amount_in` for at least `min_amount_out` of the other asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapExactIn {
    pub trader: String,
    pub asset_in: Asset,
    pub amount_in: u128,
    pub min_amount_out: u128,
    pub deadline: Deadline,
}

/// Buy exactly `amount_out` for at most `max_amount_in` of the other asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapExactOut {
    pub trader: String,
    pub asset_out: Asset,
    pub amount_out: u128,
    pub max_amount_in: u128,
    pub deadline: Deadline,
}

/// What a liquidity operation moved: the assets paid in or out (in the
/// pool's order), the shares minted or burned, and the movements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiquidityReceipt {
    pub amounts: [AssetAmount; 2],
    pub shares: u128,
    pub movements: Vec<Movement>,
}

/// What a swap moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapReceipt {
    pub paid: AssetAmount,
    pub received: AssetAmount,
    pub movements: Vec<Movement>,
}

impl Pool {
    /// Creates a pool from its first deposit: `sqrt(a * b)` shares, of which
    /// [`MINIMUM_LIQUIDITY`] are locked for ever and the rest go to the
    /// provider.
    pub fn create(request: NewPool) -> Result<(Pool, LiquidityReceipt), AmmError> {
        let NewPool {
            id,
            provider,
            deposits,
            fee_bps,
        } = request;
        if id.0.is_empty() || id.0.len() > VENUE_ID_MAX_BYTES {
            return Err(AmmError::InvalidVenueId);
        }
        if fee_bps > FEE_BPS_MAX {
            return Err(AmmError::FeeTooHigh {
                fee_bps,
                max: FEE_BPS_MAX,
            });
        }
        let [first, second] = deposits;
        if first.asset == second.asset {
            return Err(AmmError::SameAsset);
        }
        let [a, b] = if first.asset.code() <= second.asset.code() {
            [first, second]
        } else {
            [second, first]
        };
        if a.amount == 0 || b.amount == 0 {
            return Err(AmmError::ZeroAmount);
        }
        if a.amount > RESERVE_MAX || b.amount > RESERVE_MAX {
            return Err(AmmError::Overflow);
        }
        let root = sqrt_product(a.amount, b.amount).ok_or(AmmError::Overflow)?;
        if root <= MINIMUM_LIQUIDITY {
            return Err(AmmError::InsufficientInitialLiquidity {
                shares: root,
                minimum: MINIMUM_LIQUIDITY,
            });
        }
        let shares = root - MINIMUM_LIQUIDITY;
        let pool = Pool {
            id,
            assets: [a.asset, b.asset],
            reserves: [a.amount, b.amount],
            fee_bps,
            shares_total: root,
        };
        let owner = Party::Owner(provider);
        let mut movements = pool.deposit_movements(&owner, [a.amount, b.amount]);
        movements.push(Movement::shares(
            Party::ShareIssuer(pool.id.clone()),
            Party::LockedShares(pool.id.clone()),
            &pool.id,
            MINIMUM_LIQUIDITY,
        ));
        movements.push(Movement::shares(
            Party::ShareIssuer(pool.id.clone()),
            owner,
            &pool.id,
            shares,
        ));
        let receipt = LiquidityReceipt {
            amounts: [a, b],
            shares,
            movements,
        };
        Ok((pool, receipt))
    }

    /// A pool as a caller stored it (reserves and shares outstanding, e.g.
    /// a database row), checked the way [`Pool::create`] would have made
    /// it: a valid id, two different assets in canonical order, a fee at
    /// most [`FEE_BPS_MAX`], reserves within [`RESERVE_MAX`] and both
    /// positive, and more than [`MINIMUM_LIQUIDITY`] shares.
    pub fn from_state(
        id: VenueId,
        assets: [Asset; 2],
        reserves: [u128; 2],
        fee_bps: u16,
        shares_total: u128,
    ) -> Result<Pool, AmmError> {
        if id.0.is_empty() || id.0.len() > VENUE_ID_MAX_BYTES {
            return Err(AmmError::InvalidVenueId);
        }
        if fee_bps > FEE_BPS_MAX {
            return Err(AmmError::FeeTooHigh {
                fee_bps,
                max: FEE_BPS_MAX,
            });
        }
        if assets[0].code() >= assets[1].code() {
            return Err(AmmError::SameAsset);
        }
        if reserves.contains(&0) {
            return Err(AmmError::ZeroAmount);
        }
        if reserves.iter().any(|reserve| *reserve > RESERVE_MAX) {
            return Err(AmmError::Overflow);
        }
        if shares_total <= MINIMUM_LIQUIDITY {
            return Err(AmmError::InsufficientInitialLiquidity {
                shares: shares_total,
                minimum: MINIMUM_LIQUIDITY,
            });
        }
        Ok(Pool {
            id,
            assets,
            reserves,
            fee_bps,
            shares_total,
        })
    }

    pub fn id(&self) -> &VenueId {
        &self.id
    }

    /// The two assets, in the pool's (canonical) order.
    pub fn assets(&self) -> [Asset; 2] {
        self.assets
    }

    /// The reserves, in the order of [`Pool::assets`].
    pub fn reserves(&self) -> [u128; 2] {
        self.reserves
    }

    pub fn fee_bps(&self) -> u16 {
        self.fee_bps
    }

    /// Shares outstanding, including the locked [`MINIMUM_LIQUIDITY`].
    pub fn shares_total(&self) -> u128 {
        self.shares_total
    }

    /// The reserve of one asset.
    pub fn reserve_of(&self, asset: Asset) -> Result<u128, AmmError> {
        Ok(self.reserves[self.index_of(asset)?])
    }

    /// The other asset of the pair.
    pub fn other_asset(&self, asset: Asset) -> Result<Asset, AmmError> {
        Ok(self.assets[1 - self.index_of(asset)?])
    }

    /// What selling exactly `amount_in` of `asset_in` would pay out now.
    pub fn quote_exact_in(&self, asset_in: Asset, amount_in: u128) -> Result<u128, AmmError> {
        self.quote_side_in(self.index_of(asset_in)?, amount_in)
    }

    /// [`Pool::quote_exact_in`] for the asset at `input` in
    /// [`Pool::assets`] (0 or 1): the router's inner loop, which knows the
    /// side already and skips comparing assets.
    pub(crate) fn quote_side_in(&self, input: usize, amount_in: u128) -> Result<u128, AmmError> {
        let reserve_in = self.reserves[input];
        if amount_in > RESERVE_MAX - reserve_in {
            return Err(AmmError::Overflow);
        }
        curve::amount_out(
            amount_in,
            reserve_in,
            self.reserves[1 - input],
            self.fee_bps,
        )
    }

    /// The least input of the other asset that buys exactly `amount_out` of
    /// `asset_out` now.
    pub fn quote_exact_out(&self, asset_out: Asset, amount_out: u128) -> Result<u128, AmmError> {
        let output = self.index_of(asset_out)?;
        let reserve_in = self.reserves[1 - output];
        let amount_in =
            curve::amount_in(amount_out, reserve_in, self.reserves[output], self.fee_bps)?;
        if amount_in > RESERVE_MAX - reserve_in {
            return Err(AmmError::Overflow);
        }
        Ok(amount_in)
    }

    /// The marginal price before any trade, as `(out, in)`: one minor unit
    /// of `asset_in` is worth `out / in` minor units of the other asset,
    /// before fees.
    pub fn mid_price(&self, asset_in: Asset) -> Result<(u128, u128), AmmError> {
        let input = self.index_of(asset_in)?;
        Ok((self.reserves[1 - input], self.reserves[input]))
    }

    /// Deposits at the pool's ratio and mints shares pro rata to the
    /// smaller side (rounded down). See [`AddLiquidity`].
    pub fn add_liquidity(&mut self, request: AddLiquidity) -> Result<LiquidityReceipt, AmmError> {
        request.deadline.check()?;
        let desired = self.orient(request.desired)?;
        let minimum = self.orient(request.minimum)?;
        if desired.contains(&0) {
            return Err(AmmError::ZeroAmount);
        }
        let [reserve_a, reserve_b] = self.reserves;
        let b_optimal =
            mul_div_floor(desired[0], reserve_b, reserve_a).ok_or(AmmError::Overflow)?;
        let used = if b_optimal <= desired[1] {
            [desired[0], b_optimal]
        } else {
            let a_optimal =
                mul_div_floor(desired[1], reserve_a, reserve_b).ok_or(AmmError::Overflow)?;
            [a_optimal, desired[1]]
        };
        for side in 0..2 {
            if used[side] < minimum[side] {
                return Err(AmmError::Slippage {
                    asset: self.assets[side],
                    minimum: minimum[side],
                    actual: used[side],
                });
            }
        }
        let shares = self
            .shares_for(used[0], 0)?
            .min(self.shares_for(used[1], 1)?);
        if shares == 0 {
            return Err(AmmError::InsufficientLiquidityMinted);
        }
        let reserves = [
            checked_reserve(reserve_a, used[0])?,
            checked_reserve(reserve_b, used[1])?,
        ];
        let shares_total = self
            .shares_total
            .checked_add(shares)
            .ok_or(AmmError::Overflow)?;

        let owner = Party::Owner(request.provider);
        let mut movements = self.deposit_movements(&owner, used);
        movements.push(Movement::shares(
            Party::ShareIssuer(self.id.clone()),
            owner,
            &self.id,
            shares,
        ));
        self.reserves = reserves;
        self.shares_total = shares_total;
        Ok(LiquidityReceipt {
            amounts: self.tag(used),
            shares,
            movements,
        })
    }

    /// Burns shares for their part of both reserves (rounded down). The
    /// locked [`MINIMUM_LIQUIDITY`] can never be burned.
    pub fn remove_liquidity(
        &mut self,
        request: RemoveLiquidity,
    ) -> Result<LiquidityReceipt, AmmError> {
        request.deadline.check()?;
        let minimum = self.orient(request.minimum)?;
        let shares = request.shares;
        if shares == 0 {
            return Err(AmmError::ZeroAmount);
        }
        let unlocked = self.shares_total - MINIMUM_LIQUIDITY;
        if shares > unlocked {
            return Err(AmmError::BurnExceedsUnlockedShares {
                unlocked,
                locked: MINIMUM_LIQUIDITY,
            });
        }
        let mut paid = [0u128; 2];
        for side in 0..2 {
            paid[side] = mul_div_floor(shares, self.reserves[side], self.shares_total)
                .ok_or(AmmError::Overflow)?;
            if paid[side] == 0 {
                return Err(AmmError::InsufficientLiquidityBurned);
            }
            if paid[side] < minimum[side] {
                return Err(AmmError::Slippage {
                    asset: self.assets[side],
                    minimum: minimum[side],
                    actual: paid[side],
                });
            }
        }
        let owner = Party::Owner(request.provider);
        let mut movements = vec![Movement::shares(
            owner.clone(),
            Party::ShareIssuer(self.id.clone()),
            &self.id,
            shares,
        )];
        for ((asset, reserve), amount) in self.assets.iter().zip(&mut self.reserves).zip(paid) {
            movements.push(Movement::asset(
                Party::Pool(self.id.clone()),
                owner.clone(),
                *asset,
                amount,
            ));
            *reserve -= amount;
        }
        self.shares_total -= shares;
        Ok(LiquidityReceipt {
            amounts: self.tag(paid),
            shares,
            movements,
        })
    }

    /// Sells exactly `amount_in`; refused below `min_amount_out`.
    pub fn swap_exact_in(&mut self, request: SwapExactIn) -> Result<SwapReceipt, AmmError> {
        request.deadline.check()?;
        let amount_out = self.quote_exact_in(request.asset_in, request.amount_in)?;
        let asset_out = self.other_asset(request.asset_in)?;
        if amount_out < request.min_amount_out {
            return Err(AmmError::Slippage {
                asset: asset_out,
                minimum: request.min_amount_out,
                actual: amount_out,
            });
        }
        self.settle_swap(
            request.trader,
            request.asset_in,
            request.amount_in,
            amount_out,
        )
    }

    /// Buys exactly `amount_out`; refused above `max_amount_in`.
    pub fn swap_exact_out(&mut self, request: SwapExactOut) -> Result<SwapReceipt, AmmError> {
        request.deadline.check()?;
        let amount_in = self.quote_exact_out(request.asset_out, request.amount_out)?;
        let asset_in = self.other_asset(request.asset_out)?;
        if amount_in > request.max_amount_in {
            return Err(AmmError::ExcessiveInput {
                asset: asset_in,
                maximum: request.max_amount_in,
                required: amount_in,
            });
        }
        self.settle_swap(request.trader, asset_in, amount_in, request.amount_out)
    }

    /// Applies a swap the router has already quoted and checked: pays
    /// exactly `amount_in` in and answers what comes out.
    pub(crate) fn apply_exact_in(
        &mut self,
        asset_in: Asset,
        amount_in: u128,
    ) -> Result<u128, AmmError> {
        let amount_out = self.quote_exact_in(asset_in, amount_in)?;
        if amount_out == 0 {
            return Err(AmmError::ZeroOutput);
        }
        self.move_reserves(self.index_of(asset_in)?, amount_in, amount_out);
        Ok(amount_out)
    }

    fn settle_swap(
        &mut self,
        trader: String,
        asset_in: Asset,
        amount_in: u128,
        amount_out: u128,
    ) -> Result<SwapReceipt, AmmError> {
        let input = self.index_of(asset_in)?;
        if amount_out == 0 {
            return Err(AmmError::ZeroOutput);
        }
        let asset_out = self.assets[1 - input];
        let trader = Party::Owner(trader);
        let pool = Party::Pool(self.id.clone());
        let movements = vec![
            Movement::asset(trader.clone(), pool.clone(), asset_in, amount_in),
            Movement::asset(pool, trader, asset_out, amount_out),
        ];
        self.move_reserves(input, amount_in, amount_out);
        Ok(SwapReceipt {
            paid: AssetAmount {
                asset: asset_in,
                amount: amount_in,
            },
            received: AssetAmount {
                asset: asset_out,
                amount: amount_out,
            },
            movements,
        })
    }

    /// The quote checked the reserve cap, and an output is always below
    /// its reserve.
    fn move_reserves(&mut self, input: usize, amount_in: u128, amount_out: u128) {
        self.reserves[input] += amount_in;
        self.reserves[1 - input] -= amount_out;
    }

    fn index_of(&self, asset: Asset) -> Result<usize, AmmError> {
        self.assets
            .iter()
            .position(|a| *a == asset)
            .ok_or(AmmError::AssetNotInPool(asset))
    }

    /// Puts two amounts named by asset into the pool's order.
    fn orient(&self, amounts: [AssetAmount; 2]) -> Result<[u128; 2], AmmError> {
        let [first, second] = amounts;
        if first.asset == second.asset {
            return Err(AmmError::SameAsset);
        }
        let mut oriented = [0u128; 2];
        oriented[self.index_of(first.asset)?] = first.amount;
        oriented[self.index_of(second.asset)?] = second.amount;
        Ok(oriented)
    }

    fn tag(&self, amounts: [u128; 2]) -> [AssetAmount; 2] {
        [0, 1].map(|side| AssetAmount {
            asset: self.assets[side],
            amount: amounts[side],
        })
    }

    /// Shares worth `amount` of one side at the current reserves.
    fn shares_for(&self, amount: u128, side: usize) -> Result<u128, AmmError> {
        mul_div_floor(amount, self.shares_total, self.reserves[side]).ok_or(AmmError::Overflow)
    }

    fn deposit_movements(&self, owner: &Party, amounts: [u128; 2]) -> Vec<Movement> {
        (0..2)
            .map(|side| {
                Movement::asset(
                    owner.clone(),
                    Party::Pool(self.id.clone()),
                    self.assets[side],
                    amounts[side],
                )
            })
            .collect()
    }
}

fn checked_reserve(reserve: u128, added: u128) -> Result<u128, AmmError> {
    reserve
        .checked_add(added)
        .filter(|total| *total <= RESERVE_MAX)
        .ok_or(AmmError::Overflow)
}
