//! The two HTTP servers: per-monitor metrics with `/healthz` and `/readyz`, and the operator's
//! own metrics on the telemetry port. A scrape's body streams the store's chunks ([`body`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::rt::TokioTimer;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tapmon_exposition::negotiate;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::monitor::MonitorKey;
use crate::state::State;

pub mod auth;
mod body;
mod stall;
pub mod tls;
mod turns;

use auth::{Authorizer, Decision};
use body::ScrapeBody;
use stall::StallGuard;
use turns::Turns;

type Body = BoxBody<Bytes, Infallible>;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What bounds a server, so that slow or many clients cannot exhaust memory or descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most; more are closed as they are accepted.
    pub max_connections: usize,
    /// Scrapes being sent at most; more wait [`Limits::scrape_queue`] for a turn (the newest
    /// first), then get 503.
    pub max_concurrent_scrapes: usize,
    /// How long a scrape waits for a turn.
    pub scrape_queue: Duration,
    /// How long a client has to send a request's headers (and how long an idle keep-alive
    /// connection stays open).
    pub header_read_timeout: Duration,
    /// How long a response may make no progress before its client is dropped.
    pub write_stall: Duration,
    /// How long the port keeps accepting after shutdown begins, `/readyz` saying 503 meanwhile,
    /// so that clients routed by readiness move away before connections are refused.
    pub stop_delay: Duration,
    /// How long in-flight requests may run on once the port is closed.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_concurrent_scrapes: 16,
            // Longer than a stalled client holds a turn: a scrape asking now gets the next turn.
            scrape_queue: Duration::from_secs(8),
            header_read_timeout: Duration::from_secs(10),
            write_stall: Duration::from_secs(5),
            stop_delay: Duration::from_secs(3),
            drain: Duration::from_secs(10),
        }
    }
}

/// Which server a listener is.
#[derive(Debug, Clone, Copy)]
pub enum Server {
    /// Per-monitor metrics, health and readiness.
    Metrics,
    /// Self-metrics.
    Telemetry,
}

/// How a server is reached: TLS or not, and whether scrapes need an authorised token.
#[derive(Clone, Default)]
pub struct Access {
    /// Serve HTTPS with this acceptor.
    pub tls: Option<TlsAcceptor>,
    /// Check each scrape's bearer token; `/healthz` and `/readyz` stay open.
    pub auth: Option<Arc<Authorizer>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("tls", &self.tls.is_some())
            .field("auth", &self.auth.is_some())
            .finish()
    }
}

/// What every request of one server shares.
struct Shared {
    server: Server,
    state: Arc<State>,
    auth: Option<Arc<Authorizer>>,
    scrapes: Arc<Turns>,
    limits: Limits,
    /// True once shutdown began: not ready any more, so traffic goes elsewhere.
    stopping: watch::Receiver<bool>,
}

/// Serves `server` on `listener` until `stop` turns true; then stops accepting and lets
/// in-flight requests finish for up to [`Limits::drain`].
pub async fn serve(
    listener: TcpListener,
    server: Server,
    state: Arc<State>,
    access: Access,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    info!(%addr, ?server, tls = access.tls.is_some(), auth = access.auth.is_some(), "listening");
    let shared = Arc::new(Shared {
        server,
        auth: access.auth.clone(),
        scrapes: Turns::new(limits.max_concurrent_scrapes),
        state,
        limits,
        stopping: stop.clone(),
    });
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut close_at: Option<tokio::time::Instant> = None;
    loop {
        let accepted = match close_at {
            // Closing: connections already queued were made before the close; serve them
            // rather than reset them.
            Some(at) if tokio::time::Instant::now() >= at => {
                match listener.accept().now_or_never() {
                    Some(accepted) => accepted,
                    None => break,
                }
            }
            // Stopping: not ready, still accepting until the delay is over.
            Some(at) => tokio::select! {
                accepted = listener.accept() => accepted,
                _ = tokio::time::sleep_until(at) => continue,
            },
            None => tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.wait_for(|s| *s) => {
                    close_at = Some(tokio::time::Instant::now() + limits.stop_delay);
                    continue;
                }
            },
        };
        let (stream, peer) = match accepted {
            Ok(conn) => {
                backoff = ACCEPT_BACKOFF_MIN;
                conn
            }
            Err(e) => {
                // Out of descriptors, say: retrying at once would spin a core; wait, longer
                // each time, for connections to close.
                shared.state.telemetry.accept_errors.inc();
                debug!(error = %e, retry_in = ?backoff, "accept failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            shared.state.telemetry.rejected_connections.inc();
            drop(stream);
            continue;
        };
        let shared = Arc::clone(&shared);
        let tls = access.tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => connection(stream, &shared, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => connection(tls, &shared, watcher).await,
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            ?server,
            "requests still running after the drain time; closing them"
        );
    }
}

/// The first wait after a failed accept, and the longest.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Serves one connection's requests, bounded in header time and write stalls.
async fn connection<I>(io: I, shared: &Arc<Shared>, graceful: Watcher)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let for_requests = Arc::clone(shared);
    let service = service_fn(move |req| {
        let shared = Arc::clone(&for_requests);
        async move { Ok::<_, Infallible>(route(&shared, &req).await) }
    });
    // A scrape is mostly compacted blocks (~64 kB each) and small chunks the body gathers into
    // frames of a quarter megabyte: vectored writes send 16 of them per syscall without the
    // copy into hyper's buffer that flattening makes (measured: `make bench`,
    // docs/benchmarks.md).
    let conn = http1::Builder::new()
        .writev(true)
        // One request per connection: hyper keeps a connection's write buffer (up to 400 kB
        // after a scrape) while it idles, and a scraper's next request comes after its whole
        // interval, longer than any idle timeout worth having.
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.header_read_timeout)
        .serve_connection(
            TokioIo::new(StallGuard::new(io, shared.limits.write_stall)),
            service,
        );
    if let Err(e) = graceful.watch(conn).await {
        debug!(error = %e, "connection ended with an error");
    }
}

/// Binds a listener, naming the address on failure.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, std::io::Error> {
    TcpListener::bind(addr).await
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn route(shared: &Shared, req: &Request<Incoming>) -> Response<Body> {
    let (server, state) = (shared.server, &*shared.state);
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    let path = req.uri().path();
    match (server, path) {
        (Server::Metrics, "/healthz") => text(StatusCode::OK, "ok\n"),
        (Server::Metrics, "/readyz") => {
            if *shared.stopping.borrow() {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
            } else if state.ready() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "initial lists not done\n")
            }
        }
        (Server::Metrics, _) => match monitor_path(path) {
            Some(key) => {
                let decision = match shared.auth.as_deref() {
                    None => Decision::Allowed,
                    Some(auth) => {
                        let header = req
                            .headers()
                            .get(header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok());
                        let decision = auth.decide(header, &key).await;
                        state
                            .telemetry
                            .scrape_auth
                            .with_label_values(&[decision.metric_label()])
                            .inc();
                        decision
                    }
                };
                match decision {
                    Decision::Allowed => scrape(shared, &key, req).await,
                    Decision::Unauthenticated => {
                        let mut r =
                            text(StatusCode::UNAUTHORIZED, "a valid bearer token is needed\n");
                        r.headers_mut().insert(
                            header::WWW_AUTHENTICATE,
                            header::HeaderValue::from_static("Bearer"),
                        );
                        r
                    }
                    Decision::Forbidden => text(
                        StatusCode::FORBIDDEN,
                        "forbidden: reading a monitor's series needs get on its metrics subresource\n",
                    ),
                    Decision::Unavailable => text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "cannot check credentials with the API server now\n",
                    ),
                }
            }
            None => text(
                StatusCode::NOT_FOUND,
                "not found: metrics are at /monitors/{namespace}/{name}/metrics and /clustermonitors/{name}/metrics\n",
            ),
        },
        (Server::Telemetry, "/metrics") => {
            state.refresh_counts();
            let mut r = Response::new(Full::new(Bytes::from(state.telemetry.encode())).boxed());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        (Server::Telemetry, _) => text(
            StatusCode::NOT_FOUND,
            "not found: self-metrics are at /metrics\n",
        ),
    }
}

/// `/monitors/{namespace}/{name}/metrics` → a TapMonitor's key,
/// `/clustermonitors/{name}/metrics` → a ClusterTapMonitor's.
fn monitor_path(path: &str) -> Option<MonitorKey> {
    let nonempty = |s: &str| !s.is_empty();
    if let Some(rest) = path.strip_prefix("/clustermonitors/") {
        let name = rest.strip_suffix("/metrics")?;
        return (nonempty(name) && !name.contains('/')).then(|| MonitorKey::cluster(name));
    }
    let mut parts = path.strip_prefix("/monitors/")?.split('/');
    let (namespace, name, leaf) = (parts.next()?, parts.next()?, parts.next()?);
    (leaf == "metrics" && parts.next().is_none() && nonempty(namespace) && nonempty(name))
        .then(|| MonitorKey::namespaced(namespace, name))
}

async fn scrape(shared: &Shared, key: &MonitorKey, req: &Request<Incoming>) -> Response<Body> {
    let Some(monitor) = shared.state.monitor(key) else {
        return text(StatusCode::NOT_FOUND, "no such monitor\n");
    };
    // A turn to send: the body holds its share of the store until it is sent.
    let permit = match shared.scrapes.take(shared.limits.scrape_queue).await {
        Some(turn) => turn,
        None => {
            shared.state.telemetry.scrapes_refused.inc();
            let mut r = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many scrapes in progress; retry shortly\n",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return r;
        }
    };
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = negotiate(accept);
    let gzip = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip);
    // The chunks and members are shared with the store: taking them is a short lock and no
    // copy.
    let mut r = if gzip {
        let parts = monitor.scrape_gzip(format);
        let keep = Box::new(move |id: &_, member| monitor.keep_gzip(id, member));
        let mut r = Response::new(ScrapeBody::gzip(parts, keep).holding(permit).boxed());
        r.headers_mut().insert(
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static("gzip"),
        );
        r
    } else {
        Response::new(
            ScrapeBody::plain(monitor.scrape(format))
                .holding(permit)
                .boxed(),
        )
    };
    if let Ok(v) = header::HeaderValue::from_str(format.content_type()) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// True when an `Accept-Encoding` header allows gzip (and does not give it `q=0`).
fn accepts_gzip(header: &str) -> bool {
    header.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let refused = parts
            .filter_map(|p| p.strip_prefix("q="))
            .any(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0));
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, gzip;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("gzip; q=0.0"));
    }

    #[test]
    fn monitor_paths() {
        let key = monitor_path("/monitors/tapmon-system/tap/metrics").unwrap();
        assert_eq!(key.to_string(), "tapmon-system/tap");
        assert_eq!(
            monitor_path("/clustermonitors/all/metrics"),
            Some(MonitorKey::cluster("all"))
        );
        for bad in [
            "/clustermonitors//metrics",
            "/clustermonitors/a/b/metrics",
            "/monitors/a/metrics",
            "/monitors//b/metrics",
            "/monitors/a/b/metrics/x",
            "/metrics",
            "/monitors/a/b/other",
        ] {
            assert!(monitor_path(bad).is_none(), "{bad}");
        }
    }
}
