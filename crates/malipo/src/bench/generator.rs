//! The HTTP/1.1 load generator of `malipo bench`: what a request asks for
//! ([`Target`], [`Endpoint`]), one connection's loop, and the two ways of
//! driving connections.
//!
//! - [`closed_loop`]: each connection sends its next request as soon as the
//!   previous one is answered (the maximum a number of connections gets).
//! - [`open_loop`]: requests are scheduled at a fixed rate whatever the
//!   answers do; a request waits for a free connection if all are busy,
//!   and its latency counts from its scheduled time, so a slow server
//!   shows as latency instead of as fewer requests (no coordinated
//!   omission).
//!
//! Every loop is bounded in time and in count; every request in
//! [`OPERATION_TIMEOUT`].

use super::{OPERATION_TIMEOUT, PAYMENT_BODY, micros_since, stripe_callback_request};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc};

/// Upper bounds that keep every loop finite whatever the options say.
const REQUESTS_PER_CONNECTION_MAX: u64 = 10_000_000;
pub(super) const OPEN_LOOP_REQUESTS_MAX: u64 = 1_000_000;
/// How long an open-loop run may take to drain after its last scheduled
/// request.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the load generator needs to reach the gateway.
pub(super) struct Target {
    pub(super) address: SocketAddr,
    pub(super) host: String,
    pub(super) authorization: String,
    pub(super) idempotency_keys: bool,
    pub(super) endpoint: Endpoint,
}

/// What each request of a load run asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// `POST /v1/payments`: create + confirm one payment.
    CreatePayment,
    /// `GET /healthz`: no database, no authentication; the ceiling of the
    /// HTTP stack and the load generator on this machine.
    Healthz,
    /// A signed Stripe-style callback with a unique event id to one of
    /// these `/v1/hooks/stripe/{account}` paths (round robin).
    StripeCallback { paths: Vec<String> },
    /// `GET /v1/payments/{id}` of one of these payments (round robin).
    GetPayment { ids: Vec<String> },
    /// `GET /v1/payments?limit=…`: the newest page of payments.
    ListPayments { limit: u32 },
}

pub(super) type Sender = SendRequest<Full<Bytes>>;

/// One HTTP/1.1 connection to the gateway.
pub(super) async fn connect(address: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    // Ends when the sender is dropped or the server closes the connection.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one request of `target`'s kind; `Err` describes what went wrong.
/// `sequence` is unique per request of a run.
pub(super) async fn send_request(
    sender: &mut Sender,
    target: &Target,
    sequence: u64,
) -> Result<(), String> {
    match &target.endpoint {
        Endpoint::Healthz => {
            let request = hyper::Request::get("/healthz")
                .header(hyper::header::HOST, &target.host)
                .body(Full::new(Bytes::new()))
                .map_err(|error| format!("building the request: {error}"))?;
            exchange(sender, request, |_| Ok(())).await
        }
        Endpoint::CreatePayment => {
            let request = payment_request(target, sequence)?;
            exchange(sender, request, payment_succeeded).await
        }
        Endpoint::StripeCallback { paths } => {
            let index = usize::try_from(sequence % paths.len().max(1) as u64).unwrap_or(0);
            let path = paths
                .get(index)
                .ok_or_else(|| "no callback path".to_owned())?;
            let request = stripe_callback_request(&target.host, path)?;
            exchange(sender, request, |_| Ok(())).await
        }
        Endpoint::GetPayment { ids } => {
            let index = usize::try_from(sequence % ids.len().max(1) as u64).unwrap_or(0);
            let id = ids.get(index).ok_or_else(|| "no payment id".to_owned())?;
            let request = authorized_get(target, &format!("/v1/payments/{id}"))?;
            exchange(sender, request, |body| {
                expect_in(body, br#""object":"payment""#)
            })
            .await
        }
        Endpoint::ListPayments { limit } => {
            let request = authorized_get(target, &format!("/v1/payments?limit={limit}"))?;
            exchange(sender, request, |body| {
                expect_in(body, br#""object":"list""#)
            })
            .await
        }
    }
}

/// `POST /v1/payments` with [`PAYMENT_BODY`] as `target`'s merchant.
pub(super) fn payment_request(
    target: &Target,
    sequence: u64,
) -> Result<hyper::Request<Full<Bytes>>, String> {
    let mut request = hyper::Request::post("/v1/payments")
        .header(hyper::header::HOST, &target.host)
        .header(hyper::header::AUTHORIZATION, &target.authorization)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if target.idempotency_keys {
        request = request.header(
            "Idempotency-Key",
            format!("bench-{}-{sequence}", uuid::Uuid::new_v4().simple()),
        );
    }
    request
        .body(Full::new(Bytes::from_static(PAYMENT_BODY.as_bytes())))
        .map_err(|error| format!("building the request: {error}"))
}

/// `GET path` as `target`'s merchant.
fn authorized_get(target: &Target, path: &str) -> Result<hyper::Request<Full<Bytes>>, String> {
    hyper::Request::get(path)
        .header(hyper::header::HOST, &target.host)
        .header(hyper::header::AUTHORIZATION, &target.authorization)
        .body(Full::new(Bytes::new()))
        .map_err(|error| format!("building the request: {error}"))
}

/// Accepts a body that contains `needle`.
fn expect_in(body: &[u8], needle: &[u8]) -> Result<(), String> {
    if contains(body, needle) {
        Ok(())
    } else {
        Err(format!(
            "unexpected answer: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ))
    }
}

/// Accepts a payment answered `"status":"succeeded"`.
pub(super) fn payment_succeeded(body: &[u8]) -> Result<(), String> {
    if contains(body, br#""status":"succeeded""#) {
        Ok(())
    } else {
        Err(format!(
            "the payment did not succeed: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ))
    }
}

/// Sends `request`, reads the whole response, and checks it: a 200 whose
/// body `check` accepts (and answers from). Bounded by
/// [`OPERATION_TIMEOUT`].
pub(super) async fn exchange<T>(
    sender: &mut Sender,
    request: hyper::Request<Full<Bytes>>,
    check: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Result<T, String> {
    let exchange = async {
        sender
            .ready()
            .await
            .map_err(|error| format!("connection: {error}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| format!("sending: {error}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| format!("reading the response: {error}"))?
            .to_bytes();
        if status != hyper::StatusCode::OK {
            return Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ));
        }
        check(&body)
    };
    tokio::time::timeout(OPERATION_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {} s", OPERATION_TIMEOUT.as_secs())))
}

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// What a load run measured.
#[derive(Default)]
pub(super) struct LoadRun {
    pub(super) elapsed: Duration,
    pub(super) ok: u64,
    /// Every failed request, including the rate-limited ones.
    pub(super) errors: u64,
    /// Requests answered `429 Too Many Requests`.
    pub(super) rate_limited: u64,
    pub(super) first_error: Option<String>,
    /// Latency of every completed request (ok or not).
    pub(super) micros: Vec<u64>,
}

impl LoadRun {
    pub(super) fn absorb(&mut self, other: LoadRun) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.rate_limited += other.rate_limited;
        self.micros.extend(other.micros);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub(super) fn record(&mut self, outcome: Result<(), String>, micros: u64) {
        self.micros.push(micros);
        match outcome {
            Ok(()) => self.ok += 1,
            Err(error) => {
                self.errors += 1;
                if error.starts_with("HTTP 429") {
                    self.rate_limited += 1;
                }
                self.first_error.get_or_insert(error);
            }
        }
    }
}

/// Sends one request after another on one connection until `deadline`,
/// taking each request's time from `next` (the scheduled start: now for a
/// closed loop, the ticket's time for an open loop). Reconnects after a
/// failed request.
async fn connection_loop<N, Fut>(
    target: Arc<Target>,
    worker: u64,
    progress: Arc<Progress>,
    mut next: N,
) -> LoadRun
where
    N: FnMut() -> Fut,
    Fut: Future<Output = Option<Instant>>,
{
    let mut run = LoadRun::default();
    let mut sender: Option<Sender> = None;
    let mut sequence = worker * REQUESTS_PER_CONNECTION_MAX;
    for _ in 0..REQUESTS_PER_CONNECTION_MAX {
        let Some(scheduled) = next().await else {
            break;
        };
        sequence += 1;
        let outcome = match &mut sender {
            Some(connection) => send_request(connection, &target, sequence).await,
            None => match connect(target.address).await {
                Ok(mut connection) => {
                    let outcome = send_request(&mut connection, &target, sequence).await;
                    sender = Some(connection);
                    outcome
                }
                Err(error) => {
                    // Don't spin on a refused connection.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Err(format!("connecting: {error}"))
                }
            },
        };
        if outcome.is_err() {
            sender = None;
            progress.errors.fetch_add(1, Ordering::Relaxed);
        }
        progress.completed.fetch_add(1, Ordering::Relaxed);
        run.record(outcome, micros_since(scheduled));
    }
    run
}

/// `connections` connections, each sending its next request as soon as the
/// previous one is answered, for `seconds`.
pub(super) async fn closed_loop(target: &Arc<Target>, connections: u32, seconds: u64) -> LoadRun {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let progress = Arc::new(Progress::default());
    let tasks: Vec<_> = (0..connections)
        .map(|worker| {
            tokio::spawn(connection_loop(
                target.clone(),
                u64::from(worker),
                progress.clone(),
                move || async move {
                    let now = Instant::now();
                    (now < deadline).then_some(now)
                },
            ))
        })
        .collect();
    let mut total = LoadRun::default();
    for task in tasks {
        match task.await {
            Ok(run) => total.absorb(run),
            Err(error) => total.record(Err(format!("load task: {error}")), 0),
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// Counters of a run while it runs, for a progress display.
#[derive(Debug, Default)]
pub(super) struct Progress {
    /// Requests whose scheduled time has come (open loop only).
    pub(super) scheduled: AtomicU64,
    /// Requests answered or failed.
    pub(super) completed: AtomicU64,
    /// Requests that failed.
    pub(super) errors: AtomicU64,
}

/// Requests scheduled at `rate`/s for `seconds` regardless of how fast they
/// are answered, served by `connections` connections; each latency counts
/// from the request's scheduled time, so queueing in the generator is
/// included (no coordinated omission). `progress` is updated as the run
/// goes. A run ends when every request is answered, or
/// [`DRAIN_TIMEOUT`] after its last scheduled request: the requests still
/// unanswered then count as errors.
pub(super) async fn open_loop(
    target: &Arc<Target>,
    connections: u32,
    rate: u32,
    seconds: u64,
    progress: &Arc<Progress>,
) -> LoadRun {
    let total_requests = (u64::from(rate) * seconds).min(OPEN_LOOP_REQUESTS_MAX);
    let (tickets, receiver) =
        mpsc::channel::<Instant>(usize::try_from(total_requests.max(1)).unwrap_or(1));
    let receiver = Arc::new(Mutex::new(receiver));
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|worker| {
            let receiver = receiver.clone();
            tokio::spawn(connection_loop(
                target.clone(),
                u64::from(worker),
                progress.clone(),
                move || {
                    let receiver = receiver.clone();
                    async move { receiver.lock().await.recv().await }
                },
            ))
        })
        .collect();
    let interval = 1.0 / f64::from(rate);
    let mut issued: u64 = 0;
    'schedule: while issued < total_requests {
        let due = ((started.elapsed().as_secs_f64() / interval) as u64 + 1).min(total_requests);
        while issued < due {
            let scheduled = started + Duration::from_secs_f64(issued as f64 * interval);
            if tickets.send(scheduled).await.is_err() {
                // Every connection task has ended (they only end early by
                // panicking): nothing would send the rest.
                break 'schedule;
            }
            issued += 1;
            progress.scheduled.store(issued, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    drop(tickets);
    let mut total = LoadRun::default();
    let drain_deadline = started + Duration::from_secs(seconds) + DRAIN_TIMEOUT;
    for task in tasks {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(drain_deadline.into(), task).await {
            Ok(Ok(run)) => total.absorb(run),
            Ok(Err(error)) => total.record(Err(format!("load task: {error}")), 0),
            Err(_) => abort.abort(),
        }
    }
    let unanswered = total_requests.saturating_sub(total.ok + total.errors);
    if unanswered > 0 {
        total.errors += unanswered;
        total
            .first_error
            .get_or_insert(format!("{unanswered} requests unanswered at the end"));
    }
    total.elapsed = started.elapsed();
    total
}
