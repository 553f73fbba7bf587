//! malipo-store
