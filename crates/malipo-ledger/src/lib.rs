//! malipo-ledger
