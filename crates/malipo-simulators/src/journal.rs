//! What a simulator received and what it sent, for tests to inspect.
//!
//! Both lists are bounded (`journal_entries_max`, oldest dropped first) so a
//! long-running demo simulator does not grow without limit.

use crate::clock::now_unix_ms;
use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

/// One HTTP request a simulator received.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// Header names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body as text (invalid UTF-8 replaced).
    pub body: String,
    pub received_at_ms: i64,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// One attempt at delivering a callback (a duplicate callback is two
/// deliveries; a retried one is several attempts).
#[derive(Debug, Clone, Serialize)]
pub struct CallbackDelivery {
    /// What the callback is, e.g. `stk_callback`, `c2b_validation`.
    pub kind: String,
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// The exact body bytes sent, as text.
    pub body: String,
    /// 1 for the first attempt of a delivery.
    pub attempt: u32,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why there was no answer (connection refused, timeout).
    pub error: Option<String>,
    pub sent_at_ms: i64,
}

impl CallbackDelivery {
    /// The body parsed as JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    /// Whether the receiver answered 2xx.
    pub fn delivered(&self) -> bool {
        self.status
            .is_some_and(|status| (200..300).contains(&status))
    }
}

fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

#[derive(Debug, Default)]
struct Entries {
    requests: VecDeque<RecordedRequest>,
    callbacks: VecDeque<CallbackDelivery>,
}

/// The bounded, shared record of one simulator's traffic.
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    entries: Arc<Mutex<Entries>>,
    entries_max: usize,
}

impl Journal {
    pub(crate) fn new(entries_max: usize) -> Journal {
        Journal {
            entries: Arc::default(),
            entries_max: entries_max.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding this lock cannot leave the lists half
        // written (each push is one call), so a poisoned lock is still usable.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn record_request(&self, request: RecordedRequest) {
        let mut entries = self.lock();
        if entries.requests.len() >= self.entries_max {
            entries.requests.pop_front();
        }
        entries.requests.push_back(request);
    }

    pub(crate) fn record_callback(&self, delivery: CallbackDelivery) {
        let mut entries = self.lock();
        if entries.callbacks.len() >= self.entries_max {
            entries.callbacks.pop_front();
        }
        entries.callbacks.push_back(delivery);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.iter().cloned().collect()
    }

    pub(crate) fn callbacks(&self) -> Vec<CallbackDelivery> {
        self.lock().callbacks.iter().cloned().collect()
    }
}

/// A request as the journal records it, from its parts and body.
pub(crate) fn recorded_request(parts: &axum::http::request::Parts, body: &[u8]) -> RecordedRequest {
    RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(body).into_owned(),
        received_at_ms: now_unix_ms(),
    }
}
