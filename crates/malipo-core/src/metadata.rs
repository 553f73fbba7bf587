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

/// Characters that reorder how text around them is displayed (bidi
/// embeddings, overrides and isolates): `invoice\u{202e}fdp.exe` shows as
/// `invoiceexe.pdf`. Marks (LRM, RLM) that right-to-left text needs are not
/// among them.
fn reorders_display(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Invisible characters: zero-width spaces and joiners, soft hyphen, word
/// joiners, byte-order mark, Arabic letter mark, Mongolian vowel separator.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{61c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2060}'..='\u{2064}'
            | '\u{feff}'
    )
}

/// Why free text (a description, a name, a metadata value) can't be
/// stored as given: a control character other than tab and line breaks, or
/// one that reorders the display. Any script, emoji and their joiners pass.
pub fn text_problem(text: &str) -> Option<&'static str> {
    text.chars().find_map(|c| {
        if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
            Some("must not contain control characters")
        } else if reorders_display(c) {
            Some("must not contain bidirectional override or isolate characters")
        } else {
            None
        }
    })
}

/// Why an identifier (a reference, a metadata key) can't be stored as
/// given: besides [`text_problem`]'s characters, no invisible ones and no
/// line breaks, so two identifiers that look alike are alike.
pub fn identifier_problem(text: &str) -> Option<&'static str> {
    if text.chars().any(|c| c.is_control()) {
        return Some("must not contain control characters");
    }
    if text.chars().any(invisible) {
        return Some("must not contain invisible (zero-width or format) characters");
    }
    text_problem(text)
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
        if let Some(problem) = identifier_problem(key) {
            return Err(InvalidMetadata {
                param: "metadata".into(),
                message: format!("metadata keys {problem}"),
            });
        }
        if let Some(problem) = text_problem(value) {
            return Err(InvalidMetadata {
                param: format!("metadata[{key}]"),
                message: format!("metadata values {problem}"),
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
    fn refuses_display_tricks_and_keeps_every_script() {
        let one = |key: &str, value: &str| {
            let mut metadata = Metadata::new();
            metadata.insert(key.into(), value.into());
            validate(&metadata).map_err(|error| error.param)
        };
        assert_eq!(one("order\u{202e}", "1"), Err("metadata".into()));
        assert_eq!(one("order\u{200b}", "1"), Err("metadata".into()));
        assert_eq!(one("order", "a\u{0}b"), Err("metadata[order]".into()));
        assert_eq!(
            one("order", "gpj.\u{2067}exe"),
            Err("metadata[order]".into())
        );
        assert_eq!(one("عنوان", "شارع\u{200f} ١٢\tx\n"), Ok(()));
        assert_eq!(one("family", "👩\u{200d}👩\u{200d}👧"), Ok(()));
    }

    #[test]
    fn limits_the_number_of_keys() {
        let metadata: Metadata = (0..51).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(validate(&metadata).expect_err("too many").param, "metadata");
        let metadata: Metadata = (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(validate(&metadata).is_ok());
    }
}
