//! The two HTTP servers: per-monitor metrics with `/healthz` and `/readyz`, and the operator's
//! own metrics on the telemetry port. A scrape's body streams the store's chunks ([`body`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tapmon_exposition::negotiate;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

use crate::monitor::MonitorKey;
use crate::state::State;

pub mod auth;
mod body;
pub mod tls;

use auth::{Authorizer, Decision};
use body::ScrapeBody;

type Body = BoxBody<Bytes, Infallible>;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Serves `server` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, server: Server, state: Arc<State>, access: Access) {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    info!(%addr, ?server, tls = access.tls.is_some(), auth = access.auth.is_some(), "listening");
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                debug!(error = %e, "accept failed");
                continue;
            }
        };
        let state = Arc::clone(&state);
        let access = access.clone();
        tokio::spawn(async move {
            match &access.tls {
                None => connection(stream, server, state, access.auth).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => connection(tls, server, state, access.auth).await,
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Serves one connection's requests.
async fn connection<I>(io: I, server: Server, state: Arc<State>, auth: Option<Arc<Authorizer>>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        let auth = auth.clone();
        async move { Ok::<_, Infallible>(route(server, &state, auth.as_deref(), &req).await) }
    });
    // A scrape is ~10^5 small shared chunks; with vectored writes hyper sends at most 16 of
    // them per syscall, while flattening copies them into its buffer and writes 400 kB at a
    // time (measured: `make bench`, docs/benchmarks.md).
    if let Err(e) = http1::Builder::new()
        .writev(false)
        .serve_connection(TokioIo::new(io), service)
        .await
    {
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

async fn route(
    server: Server,
    state: &State,
    auth: Option<&Authorizer>,
    req: &Request<Incoming>,
) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    let path = req.uri().path();
    match (server, path) {
        (Server::Metrics, "/healthz") => text(StatusCode::OK, "ok\n"),
        (Server::Metrics, "/readyz") => {
            if state.ready() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "initial lists not done\n")
            }
        }
        (Server::Metrics, _) => match monitor_path(path) {
            Some(key) => {
                let decision = match auth {
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
                    Decision::Allowed => scrape(state, &key, req),
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

fn scrape(state: &State, key: &MonitorKey, req: &Request<Incoming>) -> Response<Body> {
    let Some(monitor) = state.monitor(key) else {
        return text(StatusCode::NOT_FOUND, "no such TapMonitor\n");
    };
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = negotiate(accept);
    // The chunks are shared with the store: taking them is a short lock and no copy.
    let chunks = monitor.scrape(format);
    let gzip = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip);
    let mut r = if gzip {
        let mut r = Response::new(ScrapeBody::gzip(chunks).boxed());
        r.headers_mut().insert(
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static("gzip"),
        );
        r
    } else {
        Response::new(ScrapeBody::plain(chunks).boxed())
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
