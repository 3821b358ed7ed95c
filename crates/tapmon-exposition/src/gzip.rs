//! Gzip members: a scrape's compressed body is the concatenation of members made once per block
//! of stored series and kept until one of the block's objects changes.
//!
//! RFC 1952 lets a gzip stream hold several members, and a reader yields their concatenated
//! contents; Go's `compress/gzip` (Prometheus' scrape reader) reads every member by default
//! (`Reader.Multistream`). A member restarts the compressor's window, which costs a little size
//! next to one stream; blocks much larger than the 32 KiB window keep that small.

use std::io::{Read as _, Write as _};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

/// Compression level of the kept members. A member is compressed once and sent many times, so
/// size matters more than speed (level and block size by measurement: `cargo bench -p
/// tapmon-exposition --bench scrape -- gzip`, docs/benchmarks.md).
pub const LEVEL: u32 = 6;

/// Bytes of series a block aims at. Twice this splits a block; a quarter merges it into its
/// predecessor.
pub const BLOCK_BYTES: usize = 64 << 10;

/// One gzip member holding `chunks` in order.
pub fn member(chunks: &[Bytes], level: u32) -> Bytes {
    let len: usize = chunks.iter().map(Bytes::len).sum();
    // Exposition text compresses about tenfold; the header and trailer are 18 bytes.
    let mut encoder = GzEncoder::new(Vec::with_capacity(len / 8 + 64), Compression::new(level));
    for chunk in chunks {
        // Writing into a Vec cannot fail.
        if encoder.write_all(chunk).is_err() {
            break;
        }
    }
    match encoder.finish() {
        Ok(out) => Bytes::from(out),
        // Unreachable for a Vec; an empty member keeps the stream valid if it ever were not.
        Err(_) => empty(),
    }
}

/// A member without content: the body of an empty compressed scrape, which readers need to see
/// as a valid gzip stream.
pub fn empty() -> Bytes {
    // The fixed 10-byte header, an empty final stored block, CRC-32 and size of nothing.
    Bytes::from_static(&[
        0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ])
}

/// The contents of every member of `data`, as Prometheus' reader (Go's `compress/gzip`) reads
/// them: for checking a compressed scrape.
pub fn decode(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn members_concatenate_to_their_contents() {
        let a = member(&[Bytes::from("a 1\n"), Bytes::from("b 2\n")], LEVEL);
        let b = member(&[Bytes::from("c 3\n")], 1);
        let body = [&a[..], &empty()[..], &b[..]].concat();
        assert_eq!(decode(&body).unwrap(), b"a 1\nb 2\nc 3\n");
        assert!(decode(&empty()).unwrap().is_empty());
        // The lone empty member is itself what a single-stream reader accepts.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&empty()[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty());
    }
}
