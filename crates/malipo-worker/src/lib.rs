//! malipo-worker
