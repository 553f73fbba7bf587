//! What every provider simulator shares: the configuration, the journal,
//! the HTTP client that delivers callbacks, and the stop signal that ends
//! its background tasks.

use crate::Error;
use crate::clock::now_unix_ms;
use crate::config::SimulatorConfig;
use crate::journal::{CallbackDelivery, Journal, RecordedRequest, recorded_request};
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Paths under this prefix drive the simulator itself (trigger a customer
/// payment, read the journal); they are not provider API and are not
/// recorded as received requests.
pub const CONTROL_PATH_PREFIX: &str = "/simulate/";

/// Longest receiver answer kept (C2B validation replies are tiny).
const RESPONSE_BODY_BYTES_MAX: usize = 16 * 1024;

/// Shared by one simulator's handlers and background tasks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SimulatorContext {
    config: Arc<SimulatorConfig>,
    journal: Journal,
    http: reqwest::Client,
    stop: Arc<watch::Sender<bool>>,
}

/// A callback to deliver: where, how, and what.
#[derive(Debug, Clone)]
pub(crate) struct Callback {
    pub kind: &'static str,
    pub method: reqwest::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Callback {
    pub(crate) fn post(kind: &'static str, url: &str, body: Value) -> Callback {
        Callback {
            kind,
            method: reqwest::Method::POST,
            url: url.to_string(),
            headers: Vec::new(),
            body,
        }
    }
}

/// What one attempt got back.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: String,
}

impl SimulatorContext {
    /// A context for `config`: builds the callback client (installing the
    /// ring TLS provider if none is installed yet, for https callback URLs).
    pub fn new(config: SimulatorConfig) -> Result<SimulatorContext, Error> {
        // Another part of the process may have installed a provider already;
        // either way one is installed afterwards, which is all we need.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            // Callbacks go to the exact URL a request named, usually on
            // 127.0.0.1: never through an environment proxy, never redirected.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(config.callback_timeout_ms.max(1)))
            .build()
            .map_err(Error::HttpClient)?;
        let (stop, _) = watch::channel(false);
        Ok(SimulatorContext {
            journal: Journal::new(config.journal_entries_max),
            config: Arc::new(config),
            http,
            stop: Arc::new(stop),
        })
    }

    pub fn config(&self) -> &SimulatorConfig {
        &self.config
    }

    /// Every request received so far (oldest first, bounded).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.journal.requests()
    }

    /// Every callback attempt so far (oldest first, bounded).
    pub fn callbacks_sent(&self) -> Vec<CallbackDelivery> {
        self.journal.callbacks()
    }

    /// Ends the background tasks (pending outcomes and callbacks) and
    /// signals the server, if any, to shut down.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub(crate) fn is_stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once [`SimulatorContext::stop`] has been called.
    pub(crate) fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.stop.subscribe();
        async move {
            // An error means the sender is gone, which also means stop.
            let _ = receiver.wait_for(|stopped| *stopped).await;
        }
    }

    /// Runs `task` in the background until it ends or the simulator stops.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stopped = self.stopped();
        tokio::spawn(async move {
            tokio::select! {
                () = task => {}
                () = stopped => {}
            }
        });
    }

    /// Sleeps `callback_delay_ms`: the time the simulated customer takes.
    pub(crate) async fn customer_delay(&self) {
        tokio::time::sleep(Duration::from_millis(self.config.callback_delay_ms)).await;
    }

    /// Delivers `callback`, retrying up to `callback_attempts_max` attempts
    /// with doubling backoff until the receiver answers 2xx. Every attempt
    /// is journaled. Returns whether it was delivered.
    pub(crate) async fn deliver(&self, callback: &Callback) -> bool {
        let attempts_max = self.config.callback_attempts_max.max(1);
        let mut backoff_ms = self.config.callback_retry_backoff_ms;
        for attempt in 1..=attempts_max {
            if self.is_stopped() {
                return false;
            }
            if let Ok(answer) = self.attempt(callback, attempt, None).await
                && (200..300).contains(&answer.status)
            {
                return true;
            }
            if attempt < attempts_max {
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = backoff_ms.saturating_mul(2);
            }
        }
        tracing::debug!(
            kind = callback.kind,
            url = %callback.url,
            attempts = attempts_max,
            "callback not delivered"
        );
        false
    }

    /// One journaled attempt; `timeout` overrides `callback_timeout_ms`.
    /// Returns the receiver's answer or why there was none.
    pub(crate) async fn attempt(
        &self,
        callback: &Callback,
        attempt: u32,
        timeout: Option<Duration>,
    ) -> Result<Answer, String> {
        let body = callback.body.to_string();
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        headers.extend(callback.headers.iter().cloned());
        let mut request = self
            .http
            .request(callback.method.clone(), &callback.url)
            .body(body.clone());
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let sent_at_ms = now_unix_ms();
        let result = match request.send().await {
            Ok(response) => Ok(Answer {
                status: response.status().as_u16(),
                body: read_bounded(response).await,
            }),
            Err(error) => Err(error.to_string()),
        };
        self.journal.record_callback(CallbackDelivery {
            kind: callback.kind.to_string(),
            method: callback.method.to_string(),
            url: callback.url.clone(),
            headers,
            body,
            attempt,
            status: result.as_ref().ok().map(|answer| answer.status),
            error: result.as_ref().err().cloned(),
            sent_at_ms,
        });
        result
    }
}

/// The receiver's answer as text, or empty past `RESPONSE_BODY_BYTES_MAX`
/// (a receiver cannot make the simulator buffer without limit).
async fn read_bounded(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        if body.len() + chunk.len() > RESPONSE_BODY_BYTES_MAX {
            return String::new();
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// Middleware: journals every provider request (method, path, headers,
/// body) and enforces `request_body_bytes_max`.
pub(crate) async fn record_requests(
    State(context): State<SimulatorContext>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, context.config.request_body_bytes_max).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    if !parts.uri.path().starts_with(CONTROL_PATH_PREFIX) {
        context
            .journal
            .record_request(recorded_request(&parts, &bytes));
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Whether `url` is an absolute http(s) URL a callback can be sent to.
pub(crate) fn is_callback_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .is_ok_and(|parsed| matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some())
}
