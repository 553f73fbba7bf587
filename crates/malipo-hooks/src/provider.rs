//! Provider definitions, the registry, and event keys for replay protection.

use crate::ip::IpAllowList;
use crate::request::InboundRequest;
use crate::scheme::{SignError, SignatureScheme};
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Provider names appear in URLs (`/v1/hooks/{provider}/{account}`): at
/// most this long, lowercase ASCII letters, digits and `_`.
pub const PROVIDER_NAME_LENGTH_MAX: usize = 32;
/// An extracted event id longer than this is stored as its SHA-256, so a
/// hostile body can't make the replay table store megabytes per row.
pub const EVENT_ID_LENGTH_MAX: usize = 200;
/// The default per-provider cap on callbacks, per account per minute. A
/// local safety limit, not a provider fact.
pub const RATE_LIMIT_PER_MINUTE_DEFAULT: u32 = 600;

/// What to answer a provider once its callback is accepted, and again for
/// a replay (so it stops retrying).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookResponse {
    /// HTTP status code; must be 2xx.
    pub status: u16,
    /// Content type of `body`; omitted when the body is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default)]
    pub body: String,
}

impl HookResponse {
    /// `200` with an empty body: what most providers want.
    pub fn ok_empty() -> HookResponse {
        HookResponse {
            status: 200,
            content_type: None,
            body: String::new(),
        }
    }

    /// `200` with a JSON body.
    pub fn ok_json(body: &str) -> HookResponse {
        HookResponse {
            status: 200,
            content_type: Some("application/json".to_owned()),
            body: body.to_owned(),
        }
    }
}

/// Everything the gateway needs to receive one provider's callbacks.
/// Serializable: a provider whose scheme is a known [`SignatureScheme`]
/// is added by configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderDefinition {
    /// Registry key and URL segment, e.g. `mpesa`.
    pub name: String,
    pub display_name: String,
    pub scheme: SignatureScheme,
    /// How to find the provider's event id in the body: alternatives tried
    /// in order, each a list of JSON pointers (RFC 6901) whose values are
    /// joined with `:`. An alternative applies only when every pointer
    /// finds a non-empty string, number or boolean. Several alternatives
    /// serve providers that post several body shapes to one URL (Daraja's
    /// STK callback and its `Result` callbacks). See [`event_key`].
    #[serde(default)]
    pub event_id: Vec<Vec<String>>,
    /// The answer for accepted callbacks and for replays.
    pub success_response: HookResponse,
    /// HTTP methods the provider uses (MTN MoMo may PUT).
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// Sender addresses the provider publishes. Accounts may adopt them as
    /// their allow-list; nothing is enforced from here.
    #[serde(default, skip_serializing_if = "IpAllowList::is_empty")]
    pub published_source_ips: IpAllowList,
    /// Headers to redact in the audit copy besides the scheme's own and
    /// [`crate::ALWAYS_REDACTED_HEADERS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact_headers: Vec<String>,
    /// Callbacks accepted per account per minute before the gateway
    /// answers 429.
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_minute: u32,
}

fn default_methods() -> Vec<String> {
    vec!["POST".to_owned()]
}

fn default_rate_limit() -> u32 {
    RATE_LIMIT_PER_MINUTE_DEFAULT
}

/// A configuration mistake in a provider definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error(
        "provider name `{0}` must be 1-{PROVIDER_NAME_LENGTH_MAX} characters of a-z, 0-9 and _"
    )]
    InvalidName(String),
    #[error("provider `{provider}`: {problem}")]
    Invalid { provider: String, problem: String },
    #[error("provider `{0}` is defined twice")]
    Duplicate(String),
}

impl ProviderDefinition {
    /// Checks `request` against the account's secret; see
    /// [`SignatureScheme::verify`].
    pub fn verify(&self, secret: &[u8], request: &InboundRequest<'_>) -> Verdict {
        self.scheme.verify(secret, request)
    }

    /// Signs `raw_body` as this provider would; see
    /// [`SignatureScheme::sign`].
    pub fn sign(
        &self,
        secret: &[u8],
        raw_body: &[u8],
        url: &str,
        now_unix: i64,
    ) -> Result<Vec<(String, String)>, SignError> {
        self.scheme.sign(secret, raw_body, url, now_unix)
    }

    /// Whether callbacks must be confirmed through the status API.
    pub fn requires_status_query(&self) -> bool {
        self.scheme.requires_status_query()
    }

    /// Whether the provider calls back with `method` (case-insensitive).
    pub fn accepts_method(&self, method: &str) -> bool {
        self.methods
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(method))
    }

    /// Refuses definitions the gateway could not use safely: a name unfit
    /// for a URL, blank header names, an `any_of` that is empty or holds
    /// `none`/`any_of` (which would turn a signed provider unsigned),
    /// pointers that are not JSON pointers, a non-2xx success response.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= PROVIDER_NAME_LENGTH_MAX
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return Err(DefinitionError::InvalidName(self.name.clone()));
        }
        let invalid = |problem: String| DefinitionError::Invalid {
            provider: self.name.clone(),
            problem,
        };
        validate_scheme(&self.scheme, true).map_err(invalid)?;
        for alternative in &self.event_id {
            if alternative.is_empty() {
                return Err(invalid("an event_id alternative has no pointers".into()));
            }
            if let Some(pointer) = alternative.iter().find(|p| !p.starts_with('/')) {
                return Err(invalid(format!(
                    "event_id pointer `{pointer}` must start with `/`"
                )));
            }
        }
        if !(200..=299).contains(&self.success_response.status) {
            return Err(invalid(format!(
                "success_response.status {} is not 2xx",
                self.success_response.status
            )));
        }
        if self.methods.is_empty() || self.methods.iter().any(|m| !is_token(m)) {
            return Err(invalid(
                "methods must be non-empty HTTP method names".into(),
            ));
        }
        if let Some(header) = self.redact_headers.iter().find(|h| !is_token(h)) {
            return Err(invalid(format!(
                "redact_headers: `{header}` is not a header name"
            )));
        }
        if self.rate_limit_per_minute == 0 {
            return Err(invalid("rate_limit_per_minute must be at least 1".into()));
        }
        Ok(())
    }
}

/// An HTTP token (RFC 9110): what header names and methods are made of.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn validate_scheme(scheme: &SignatureScheme, top_level: bool) -> Result<(), String> {
    let header_ok = |header: &str| {
        if is_token(header) {
            Ok(())
        } else {
            Err(format!("`{header}` is not a header name"))
        }
    };
    match scheme {
        SignatureScheme::HmacBody { header, .. }
        | SignatureScheme::StripeTimestamped { header, .. }
        | SignatureScheme::CanonicalSortedJson { header, .. }
        | SignatureScheme::SharedSecretHeader { header } => header_ok(header),
        SignatureScheme::FieldsAndUrl {
            header,
            encodings,
            fields,
            ..
        } => {
            header_ok(header)?;
            if encodings.is_empty() {
                return Err("fields_and_url needs at least one encoding".into());
            }
            if fields.is_empty() {
                return Err("fields_and_url needs at least one field".into());
            }
            Ok(())
        }
        SignatureScheme::AnyOf { schemes } => {
            if !top_level {
                return Err("any_of can't be nested".into());
            }
            if schemes.is_empty() {
                return Err("any_of needs at least one scheme".into());
            }
            schemes
                .iter()
                .try_for_each(|scheme| validate_scheme(scheme, false))
        }
        SignatureScheme::None if top_level => Ok(()),
        SignatureScheme::None => Err("any_of can't contain none".into()),
    }
}

/// The key under which the gateway remembers a processed callback, to
/// answer a repeat with `success_response` instead of processing it again:
///
/// - `id:<value>[:<value>…]` from the first `event_id` alternative that
///   fully resolves (`id-sha256:<hex>` when that is longer than
///   [`EVENT_ID_LENGTH_MAX`]);
/// - otherwise `sha256:<hex of the raw body>`, which still catches
///   byte-identical redeliveries.
///
/// The prefixes keep the two kinds from colliding. Keys are per provider
/// and account: scope them so in storage. Record a key only once the
/// callback has passed its checks (for unsigned providers, once the status
/// query confirmed it): an unauthenticated body must not be able to claim
/// an event id ahead of the real callback.
pub fn event_key(definition: &ProviderDefinition, raw_body: &[u8]) -> String {
    if !definition.event_id.is_empty()
        && let Ok(body) = serde_json::from_slice::<Value>(raw_body)
        && let Some(id) = definition
            .event_id
            .iter()
            .find_map(|pointers| extract_event_id(&body, pointers))
    {
        return if id.len() > EVENT_ID_LENGTH_MAX {
            format!("id-sha256:{}", sha256_hex(id.as_bytes()))
        } else {
            format!("id:{id}")
        };
    }
    format!("sha256:{}", sha256_hex(raw_body))
}

fn extract_event_id(body: &Value, pointers: &[String]) -> Option<String> {
    if pointers.is_empty() {
        return None;
    }
    let mut parts = Vec::with_capacity(pointers.len());
    for pointer in pointers {
        let part = match body.pointer(pointer)? {
            Value::String(text) if !text.is_empty() => text.clone(),
            // Exact digits: two ids that differ beyond 2^53 must not share
            // a key (one would be dropped as a replay of the other).
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            _ => return None,
        };
        parts.push(part);
    }
    Some(parts.join(":"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Validated provider definitions by name. Serialized as a list of
/// definitions, so it can be read from configuration and extended there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<ProviderDefinition>", into = "Vec<ProviderDefinition>")]
pub struct ProviderRegistry {
    providers: BTreeMap<String, ProviderDefinition>,
}

impl ProviderRegistry {
    /// The built-in providers ([`crate::builtin_providers`]).
    pub fn builtin() -> ProviderRegistry {
        let providers = crate::builtin::builtin_providers()
            .into_iter()
            .map(|definition| (definition.name.clone(), definition))
            .collect();
        ProviderRegistry { providers }
    }

    /// Validates each definition and refuses duplicate names.
    pub fn from_definitions(
        definitions: Vec<ProviderDefinition>,
    ) -> Result<ProviderRegistry, DefinitionError> {
        let mut providers = BTreeMap::new();
        for definition in definitions {
            definition.validate()?;
            if providers.contains_key(&definition.name) {
                return Err(DefinitionError::Duplicate(definition.name));
            }
            providers.insert(definition.name.clone(), definition);
        }
        Ok(ProviderRegistry { providers })
    }

    /// Adds `definition`, replacing a provider of the same name (a
    /// configured override of a built-in).
    pub fn insert(&mut self, definition: ProviderDefinition) -> Result<(), DefinitionError> {
        definition.validate()?;
        self.providers.insert(definition.name.clone(), definition);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&ProviderDefinition> {
        self.providers.get(name)
    }

    /// Definitions in name order.
    pub fn iter(&self) -> impl Iterator<Item = &ProviderDefinition> {
        self.providers.values()
    }

    pub fn len(&self) -> usize {
        self.providers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }
}

impl TryFrom<Vec<ProviderDefinition>> for ProviderRegistry {
    type Error = DefinitionError;

    fn try_from(definitions: Vec<ProviderDefinition>) -> Result<Self, Self::Error> {
        ProviderRegistry::from_definitions(definitions)
    }
}

impl From<ProviderRegistry> for Vec<ProviderDefinition> {
    fn from(registry: ProviderRegistry) -> Self {
        registry.providers.into_values().collect()
    }
}
