//! Secrets at rest: provider API credentials are encrypted with AES-256-GCM
//! under the gateway's master key before they reach the database, and
//! decrypted only to hand them to a connector. They are never returned by
//! the API after creation.
//!
//! The master key comes from configuration (`master_key`, 32 bytes in
//! base64). Without one, a key is generated on first start and kept in the
//! database's settings, which protects nothing against a stolen database:
//! fine for development, logged as a warning, and to be replaced in
//! production by setting `MALIPO_MASTER_KEY`.

use crate::{GatewayError, GatewayResult};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use malipo_store::Store;
use std::collections::BTreeMap;
use std::fmt;

const MASTER_KEY_SETTING: &str = "master_key";
/// Stored form: `v1:` + base64(nonce ‖ ciphertext ‖ tag).
const FORMAT_PREFIX: &str = "v1:";
const NONCE_BYTES: usize = 12;

/// Encrypts and decrypts with the master key. `Debug` never shows it.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBox([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SecretError(String);

impl SecretBox {
    pub fn new(key: &[u8]) -> Result<SecretBox, SecretError> {
        let cipher = Aes256Gcm::new_from_slice(key)
            .map_err(|_| SecretError("the master key must be 32 bytes".into()))?;
        Ok(SecretBox { cipher })
    }

    /// The configured key (base64), or the one kept in the database's
    /// settings (created on first start).
    pub async fn load(store: &Store, configured_base64: Option<&str>) -> GatewayResult<SecretBox> {
        let key = match configured_base64 {
            Some(text) => STANDARD.decode(text.trim()).map_err(|_| {
                GatewayError::internal(SecretError("master_key is not base64".into()))
            })?,
            None => {
                let mut generated = [0u8; 32];
                rand::fill(&mut generated);
                let mut tx = store.begin().await?;
                let stored = tx
                    .conn()
                    .setting_insert_once(MASTER_KEY_SETTING, &STANDARD.encode(generated))
                    .await?;
                tx.commit().await?;
                tracing::warn!(
                    "no master_key configured: using one kept in the database; set MALIPO_MASTER_KEY in production"
                );
                STANDARD.decode(stored).map_err(|_| {
                    GatewayError::internal(SecretError("stored master key is corrupt".into()))
                })?
            }
        };
        SecretBox::new(&key).map_err(GatewayError::internal)
    }

    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String, SecretError> {
        let mut nonce_bytes = [0u8; NONCE_BYTES];
        rand::fill(&mut nonce_bytes);
        let nonce =
            Nonce::try_from(&nonce_bytes[..]).map_err(|_| SecretError("nonce size".into()))?;
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plaintext)
            .map_err(|_| SecretError("encryption failed".into()))?;
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(format!("{FORMAT_PREFIX}{}", STANDARD.encode(sealed)))
    }

    pub fn decrypt(&self, stored: &str) -> Result<Vec<u8>, SecretError> {
        let encoded = stored
            .strip_prefix(FORMAT_PREFIX)
            .ok_or_else(|| SecretError("unknown secret format".into()))?;
        let sealed = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError("secret is not base64".into()))?;
        if sealed.len() < NONCE_BYTES {
            return Err(SecretError("secret is too short".into()));
        }
        let (nonce_bytes, ciphertext) = sealed.split_at(NONCE_BYTES);
        let nonce = Nonce::try_from(nonce_bytes).map_err(|_| SecretError("nonce size".into()))?;
        self.cipher
            .decrypt(&nonce, ciphertext)
            .map_err(|_| SecretError("the secret does not decrypt with this master key".into()))
    }

    /// Credentials (a string map) sealed as one value.
    pub fn seal_credentials(
        &self,
        credentials: &BTreeMap<String, String>,
    ) -> Result<String, SecretError> {
        let json =
            serde_json::to_vec(credentials).map_err(|error| SecretError(error.to_string()))?;
        self.encrypt(&json)
    }

    pub fn open_credentials(&self, stored: &str) -> Result<BTreeMap<String, String>, SecretError> {
        serde_json::from_slice(&self.decrypt(stored)?)
            .map_err(|error| SecretError(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_hides_the_plaintext() {
        let secret_box = SecretBox::new(&[7u8; 32]).expect("key");
        let credentials: BTreeMap<String, String> =
            [("consumer_secret".to_owned(), "s3cr3t-value".to_owned())]
                .into_iter()
                .collect();
        let sealed = secret_box.seal_credentials(&credentials).expect("sealed");
        assert!(!sealed.contains("s3cr3t"));
        assert_ne!(
            sealed,
            secret_box.seal_credentials(&credentials).expect("sealed"),
            "a fresh nonce each time"
        );
        assert_eq!(
            secret_box.open_credentials(&sealed).expect("opened"),
            credentials
        );
    }

    #[test]
    fn another_key_or_a_tampered_value_does_not_open() {
        let sealed = SecretBox::new(&[7u8; 32])
            .expect("key")
            .encrypt(b"hello")
            .expect("sealed");
        assert!(
            SecretBox::new(&[8u8; 32])
                .expect("key")
                .decrypt(&sealed)
                .is_err()
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(
            SecretBox::new(&[7u8; 32])
                .expect("key")
                .decrypt(&tampered)
                .is_err()
        );
        assert!(
            SecretBox::new(&[1u8; 16]).is_err(),
            "AES-256 needs 32 bytes"
        );
    }
}
