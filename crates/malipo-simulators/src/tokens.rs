//! Bearer tokens a simulator issued, with their expiry and scope.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Most live tokens kept; past that the one closest to expiry is dropped,
/// so a client that fetches a token per request cannot grow memory.
const TOKENS_MAX: usize = 10_000;

#[derive(Debug)]
pub(crate) struct TokenStore<Scope> {
    tokens: HashMap<String, (Instant, Scope)>,
}

impl<Scope: Clone> TokenStore<Scope> {
    pub(crate) fn new() -> TokenStore<Scope> {
        TokenStore {
            tokens: HashMap::new(),
        }
    }

    /// Remembers `token` for `lifetime`, valid for `scope`.
    pub(crate) fn issue(&mut self, token: &str, lifetime: Duration, scope: Scope) {
        let now = Instant::now();
        self.tokens.retain(|_, (expires_at, _)| *expires_at > now);
        if self.tokens.len() >= TOKENS_MAX
            && let Some(oldest) = self
                .tokens
                .iter()
                .min_by_key(|(_, (expires_at, _))| *expires_at)
                .map(|(token, _)| token.clone())
        {
            self.tokens.remove(&oldest);
        }
        self.tokens
            .insert(token.to_string(), (now + lifetime, scope));
    }

    /// The scope of `token` if it was issued and has not expired.
    pub(crate) fn check(&self, token: &str) -> Option<Scope> {
        self.tokens
            .get(token)
            .filter(|(expires_at, _)| *expires_at > Instant::now())
            .map(|(_, scope)| scope.clone())
    }

    /// Forgets every token (a provider that revokes old tokens on re-issue).
    pub(crate) fn revoke_all(&mut self) {
        self.tokens.clear();
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// The `(user, password)` of an `Authorization: Basic base64(user:password)`
/// header value; `Err(())` when the header is absent or not Basic.
pub(crate) fn basic(headers: &axum::http::HeaderMap) -> Result<Option<(String, String)>, ()> {
    use base64::Engine;
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or(())?;
    let encoded = value.strip_prefix("Basic ").ok_or(())?;
    // Undecodable credentials are wrong credentials, not a wrong scheme.
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    Ok(decoded.and_then(|text| {
        text.split_once(':')
            .map(|(user, password)| (user.to_string(), password.to_string()))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_and_can_be_revoked() {
        let mut store = TokenStore::new();
        store.issue("live", Duration::from_secs(60), 1u8);
        store.issue("dead", Duration::ZERO, 2u8);
        assert_eq!(store.check("live"), Some(1));
        assert_eq!(store.check("dead"), None);
        assert_eq!(store.check("unknown"), None);
        store.revoke_all();
        assert_eq!(store.check("live"), None);
    }
}
