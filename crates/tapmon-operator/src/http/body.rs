//! The body of a scrape: the store's shared chunks sent as they are, or its gzip members (see
//! [`tapmon_exposition::gzip`]) with the blocks changed since the last compressed scrape
//! compressed on the way, giving the worker thread back to the runtime every [`YIELD_BYTES`].
//!
//! A scrape of 50k objects is ~65 MB, written in ~50 ms; compressing all of it takes several
//! times that, which only the first compressed scrape (or one after everything changed) pays:
//! later ones compress the changed blocks and copy the rest. Written in one go, a scrape keeps
//! its worker from looking for I/O: with one worker (a pod with one CPU) nothing else happens
//! meanwhile, neither the watch events that bring updates nor other scrapes, which were measured
//! waiting a whole scrape (`make bench`, docs/benchmarks.md). Yielding with
//! [`tokio::task::yield_now`] every megabyte lets the worker poll for I/O and run what is ready
//! before the scrape goes on: about a millisecond of wait instead of a scrape, for about a
//! hundred extra polls per scrape. (Waking the task directly would not do: tokio polls for I/O
//! only every 61 tasks while there is work.)

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use super::turns::Turn;
use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tapmon_exposition::{BlockId, GzipPart};

/// Input bytes sent (or compressed) between two yields to the runtime.
pub const YIELD_BYTES: usize = 1 << 20;

/// Parts smaller than this are gathered into frames; larger ones (compacted blocks) go as they
/// are, so that vectored writes send many bytes per syscall without copying them.
const SMALL: usize = 16 << 10;

/// Bytes gathered into one frame at most (plus the last part that reached it).
const FRAME: usize = 256 << 10;

/// Where the members made on the way go: back to the store, to be sent as they are next time.
pub type Keep = Box<dyn FnMut(&BlockId, Bytes) + Send + Sync>;

/// What a body sends.
enum Parts {
    Plain(std::vec::IntoIter<Bytes>),
    Gzip(std::vec::IntoIter<GzipPart>, Keep),
}

/// A scrape's body. See the module documentation.
pub struct ScrapeBody {
    parts: Parts,
    /// Plain bytes not yet sent, for the exact `Content-Length` of a plain body.
    remaining: u64,
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
            parts: Parts::Plain(chunks.into_iter()),
            since_yield: 0,
            yielding: None,
            _slot: None,
        }
    }

    /// Gzip members in order, compressing stale blocks on the way and handing each member made
    /// to `keep`.
    pub fn gzip(parts: Vec<GzipPart>, keep: Keep) -> ScrapeBody {
        ScrapeBody {
            remaining: 0,
            parts: Parts::Gzip(parts.into_iter(), keep),
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

    fn next(&mut self) -> Option<Bytes> {
        match &mut self.parts {
            Parts::Plain(chunks) => {
                let chunk = chunks.next()?;
                self.since_yield += chunk.len();
                self.remaining -= chunk.len() as u64;
                Some(chunk)
            }
            Parts::Gzip(parts, keep) => match parts.next()? {
                GzipPart::Member(member) => {
                    self.since_yield += member.len();
                    Some(member)
                }
                GzipPart::Stale(stale) => {
                    // Compressing costs about what sending ten times the bytes does.
                    self.since_yield += stale.chunks.iter().map(Bytes::len).sum::<usize>();
                    let member = stale.compress();
                    keep(&stale.id, member.clone());
                    Some(member)
                }
            },
        }
    }

    /// The next part if it is a chunk or member smaller than [`SMALL`], ready to send.
    fn next_small(&mut self) -> Option<Bytes> {
        let small = match &self.parts {
            Parts::Plain(chunks) => chunks.as_slice().first().is_some_and(|c| c.len() < SMALL),
            Parts::Gzip(parts, _) => matches!(
                parts.as_slice().first(),
                Some(GzipPart::Member(m)) if m.len() < SMALL
            ),
        };
        if small { self.next() } else { None }
    }

    /// The next frame: a large part as it is, or small ones gathered into up to [`FRAME`].
    fn next_frame(&mut self) -> Option<Bytes> {
        let first = self.next()?;
        if first.len() >= SMALL {
            return Some(first);
        }
        let Some(second) = self.next_small() else {
            return Some(first);
        };
        let mut frame = BytesMut::with_capacity(FRAME);
        frame.extend_from_slice(&first);
        frame.extend_from_slice(&second);
        while frame.len() < FRAME {
            match self.next_small() {
                Some(part) => frame.extend_from_slice(&part),
                None => break,
            }
        }
        Some(frame.freeze())
    }

    fn is_done(&self) -> bool {
        match &self.parts {
            Parts::Plain(chunks) => chunks.len() == 0,
            Parts::Gzip(parts, _) => parts.len() == 0,
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
        Poll::Ready(this.next_frame().map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.parts {
            Parts::Gzip(..) => SizeHint::default(),
            Parts::Plain(_) => SizeHint::with_exact(self.remaining),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use tapmon_exposition::{
        FamilyDesc, FamilySet, Format, MetricType, ObjectKey, ObjectRenderer, Store,
    };

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

    /// A store of 40 000 objects' series, about four megabytes.
    fn store() -> Store {
        let (set, ids) = FamilySet::new(&[FamilyDesc {
            name: "tap_workload_ready".into(),
            help: "h".into(),
            kind: MetricType::Gauge,
            state_label: None,
        }])
        .unwrap();
        let set = Arc::new(set);
        let mut store = Store::new(Arc::clone(&set));
        let mut r = ObjectRenderer::new(&set);
        for i in 0..40_000 {
            let name = format!("w{i:05}");
            r.series(ids[0])
                .label("name", &name)
                .label("namespace", "dev")
                .label("note", &"x".repeat(i % 50))
                .finish((i % 2) as f64);
            store.upsert(ObjectKey::new(0, "dev", &name), r.finish());
        }
        store
    }

    #[test]
    fn gzip_decompresses_to_the_chunks_and_keeps_what_it_made() {
        let store = Arc::new(parking_lot::Mutex::new(store()));
        let whole = store.lock().chunks(Format::Text).concat();
        let keep = |store: &Arc<parking_lot::Mutex<Store>>| -> Keep {
            let store = Arc::clone(store);
            Box::new(move |id: &BlockId, member: Bytes| store.lock().keep_gzip(id, member))
        };
        let stale = |parts: &[GzipPart]| {
            parts
                .iter()
                .filter(|p| matches!(p, GzipPart::Stale(_)))
                .count()
        };

        let parts = store.lock().gzip_parts(Format::Text);
        assert!(stale(&parts) > 10, "{} stale", stale(&parts));
        let body = ScrapeBody::gzip(parts, keep(&store));
        assert_eq!(body.size_hint().exact(), None);
        let (first, pending) = drain(body);
        assert!(pending >= 3, "{pending}");
        assert!(
            first.len() < whole.len() / 4,
            "{} of {}",
            first.len(),
            whole.len()
        );
        assert_eq!(tapmon_exposition::gzip::decode(&first).unwrap(), whole);

        // Everything was kept: the next scrape compresses nothing and sends the same bytes.
        let parts = store.lock().gzip_parts(Format::Text);
        assert_eq!(stale(&parts), 0);
        let (second, _) = drain(ScrapeBody::gzip(parts, keep(&store)));
        assert_eq!(second, first);
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
    fn small_chunks_are_gathered_into_frames_and_large_ones_go_as_they_are() {
        let (mut chunks, whole) = chunks();
        let large = Bytes::from(vec![b'#'; 64 << 10]);
        chunks.insert(100, large.clone());
        let mut body = ScrapeBody::plain(chunks);
        let waker = Waker::from(Arc::new(CountingWaker(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        let mut frames = Vec::new();
        loop {
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => frames.push(frame.into_data().unwrap()),
                Poll::Ready(None) => break,
                Poll::Pending => {}
            }
        }
        // The 100 chunks before the large one, the large one, then frames of FRAME or more.
        assert_eq!(frames[1], large);
        assert!(
            frames.len() <= 2 + whole.len() / FRAME + 1,
            "{} frames",
            frames.len()
        );
        assert!(frames[2..frames.len() - 1].iter().all(|f| f.len() >= FRAME));
        assert_eq!(frames.concat().len(), whole.len() + large.len());
    }

    #[test]
    fn empty_bodies_end_at_once() {
        let (out, pending) = drain(ScrapeBody::plain(Vec::new()));
        assert!(out.is_empty() && pending == 0);
        let empty = Store::new(Arc::new(FamilySet::new(&[]).unwrap().0));
        let (out, _) = drain(ScrapeBody::gzip(
            empty.gzip_parts(Format::Text),
            Box::new(|_: &BlockId, _| {}),
        ));
        let mut plain = Vec::new();
        // One valid (empty) gzip stream, not zero bytes.
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert!(plain.is_empty());
    }
}
