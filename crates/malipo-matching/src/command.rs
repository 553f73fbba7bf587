//! What the engine is asked to do. Commands are plain data, serializable,
//! so that a caller can log them durably before applying them and replay
//! them after a restart.

use serde::{Deserialize, Serialize};

use crate::{NewOrder, OrderId, OwnerId, PairStatus, Price, Quantity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum Command {
    Place(NewOrder),
    /// Cancels an open order (resting or stop), allowed while halted.
    Cancel {
        id: OrderId,
        owner: OwnerId,
    },
    /// Changes a resting limit order to rest `quantity` (its new open
    /// quantity) at `price`. The order keeps its place in the queue only when
    /// the price is unchanged and the quantity does not grow; otherwise it is
    /// cancelled and replaced (same id, same time in force and self-trade
    /// mode) at the back of the queue, and may trade on the way in. Stop
    /// orders cannot be amended: cancel and place again.
    Amend {
        id: OrderId,
        owner: OwnerId,
        price: Price,
        quantity: Quantity,
    },
    SetStatus(PairStatus),
}
