//! Merchant metadata: a small map of strings attached to an object. Every
//! limit is explicit and every refusal names the offending key.

use std::collections::BTreeMap;

pub const METADATA_KEYS_MAX: usize = 50;
pub const METADATA_KEY_LENGTH_MAX: usize = 40;
pub const METADATA_VALUE_LENGTH_MAX: usize = 500;

pub type Metadata = BTreeMap<String, String>;

/// A metadata map that breaks a limit; `param` names the field to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidMetadata {
    pub param: String,
    pub message: String,
}

pub fn validate(metadata: &Metadata) -> Result<(), InvalidMetadata> {
    if metadata.len() > METADATA_KEYS_MAX {
        return Err(InvalidMetadata {
            param: "metadata".into(),
            message: format!(
                "metadata may have at most {METADATA_KEYS_MAX} keys, got {}",
                metadata.len()
            ),
        });
    }
    for (key, value) in metadata {
        if key.is_empty() || key.chars().count() > METADATA_KEY_LENGTH_MAX {
            return Err(InvalidMetadata {
                param: format!("metadata[{key}]"),
                message: format!("metadata keys must be 1 to {METADATA_KEY_LENGTH_MAX} characters"),
            });
        }
        if value.chars().count() > METADATA_VALUE_LENGTH_MAX {
            return Err(InvalidMetadata {
                param: format!("metadata[{key}]"),
                message: format!(
                    "metadata values may be at most {METADATA_VALUE_LENGTH_MAX} characters"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_offending_key() {
        let mut metadata = Metadata::new();
        metadata.insert("order".into(), "x".repeat(501));
        assert_eq!(
            validate(&metadata).expect_err("too long").param,
            "metadata[order]"
        );
    }

    #[test]
    fn limits_the_number_of_keys() {
        let metadata: Metadata = (0..51).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(validate(&metadata).expect_err("too many").param, "metadata");
        let metadata: Metadata = (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(validate(&metadata).is_ok());
    }
}
