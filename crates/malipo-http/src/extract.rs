//! Extractors: authentication, JSON bodies and query strings parsed at the
//! edge into the gateway's types, with every refusal naming the field.

use crate::AppState;
use crate::error::HttpError;
use crate::security::{check_key_source, check_operator_source, limit_credential, peer_ip};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use malipo_gateway::auth::{Actor, MerchantContext};
use malipo_gateway::{ApiError, ErrorKind};
use malipo_store::{Cursor, Page};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

/// The most objects one list page may hold.
pub const PAGE_LIMIT_MAX: u32 = 100;
pub const PAGE_LIMIT_DEFAULT: u32 = 10;

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::new(
            ErrorKind::Authentication,
            "missing_api_key",
            "no API key: send `Authorization: Bearer sk_test_…`",
        )
    })?;
    value
        .to_str()
        .ok()
        .and_then(|text| text.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::Authentication,
                "invalid_api_key",
                "the Authorization header must be `Bearer <key>`",
            )
        })
}

/// The caller's address and request id, for the audit log.
fn with_origin(actor: Actor, parts: &Parts) -> Actor {
    let request_id = parts
        .headers
        .get(crate::REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    actor.from_request(peer_ip(&parts.extensions), request_id)
}

/// Authenticates the API key, checks the caller's address against the
/// key's allow-list, then applies the key's rate limit.
async fn authenticate_merchant(
    parts: &Parts,
    state: &AppState,
) -> Result<(MerchantContext, Actor), HttpError> {
    let secret = bearer(&parts.headers)?;
    let context = state.gateway.authenticate_merchant(secret).await?;
    check_key_source(&context, &parts.extensions)?;
    limit_credential(
        state,
        &parts.extensions,
        &format!("key:{}", context.key_id),
        "for this API key",
    )
    .await?;
    let actor = with_origin(Actor::api_key(&context, secret), parts);
    Ok((context, actor))
}

/// An authenticated merchant request (within its key's rate limit).
pub struct Merchant(pub MerchantContext);

impl FromRequestParts<AppState> for Merchant {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Merchant(authenticate_merchant(parts, state).await?.0))
    }
}

/// An authenticated merchant request, with who made it and from where: for
/// the handlers of audited actions (key management, configuration).
pub struct MerchantActor(pub MerchantContext, pub Actor);

impl FromRequestParts<AppState> for MerchantActor {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (context, actor) = authenticate_merchant(parts, state).await?;
        Ok(MerchantActor(context, actor))
    }
}

/// An authenticated operator request: from an allowed address (checked
/// before the token), within the token's rate limit. Holds the actor the
/// audit log records.
pub struct Operator(pub Actor);

impl FromRequestParts<AppState> for Operator {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        check_operator_source(state, &parts.extensions)?;
        let token = bearer(&parts.headers)?;
        let token_id = state.gateway.authenticate_operator(token).await?;
        limit_credential(
            state,
            &parts.extensions,
            &format!("operator:{token_id}"),
            "for this operator token",
        )
        .await?;
        Ok(Operator(with_origin(
            Actor::operator(&token_id, token),
            parts,
        )))
    }
}

/// A JSON body parsed into `T`, keeping the raw bytes (the idempotency hash
/// covers them). An empty body counts as `{}`.
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Bytes,
}

/// Deserializes JSON, naming the offending field on failure. Refuses, before
/// `T` sees the body, a key that appears twice in one object (parsers differ
/// on which copy wins, so the request is ambiguous) and a string holding NUL
/// (PostgreSQL cannot store it and C code stops at it).
pub fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    let raw = if raw.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        raw
    };
    json_check::check(raw)?;
    let mut deserializer = serde_json::Deserializer::from_slice(raw);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = inner.to_string();
        // A missing or repeated field is not on the path yet: its name is in
        // the message.
        let param = named_field(&message)
            .map(|field| join_path(&path, field))
            .or_else(|| (path != ".").then_some(path));
        let mut api_error = ApiError::new(
            ErrorKind::InvalidRequest,
            if inner.is_syntax() || inner.is_eof() {
                "body_malformed"
            } else {
                "parameter_invalid"
            },
            format!("invalid JSON body: {message}"),
        );
        api_error.param = param;
        api_error
    })?;
    deserializer.end().map_err(|error| {
        ApiError::new(
            ErrorKind::InvalidRequest,
            "body_malformed",
            format!("invalid JSON body: {error}"),
        )
    })?;
    Ok(value)
}

fn named_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("duplicate field `"))?
        .split('`')
        .next()
}

fn join_path(path: &str, field: &str) -> String {
    if path == "." {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(content_type) = request.headers().get(header::CONTENT_TYPE)
            && !content_type
                .to_str()
                .unwrap_or("")
                .starts_with("application/json")
        {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "content_type_unsupported",
                "send the body as `Content-Type: application/json`",
            )
            .into());
        }
        let limit = state.body_limit_bytes;
        let raw = Bytes::from_request(request, state).await.map_err(|_| {
            ApiError::new(
                ErrorKind::PayloadTooLarge,
                "body_too_large",
                format!("the request body is larger than the limit of {limit} bytes"),
            )
        })?;
        Ok(JsonBody {
            value: parse_json(&raw)?,
            raw,
        })
    }
}

/// A UTF-8 text body (e.g. a CSV upload), within the body limit.
pub struct TextBody(pub String);

impl FromRequest<AppState> for TextBody {
    type Rejection = HttpError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.body_limit_bytes;
        let raw = Bytes::from_request(request, state).await.map_err(|_| {
            ApiError::new(
                ErrorKind::PayloadTooLarge,
                "body_too_large",
                format!("the request body is larger than the limit of {limit} bytes"),
            )
        })?;
        let text = String::from_utf8(raw.to_vec())
            .map_err(|_| ApiError::invalid("body", "the body must be UTF-8 text"))?;
        Ok(TextBody(text))
    }
}

/// A query string parsed into `T`, naming the offending parameter.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        if let Some((name, _)) =
            form_urlencoded::parse(query.as_bytes()).find(|(_, value)| value.contains('\0'))
        {
            return Err(ApiError::invalid(
                name.to_string(),
                format!("query parameter `{name}` contains a NUL character"),
            )
            .into());
        }
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        let value = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let path = error.path().to_string();
            ApiError::invalid(
                path.clone(),
                format!("invalid query parameter `{path}`: {}", error.inner()),
            )
        })?;
        Ok(QueryParams(value))
    }
}

/// `limit`, `starting_after`, `ending_before`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct PageParams {
    /// 1 to 100, default 10.
    pub limit: Option<u32>,
    /// An object id: the page starts after it (older objects).
    pub starting_after: Option<String>,
    /// An object id: the page ends before it (newer objects).
    pub ending_before: Option<String>,
}

impl PageParams {
    pub fn page(self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(PAGE_LIMIT_DEFAULT);
        if !(1..=PAGE_LIMIT_MAX).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("limit must be between 1 and {PAGE_LIMIT_MAX}"),
            ));
        }
        let cursor = match (self.starting_after, self.ending_before) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "ending_before",
                    "use starting_after or ending_before, not both",
                ));
            }
            (Some(id), None) => Cursor::StartingAfter(cursor_id("starting_after", id)?),
            (None, Some(id)) => Cursor::EndingBefore(cursor_id("ending_before", id)?),
            (None, None) => Cursor::Newest,
        };
        Ok(Page { limit, cursor })
    }
}

/// A cursor must have the shape of an object id (`pay_` and 26 base32
/// characters): anything else cannot name an object of any list.
fn cursor_id(param: &str, id: String) -> Result<String, ApiError> {
    let shaped = id.split_once('_').is_some_and(|(prefix, rest)| {
        (1..=8).contains(&prefix.len())
            && prefix.bytes().all(|b| b.is_ascii_lowercase())
            && rest.len() == 26
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    });
    if shaped {
        Ok(id)
    } else {
        Err(ApiError::invalid(
            param,
            format!("{param} must be the id of an object in this list (e.g. `pay_…`)"),
        ))
    }
}

mod json_check {
    //! One pass over a JSON body before it is deserialized, for what serde
    //! lets through: duplicate keys in maps (`metadata`) and NUL in strings.

    use malipo_gateway::{ApiError, ErrorKind};
    use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    pub fn check(raw: &[u8]) -> Result<(), ApiError> {
        let mut deserializer = serde_json::Deserializer::from_slice(raw);
        match (Node { path: "" }).deserialize(&mut deserializer) {
            Ok(()) => Ok(()),
            // Syntax errors are reported by the real parse, with its words.
            Err(error) if !error.is_data() => Ok(()),
            Err(error) => Err(refusal(&error.to_string())),
        }
    }

    /// Errors carry `<path>\u{1}<message>`: the path and why.
    fn refusal(text: &str) -> ApiError {
        let text = text.split(" at line ").next().unwrap_or(text);
        let (path, message) = text.split_once('\u{1}').unwrap_or(("", text));
        let mut error = ApiError::new(
            ErrorKind::InvalidRequest,
            "parameter_invalid",
            format!("invalid JSON body: {message}"),
        );
        if !path.is_empty() {
            error.param = Some(path.to_owned());
        }
        error
    }

    fn join(path: &str, key: &str) -> String {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    }

    struct Node<'p> {
        path: &'p str,
    }

    impl<'de> DeserializeSeed<'de> for Node<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Node<'_> {
        type Value = ();

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("any JSON value")
        }

        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<(), E> {
            if text.contains('\0') {
                return Err(E::custom(format!(
                    "{}\u{1}a string contains a NUL character",
                    self.path
                )));
            }
            Ok(())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Node { path: self.path })?.is_some() {}
            Ok(())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut keys = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let path = join(self.path, &key);
                if key.contains('\0') {
                    return Err(A::Error::custom(format!(
                        "{path}\u{1}a key contains a NUL character"
                    )));
                }
                map.next_value_seed(Node { path: &path })?;
                if !keys.insert(key) {
                    return Err(A::Error::custom(format!(
                        "{path}\u{1}a key appears twice in one object"
                    )));
                }
            }
            Ok(())
        }
    }
}
