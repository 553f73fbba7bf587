//! Helpers shared by the test binaries: assets, pools, and requests with
//! no deadline and no minimums.

#![allow(dead_code)]

use malipo_amm::{
    AddLiquidity, AssetAmount, Deadline, LiquidityReceipt, NewPool, Pool, RemoveLiquidity,
    SwapExactIn, SwapReceipt, VenueId,
};
use malipo_core::Asset;

pub fn asset(code: &str) -> Asset {
    Asset::parse(code).expect("a known asset")
}

pub fn amount(asset: Asset, amount: u128) -> AssetAmount {
    AssetAmount { asset, amount }
}

pub const NOW_MS: i64 = 1_700_000_000_000;

pub fn no_deadline() -> Deadline {
    Deadline::none(NOW_MS)
}

pub fn pool(
    id: &str,
    a: (Asset, u128),
    b: (Asset, u128),
    fee_bps: u16,
) -> (Pool, LiquidityReceipt) {
    Pool::create(NewPool {
        id: VenueId(id.to_owned()),
        provider: "founder".to_owned(),
        deposits: [amount(a.0, a.1), amount(b.0, b.1)],
        fee_bps,
    })
    .expect("a valid first deposit")
}

pub fn swap_in(
    pool: &mut Pool,
    asset_in: Asset,
    amount_in: u128,
) -> Result<SwapReceipt, malipo_amm::AmmError> {
    pool.swap_exact_in(SwapExactIn {
        trader: "trader".to_owned(),
        asset_in,
        amount_in,
        min_amount_out: 0,
        deadline: no_deadline(),
    })
}

pub fn add(pool: &mut Pool, desired: [u128; 2]) -> Result<LiquidityReceipt, malipo_amm::AmmError> {
    let [a, b] = pool.assets();
    pool.add_liquidity(AddLiquidity {
        provider: "provider".to_owned(),
        desired: [amount(a, desired[0]), amount(b, desired[1])],
        minimum: [amount(a, 0), amount(b, 0)],
        deadline: no_deadline(),
    })
}

pub fn remove(pool: &mut Pool, shares: u128) -> Result<LiquidityReceipt, malipo_amm::AmmError> {
    let [a, b] = pool.assets();
    pool.remove_liquidity(RemoveLiquidity {
        provider: "provider".to_owned(),
        shares,
        minimum: [amount(a, 0), amount(b, 0)],
        deadline: no_deadline(),
    })
}
