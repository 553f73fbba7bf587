//! The assets and venues as a graph: an asset is a node, a venue an edge
//! between its two assets (both ways). Built once when the venues are set.

use std::collections::HashMap;

use malipo_core::Asset;

use crate::Venue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edge {
    pub(crate) venue: usize,
    /// Which of the venue's two assets this edge sells (0 or 1).
    pub(crate) side_in: usize,
    pub(crate) to: usize,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Graph {
    pub(crate) assets: Vec<Asset>,
    pub(crate) index: HashMap<Asset, usize>,
    /// Per asset, the venues trading it, in venue order.
    pub(crate) edges: Vec<Vec<Edge>>,
}

impl Graph {
    pub(crate) fn new(venues: &[Venue]) -> Self {
        let mut graph = Graph::default();
        for (venue, v) in venues.iter().enumerate() {
            let [a, b] = v.assets().map(|asset| graph.node(asset));
            graph.edges[a].push(Edge {
                venue,
                side_in: 0,
                to: b,
            });
            graph.edges[b].push(Edge {
                venue,
                side_in: 1,
                to: a,
            });
        }
        graph
    }

    fn node(&mut self, asset: Asset) -> usize {
        *self.index.entry(asset).or_insert_with(|| {
            self.assets.push(asset);
            self.edges.push(Vec::new());
            self.assets.len() - 1
        })
    }
}
