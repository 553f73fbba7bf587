//! Differential testing: random command sequences give the same answers,
//! books and open orders from the engine and the naive reference.

mod common;

use common::reference::Reference;
use common::{IDS, commands, config, engine};
use malipo_matching::{OrderId, Side};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn engine_agrees_with_the_reference(commands in commands(120)) {
        let mut engine = engine();
        let mut reference = Reference::new(config());
        for (step, command) in commands.iter().enumerate() {
            let ours = engine.apply(command);
            let theirs = reference.apply(command);
            prop_assert_eq!(&ours, &theirs, "step {}: {:?}", step, command);
            let depth = engine.depth(usize::MAX);
            prop_assert_eq!(&depth.bids, &reference.depth(Side::Buy), "bids after step {}", step);
            prop_assert_eq!(&depth.asks, &reference.depth(Side::Sell), "asks after step {}", step);
            prop_assert_eq!(depth.sequence, reference.sequence());
            prop_assert_eq!(engine.last_trade_price(), reference.last_trade_price());
            for id in 1..=IDS {
                prop_assert_eq!(engine.order(OrderId(id)), reference.order(OrderId(id)), "order {}", id);
            }
        }
    }
}
