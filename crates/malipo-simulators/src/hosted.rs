//! What the card simulators (Paystack, Stripe) share: the minimal hosted
//! card page (an HTML form listing the provider's test cards), how a test
//! drives the webhook that follows a submission, and UTC timestamps.
//!
//! The page is the only place a card number is typed: the gateway under
//! test redirects there and never sees one.

use crate::clock::{CivilTime, now_unix_ms};
use crate::context::{Callback, SimulatorContext};
use axum::http::HeaderMap;
use std::collections::HashMap;

/// A documented test card and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestCard {
    pub number: &'static str,
    pub description: &'static str,
}

/// When the webhook that follows a hosted-page submission is sent, chosen
/// by the form's `simulate_webhook` field (a simulator extension; a browser
/// sends none and gets [`WebhookTiming::BeforeRedirect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookTiming {
    /// `before_redirect` (default): delivered before the page answers.
    BeforeRedirect,
    /// `after_redirect`: the page answers first; the webhook follows after
    /// `callback_delay_ms`.
    AfterRedirect,
    /// `lost`: never sent; only the status API tells.
    Lost,
    /// `twice`: delivered twice before the page answers.
    Twice,
}

impl WebhookTiming {
    pub fn parse(text: Option<&str>) -> WebhookTiming {
        match text.map(str::trim) {
            Some("after_redirect") => WebhookTiming::AfterRedirect,
            Some("lost") => WebhookTiming::Lost,
            Some("twice") => WebhookTiming::Twice,
            _ => WebhookTiming::BeforeRedirect,
        }
    }
}

/// Delivers `callback` as `timing` says: now (once or twice), later in the
/// background after `callback_delay_ms`, or never.
pub(crate) async fn deliver_as(
    context: &SimulatorContext,
    callback: Callback,
    timing: WebhookTiming,
) {
    match timing {
        WebhookTiming::BeforeRedirect => {
            context.deliver(&callback).await;
        }
        WebhookTiming::Twice => {
            context.deliver(&callback).await;
            context.deliver(&callback).await;
        }
        WebhookTiming::AfterRedirect => {
            let background = context.clone();
            context.spawn(async move {
                background.customer_delay().await;
                background.deliver(&callback).await;
            });
        }
        WebhookTiming::Lost => {}
    }
}

/// The card number a form carried, digits only.
pub(crate) fn card_number(form: &HashMap<String, String>) -> String {
    form.get("card_number")
        .map(|number| number.chars().filter(char::is_ascii_digit).collect())
        .unwrap_or_default()
}

/// `http://<Host>` of the request, to build absolute page URLs whatever
/// port the simulator listens on.
pub(crate) fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| {
            host.bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b':' | b'-'))
        })
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// Escapes text for HTML.
pub(crate) fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            other => other.to_string(),
        })
        .collect()
}

/// The hosted card page: what is being paid and a form posting
/// `card_number` (and `simulate_webhook`) back to `action`.
pub(crate) fn card_page(provider: &str, summary: &str, action: &str, cards: &[TestCard]) -> String {
    let options: String = cards
        .iter()
        .map(|card| {
            format!(
                "<li><label><input type=\"radio\" name=\"card_number\" value=\"{}\"> {} — {}</label></li>\n",
                card.number,
                card.number,
                escape(card.description)
            )
        })
        .collect();
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{provider} checkout (simulator)</title></head>\n\
         <body><h1>{provider} checkout (simulator)</h1><p>{}</p>\n\
         <form method=\"post\" action=\"{}\">\n<ul>\n{options}</ul>\n\
         <p><label>Or a card number: <input name=\"card_number\" autocomplete=\"off\"></label></p>\n\
         <p><label>Webhook: <select name=\"simulate_webhook\"><option>before_redirect</option>\
         <option>after_redirect</option><option>lost</option><option>twice</option></select></label></p>\n\
         <button type=\"submit\">Pay</button>\n</form></body></html>\n",
        escape(summary),
        escape(action),
    )
}

/// A page saying how it ended (when there is no return URL).
pub(crate) fn result_page(provider: &str, message: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{provider} (simulator)</title></head>\n\
         <body><h1>{}</h1></body></html>\n",
        escape(message)
    )
}

/// `url` with `pairs` added to its query.
pub(crate) fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.query_pairs_mut().extend_pairs(pairs);
            parsed.to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// ISO 8601 UTC with milliseconds, e.g. `2024-08-22T09:15:02.000Z`.
pub(crate) fn iso_utc(unix_ms: i64) -> String {
    // `east_africa` adds three hours; taking them off first gives UTC.
    let time = CivilTime::east_africa(unix_ms - 3 * 3600 * 1000);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        time.year, time.month, time.day, time.hour, time.minute, time.second, time.millisecond
    )
}

pub(crate) fn now_iso() -> String {
    iso_utc(now_unix_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_timestamps() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_utc(1_724_318_102_000), "2024-08-22T09:15:02.000Z");
    }

    #[test]
    fn pages_escape_what_they_show() {
        let page = card_page(
            "Paystack",
            "<b>",
            "/checkout/x",
            &[TestCard {
                number: "4084084084084081",
                description: "succeeds",
            }],
        );
        assert!(page.contains("&lt;b&gt;"));
        assert!(page.contains("value=\"4084084084084081\""));
        assert_eq!(
            with_query("https://shop.example/done?a=1", &[("reference", "r")]),
            "https://shop.example/done?a=1&reference=r"
        );
    }
}
