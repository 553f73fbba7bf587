//! malipo-gateway
