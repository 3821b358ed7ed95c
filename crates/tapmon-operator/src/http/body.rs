//! The body of a scrape: the store's shared chunks, sent as they are or gzip-compressed as
//! they go, giving the worker thread back to the runtime every [`YIELD_BYTES`].
//!
//! A scrape of 50k objects is ~65 MB, written in ~50 ms (compressed, in about twice that).
//! Written in one go, it keeps its worker from looking for I/O: with one worker (a pod with one
//! CPU) nothing else happens meanwhile, neither the watch events that bring updates nor other
//! scrapes, which were measured waiting a whole scrape (`make bench`, docs/benchmarks.md).
//! Yielding with [`tokio::task::yield_now`] every megabyte lets the worker poll for I/O and run
//! what is ready before the scrape goes on: about a millisecond of wait instead of a scrape, for
//! about a hundred extra polls per scrape. (Waking the task directly would not do: tokio polls
//! for I/O only every 61 tasks while there is work.)

use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use super::turns::Turn;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use hyper::body::{Body, Frame, SizeHint};

/// Input bytes sent (or compressed) between two yields to the runtime.
pub const YIELD_BYTES: usize = 1 << 20;

/// Input bytes compressed into one frame: large enough for few frames, small enough that
/// compressing one is far below a millisecond.
const GZIP_BATCH: usize = 256 << 10;

/// A scrape's body. See the module documentation.
pub struct ScrapeBody {
    chunks: std::vec::IntoIter<Bytes>,
    /// Plain bytes not yet sent, for the exact `Content-Length` of a plain body.
    remaining: u64,
    gzip: Option<GzEncoder<Vec<u8>>>,
    since_yield: usize,
    /// The yield in progress.
    yielding: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
    /// Its slot among the scrapes in progress, given back when the body is sent or dropped.
    _slot: Option<Turn>,
}

impl ScrapeBody {
    /// The chunks as they are.
    pub fn plain(chunks: Vec<Bytes>) -> ScrapeBody {
        ScrapeBody {
            remaining: chunks.iter().map(|c| c.len() as u64).sum(),
            chunks: chunks.into_iter(),
            gzip: None,
            since_yield: 0,
            yielding: None,
            _slot: None,
        }
    }

    /// The chunks gzip-compressed, at the fast level: a scrape is compressed afresh each time,
    /// so speed matters more than the last percent of size.
    pub fn gzip(chunks: Vec<Bytes>) -> ScrapeBody {
        ScrapeBody {
            remaining: 0,
            chunks: chunks.into_iter(),
            gzip: Some(GzEncoder::new(Vec::new(), Compression::fast())),
            since_yield: 0,
            yielding: None,
            _slot: None,
        }
    }

    /// The body holding `slot` (its place among the scrapes in progress) until it is sent or
    /// dropped.
    pub fn holding(mut self, slot: Turn) -> ScrapeBody {
        self._slot = Some(slot);
        self
    }

    /// Ready when the body may go on; pending while it gives its worker back, every
    /// [`YIELD_BYTES`].
    fn poll_slot(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielding.is_none() && self.since_yield >= YIELD_BYTES {
            self.since_yield = 0;
            self.yielding = Some(Box::pin(tokio::task::yield_now()));
        }
        if let Some(yielding) = self.yielding.as_mut() {
            ready!(yielding.as_mut().poll(cx));
            self.yielding = None;
        }
        Poll::Ready(())
    }

    fn next_plain(&mut self) -> Option<Bytes> {
        let chunk = self.chunks.next()?;
        self.since_yield += chunk.len();
        self.remaining -= chunk.len() as u64;
        Some(chunk)
    }

    /// Compresses up to [`GZIP_BATCH`] of input and returns what the encoder wrote, until the
    /// input and then the encoder are done.
    fn next_gzip(&mut self) -> Option<Bytes> {
        loop {
            let encoder = self.gzip.as_mut()?;
            let mut batch = 0;
            while batch < GZIP_BATCH {
                let Some(chunk) = self.chunks.next() else {
                    break;
                };
                batch += chunk.len();
                if let Err(e) = encoder.write_all(&chunk) {
                    // Writing into a Vec does not fail; see the trailer below.
                    tracing::error!(error = %e, "gzip compression failed; the scrape is truncated");
                    self.gzip = None;
                    return None;
                }
            }
            self.since_yield += batch;
            if batch == 0 {
                // Input done: the trailer, and the body ends with the next poll.
                let encoder = self.gzip.take()?;
                return match encoder.finish() {
                    Ok(rest) => (!rest.is_empty()).then(|| Bytes::from(rest)),
                    Err(e) => {
                        // Writing into a Vec does not fail; if it ever did, the client gets a
                        // body without its gzip trailer, which it reports as truncated.
                        tracing::error!(error = %e, "gzip trailer not written; the scrape is truncated");
                        None
                    }
                };
            }
            let out = std::mem::take(encoder.get_mut());
            if !out.is_empty() {
                return Some(Bytes::from(out));
            }
        }
    }
}

impl Body for ScrapeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        ready!(this.poll_slot(cx));
        let next = if this.gzip.is_some() {
            this.next_gzip()
        } else {
            this.next_plain()
        };
        Poll::Ready(next.map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.gzip.is_none() && self.chunks.len() == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.gzip.is_some() {
            SizeHint::default()
        } else {
            SizeHint::with_exact(self.remaining)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use super::*;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Polls `body` to its end; returns the bytes and how many polls returned `Pending`
    /// (each of which must have woken the task).
    fn drain(mut body: ScrapeBody) -> (Vec<u8>, usize) {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let (mut out, mut pending) = (Vec::new(), 0);
        loop {
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    out.extend_from_slice(&frame.into_data().unwrap());
                }
                Poll::Ready(None) => break,
                Poll::Pending => pending += 1,
            }
        }
        assert!(body.is_end_stream());
        assert_eq!(counter.0.load(Ordering::Relaxed), pending);
        (out, pending)
    }

    /// Four megabytes of exposition-like lines in small chunks, as a store hands them out.
    fn chunks() -> (Vec<Bytes>, Vec<u8>) {
        let chunks: Vec<Bytes> = (0..40_000)
            .map(|i| {
                Bytes::from(format!(
                    "tap_workload_ready{{name=\"w{i}\",namespace=\"dev\"}} {} 1700000000000 # {}\n",
                    i % 2,
                    "x".repeat(i % 50)
                ))
            })
            .collect();
        let whole = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        (chunks, whole)
    }

    #[test]
    fn plain_is_the_chunks_with_its_exact_length() {
        let (chunks, whole) = chunks();
        let body = ScrapeBody::plain(chunks);
        assert_eq!(body.size_hint().exact(), Some(whole.len() as u64));
        let (out, pending) = drain(body);
        assert_eq!(out, whole);
        // One yield per megabyte sent (each counted from the end of the chunk that reached it).
        let megabytes = whole.len() / YIELD_BYTES;
        assert!(megabytes >= 3, "{}", whole.len());
        assert!((megabytes - 1..=megabytes).contains(&pending), "{pending}");
    }

    #[test]
    fn gzip_decompresses_to_the_chunks() {
        let (chunks, whole) = chunks();
        let body = ScrapeBody::gzip(chunks);
        assert_eq!(body.size_hint().exact(), None);
        let (out, pending) = drain(body);
        assert!(pending >= 3, "{pending}");
        assert!(
            out.len() < whole.len() / 4,
            "{} of {}",
            out.len(),
            whole.len()
        );
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, whole);
    }

    #[test]
    fn a_large_body_lets_the_runtime_poll_for_events() {
        // One worker, as in a pod with one CPU. A timer can only fire when the worker polls
        // its drivers, which it does at once after `yield_now` but, with a direct wake, only
        // every 61 tasks: by then 61 yields (976 frames) would have passed.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let chunk = Bytes::from(vec![b'x'; 64 << 10]);
        let frames = 2000;
        let drained = Arc::new(AtomicUsize::new(0));
        let fired_at = runtime.block_on(async {
            let timer = tokio::spawn({
                let drained = Arc::clone(&drained);
                async move {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    drained.load(Ordering::Relaxed)
                }
            });
            let drain = tokio::spawn({
                let drained = Arc::clone(&drained);
                async move {
                    let mut body = ScrapeBody::plain(vec![chunk; frames]);
                    while let Some(frame) =
                        std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                    {
                        assert_eq!(frame.unwrap().into_data().unwrap().len(), 64 << 10);
                        // Stands for the write to the socket.
                        std::thread::sleep(std::time::Duration::from_micros(20));
                        drained.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            drain.await.unwrap();
            timer.await.unwrap()
        });
        // At 20 µs or more a frame, 1 ms is at most 50 frames, and the next yield at most 16
        // frames later.
        assert!(
            fired_at < 16 * 16,
            "timer fired after {fired_at} of {frames} frames"
        );
    }

    #[test]
    fn empty_bodies_end_at_once() {
        let (out, pending) = drain(ScrapeBody::plain(Vec::new()));
        assert!(out.is_empty() && pending == 0);
        let (out, _) = drain(ScrapeBody::gzip(Vec::new()));
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert!(plain.is_empty());
    }
}
