//! The simulators tested as a connector would use them: each test spawns a
//! simulator on a free 127.0.0.1 port, talks HTTP to it with reqwest, and
//! receives its callbacks on a small local axum server.

mod support;

mod airtel;
mod cards;
mod lifecycle;
mod mpesa;
mod mtn_momo;
mod relworx;
