//! The one HTTP client of the suite and the benchmark: plain HTTP/1.0 on loopback, as
//! Prometheus and the kubelet make their requests, with one receive buffer kept across requests.

use std::borrow::Cow;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A free port on loopback (bound and released, so taken by whoever binds next).
pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    l.local_addr().expect("local address")
}

/// Percent-encodes a query-string value.
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A connection, plain or TLS.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// One response.
pub struct Response<'a> {
    /// The status code.
    pub status: u16,
    /// The response head (status line and headers).
    pub head: String,
    /// Connect to last byte.
    pub took: Duration,
    /// Body bytes as sent (compressed when gzip was asked for and given).
    pub wire_bytes: usize,
    /// The body, decompressed; a plain body is not copied out of the client's buffer.
    pub body: Cow<'a, [u8]>,
    /// Gzip members the compressed body was made of; 0 for a plain body.
    pub gzip_members: usize,
}

impl Response<'_> {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An HTTP client that keeps one receive buffer for all its requests: a fresh 65 MB buffer
/// costs ~16k page faults, which a benchmark would time as the server's. Each concurrent
/// poller has its own.
#[derive(Default)]
pub struct Client {
    raw: Vec<u8>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    /// A client speaking HTTPS with `config`.
    pub fn tls(config: Arc<rustls::ClientConfig>) -> Self {
        Self {
            raw: Vec::new(),
            tls: Some(config),
        }
    }

    /// GETs `path` with extra `headers`; with `gzip`, asks for a compressed body and
    /// decompresses it (after the clock stops).
    pub async fn request(
        &mut self,
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
        gzip: bool,
    ) -> anyhow::Result<Response<'_>> {
        let start = Instant::now();
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let mut stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(tcp),
            Some(config) => Box::new(
                tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(ServerName::IpAddress(addr.ip().into()), tcp)
                    .await?,
            ),
        };
        let mut request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
        if gzip {
            request.push_str("Accept-Encoding: gzip\r\n");
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        self.raw.clear();
        match stream.read_to_end(&mut self.raw).await {
            Ok(_) => {}
            // A TLS peer that closes without close_notify after a whole HTTP/1.0 response.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !self.raw.is_empty() => {}
            Err(e) => return Err(e.into()),
        }
        let took = start.elapsed();
        let raw = &self.raw;
        let end = memchr::memmem::find(raw, b"\r\n\r\n").context("no end of headers")?;
        let head = std::str::from_utf8(&raw[..end])?.to_owned();
        if !head.starts_with("HTTP/1.") {
            bail!("GET {path}: not an HTTP response");
        }
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no status")?;
        let compressed = head
            .lines()
            .any(|l| l.to_ascii_lowercase().replace(' ', "") == "content-encoding:gzip");
        let wire = &raw[end + 4..];
        let wire_bytes = wire.len();
        let (body, gzip_members) = if compressed {
            let mut out = Vec::with_capacity(wire_bytes * 8);
            // Member by member, as Prometheus' reader (Go's `compress/gzip`) reads them.
            let (mut rest, mut members) = (wire, 0);
            while !rest.is_empty() {
                let mut member = flate2::bufread::GzDecoder::new(rest);
                member.read_to_end(&mut out)?;
                rest = member.into_inner();
                members += 1;
            }
            (Cow::Owned(out), members)
        } else {
            (Cow::Borrowed(wire), 0)
        };
        Ok(Response {
            status,
            head,
            took,
            wire_bytes,
            body,
            gzip_members,
        })
    }

    /// A scrape as Prometheus makes it: `200` or an error; with `gzip`, the body must come
    /// compressed.
    pub async fn scrape(
        &mut self,
        addr: SocketAddr,
        path: &str,
        gzip: bool,
    ) -> anyhow::Result<Response<'_>> {
        let response = self.request(addr, path, &[], gzip).await?;
        if response.status != 200 {
            bail!("GET {path}: {}", response.head.lines().next().unwrap_or(""));
        }
        if gzip && matches!(response.body, Cow::Borrowed(_)) {
            bail!("asked for gzip, got a plain body");
        }
        Ok(response)
    }
}

/// A plain GET on loopback: status and body.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut client = Client::default();
    let response = client.request(addr, path, &[], false).await?;
    Ok((response.status, response.text()))
}
