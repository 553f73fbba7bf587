//! What the gateway records for each check of an incoming callback.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The checks the gateway applies to a callback, in the order it applies
/// them. Each check gets its own recorded verdict; the first failure stops
/// the request. This crate decides [`Check::Signature`] and
/// [`Check::Timestamp`] (through [`Verdict`]) and supplies the data for the
/// others ([`crate::IpAllowList`], [`crate::event_key`], the provider's rate
/// limit); the gateway owns the state they need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// `{provider}` is in the registry and `{account}` is a configured
    /// connector account of that provider.
    Provider,
    /// The peer address is in the account's allow-list, when it has one.
    SourceIp,
    /// The provider's callbacks stay under its rate limit.
    RateLimit,
    /// The signature matches the account's secret (constant-time compare).
    Signature,
    /// The signed timestamp is within the scheme's tolerance.
    Timestamp,
    /// The event key was not processed before.
    Replay,
}

impl Check {
    /// Every check, in the order the gateway applies them.
    pub const ORDER: [Check; 6] = [
        Check::Provider,
        Check::SourceIp,
        Check::RateLimit,
        Check::Signature,
        Check::Timestamp,
        Check::Replay,
    ];

    /// Stable snake_case code, for storage and logs.
    pub const fn code(self) -> &'static str {
        match self {
            Check::Provider => "provider",
            Check::SourceIp => "source_ip",
            Check::RateLimit => "rate_limit",
            Check::Signature => "signature",
            Check::Timestamp => "timestamp",
            Check::Replay => "replay",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The outcome of checking a callback's authenticity with [`crate::verify`].
///
/// Codes are stable: they are stored with every inbound request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The signature matches the account's secret (and its timestamp, if the
    /// scheme has one, is fresh).
    Verified,
    /// The provider does not sign callbacks (Daraja, MTN MoMo, Airtel). The
    /// body is a hint only: the gateway must confirm it by querying the
    /// provider's status API before believing it.
    Unsigned,
    /// The account has no (or an empty) secret for a signed scheme. Failing
    /// closed: an empty HMAC key would let anyone compute a valid signature.
    MissingSecret,
    /// The signature header is absent or empty.
    MissingSignature,
    /// The signature header is present but can't be parsed: bad hex/base64,
    /// missing prefix, no `t=` or `v1=` element.
    MalformedSignature,
    /// The scheme signs parsed JSON (NOWPayments, Relworx) and the body is
    /// not a JSON object.
    MalformedBody,
    /// The signature is well formed but does not match.
    BadSignature,
    /// The signature matches but its timestamp is outside the tolerance:
    /// an old delivery being replayed, or a badly wrong clock.
    StaleTimestamp,
}

impl Verdict {
    /// Stable snake_case code, equal to the serde representation.
    pub const fn code(self) -> &'static str {
        match self {
            Verdict::Verified => "verified",
            Verdict::Unsigned => "unsigned",
            Verdict::MissingSecret => "missing_secret",
            Verdict::MissingSignature => "missing_signature",
            Verdict::MalformedSignature => "malformed_signature",
            Verdict::MalformedBody => "malformed_body",
            Verdict::BadSignature => "bad_signature",
            Verdict::StaleTimestamp => "stale_timestamp",
        }
    }

    /// The body may be trusted as it is.
    pub const fn is_verified(self) -> bool {
        matches!(self, Verdict::Verified)
    }

    /// The body may be acted on only after the provider's status API
    /// confirms it.
    pub const fn requires_status_query(self) -> bool {
        matches!(self, Verdict::Unsigned)
    }

    /// The request must be refused and not processed.
    pub const fn is_rejected(self) -> bool {
        !matches!(self, Verdict::Verified | Verdict::Unsigned)
    }

    /// Which check this verdict belongs to: a stale timestamp fails
    /// [`Check::Timestamp`], everything else [`Check::Signature`].
    pub const fn check(self) -> Check {
        match self {
            Verdict::StaleTimestamp => Check::Timestamp,
            _ => Check::Signature,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_equal_the_serde_representation() {
        let all = [
            Verdict::Verified,
            Verdict::Unsigned,
            Verdict::MissingSecret,
            Verdict::MissingSignature,
            Verdict::MalformedSignature,
            Verdict::MalformedBody,
            Verdict::BadSignature,
            Verdict::StaleTimestamp,
        ];
        for verdict in all {
            let json = serde_json::to_string(&verdict).unwrap();
            assert_eq!(json, format!("\"{}\"", verdict.code()));
        }
        for check in Check::ORDER {
            let json = serde_json::to_string(&check).unwrap();
            assert_eq!(json, format!("\"{}\"", check.code()));
        }
    }

    #[test]
    fn only_verified_and_unsigned_pass() {
        assert!(!Verdict::Verified.is_rejected());
        assert!(!Verdict::Unsigned.is_rejected());
        assert!(Verdict::Unsigned.requires_status_query());
        assert!(Verdict::BadSignature.is_rejected());
        assert!(Verdict::StaleTimestamp.is_rejected());
        assert_eq!(Verdict::StaleTimestamp.check(), Check::Timestamp);
        assert_eq!(Verdict::BadSignature.check(), Check::Signature);
    }
}
