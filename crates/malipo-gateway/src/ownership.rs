//! Which node runs a book's commands (docs/trading.md, "Several nodes").
//!
//! One node owns each book (a pair in one mode) while it holds the book's
//! lease in `trading_book_leases`: a row naming the node, the URL it takes
//! forwarded commands at, and when the lease ends. A command (order or
//! cancel) asks [`Gateway::book_route`]: when no node holds a live lease,
//! this node takes it and runs the command ([`BookRoute::Local`]); when
//! another node holds it, the HTTP layer forwards the merchant's request to
//! that node ([`BookRoute::Remote`]). The owner renews its leases in the
//! background ([`Gateway::renew_book_leases`], every third of a lease), so
//! it keeps its books while it lives; a node that stops gracefully releases
//! them ([`Gateway::release_book_leases`]) and one that dies loses them when
//! they expire, to the next node that gets a command for the book.
//!
//! Leases only route. The book's row lock (`trading_books`, see
//! [`crate::trading`]) is still what serializes commands, so a command that
//! runs on a node which is not the owner (the owner unreachable, a forwarded
//! request arriving after the lease moved, two nodes' clocks disagreeing) is
//! exactly as correct, only slower (the engine catches up from the log).

use crate::trading::book_id;
use crate::{Gateway, GatewayResult, now_ms};
use std::collections::HashMap;

/// Default: how long a lease lasts without renewal.
pub const LEASE_MS_DEFAULT: u64 = 5_000;
/// Default: how long a forwarded command may take before the entry node
/// gives up on the owner.
pub const FORWARD_TIMEOUT_MS_DEFAULT: u64 = 5_000;

/// This node's identity in a cluster and its lease settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id (in the leases, the command log and the
    /// `Malipo-Node` header); empty: `node_` and random hex, new at each
    /// start.
    pub id: String,
    /// How long a lease lasts; renewed every third of it.
    pub lease_ms: u64,
    /// A forwarded command's time limit (connect + answer).
    pub forward_timeout_ms: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: String::new(),
            lease_ms: LEASE_MS_DEFAULT,
            forward_timeout_ms: FORWARD_TIMEOUT_MS_DEFAULT,
        }
    }
}

/// Where a book's command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookRoute {
    /// Here: this node holds the book's lease (it may just have taken it).
    Local,
    /// On the node that holds a live lease of the book.
    Remote { node_id: String, url: String },
}

/// This node's identity and the leases it believes it holds.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) id: String,
    url: std::sync::OnceLock<String>,
    /// Book id -> when this node's lease of it ends (Unix ms).
    held: std::sync::Mutex<HashMap<String, i64>>,
    /// When the leases were last renewed (Unix ms).
    renewed_ms: std::sync::atomic::AtomicI64,
}

impl Node {
    pub(crate) fn new(configured_id: &str) -> Node {
        let id = if configured_id.is_empty() {
            format!("node_{:016x}", rand::random::<u64>())
        } else {
            configured_id.to_owned()
        };
        Node {
            id,
            url: std::sync::OnceLock::new(),
            held: std::sync::Mutex::new(HashMap::new()),
            renewed_ms: std::sync::atomic::AtomicI64::new(0),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        // A poisoned map only means another thread panicked while updating.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Gateway {
    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node().id
    }

    /// Tells the gateway the URL other nodes reach this one at (e.g.
    /// `http://10.0.0.5:8080`); only the first call counts.
    pub fn set_node_url(&self, url: &str) {
        let _ = self.node().url.set(url.trim_end_matches('/').to_owned());
    }

    pub fn node_url(&self) -> &str {
        self.node()
            .url
            .get()
            .map(String::as_str)
            .unwrap_or("http://127.0.0.1:8080")
    }

    /// Where a command for `pair_id`'s book in this mode runs: here when
    /// this node holds the book's lease or can take it (nobody holds a
    /// live one), else on the live holder. An unknown pair runs here (the
    /// command then answers the error).
    pub async fn book_route(&self, pair_id: &str, livemode: bool) -> GatewayResult<BookRoute> {
        let lease_ms = i64::try_from(self.config().node.lease_ms).unwrap_or(i64::MAX / 4);
        let book = book_id(pair_id, livemode);
        let now = now_ms();
        // A lease this node holds with more than half of it left is used
        // without asking the database (the renewal keeps it there).
        if self
            .node()
            .held()
            .get(&book)
            .is_some_and(|expires| expires - now > lease_ms / 2)
        {
            return Ok(BookRoute::Local);
        }
        {
            let mut reader = self.store().reader().await?;
            if reader.conn().trading_pair(pair_id).await?.is_none() {
                return Ok(BookRoute::Local);
            }
        }
        let mut tx = self.store().begin().await?;
        let lease = tx
            .conn()
            .claim_book_lease(&book, self.node_id(), self.node_url(), now, now + lease_ms)
            .await?;
        tx.commit().await?;
        if lease.node_id == self.node_id() {
            self.node().held().insert(book, lease.expires_ms);
            Ok(BookRoute::Local)
        } else {
            self.node().held().remove(&book);
            Ok(BookRoute::Remote {
                node_id: lease.node_id,
                url: lease.node_url,
            })
        }
    }

    /// Renews this node's live leases when a third of a lease has passed
    /// since the last renewal (call it often; it writes only then); answers
    /// how many it holds. A lease that expired meanwhile (another node may
    /// have taken it) is not renewed: it is forgotten.
    pub async fn renew_book_leases(&self) -> GatewayResult<usize> {
        let lease_ms = i64::try_from(self.config().node.lease_ms).unwrap_or(i64::MAX / 4);
        let now = now_ms();
        let last = self
            .node()
            .renewed_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        if now - last < lease_ms / 3 {
            return Ok(self.node().held().len());
        }
        let mut tx = self.store().begin().await?;
        let leases = tx
            .conn()
            .renew_book_leases(self.node_id(), now, now + lease_ms)
            .await?;
        tx.commit().await?;
        self.node()
            .renewed_ms
            .store(now, std::sync::atomic::Ordering::Relaxed);
        let mut held = self.node().held();
        held.clear();
        held.extend(
            leases
                .into_iter()
                .map(|lease| (lease.book_id, lease.expires_ms)),
        );
        Ok(held.len())
    }

    /// Gives up this node's leases (at a graceful stop: other nodes take
    /// its books at once instead of after expiry); answers how many.
    pub async fn release_book_leases(&self) -> GatewayResult<u64> {
        self.node().held().clear();
        let mut tx = self.store().begin().await?;
        let released = tx.conn().release_book_leases(self.node_id()).await?;
        tx.commit().await?;
        Ok(released)
    }
}
