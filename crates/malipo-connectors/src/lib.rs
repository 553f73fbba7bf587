//! malipo-connectors
