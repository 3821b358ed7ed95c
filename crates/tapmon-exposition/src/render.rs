//! Writing one object's series into bytes.

use std::ops::Range;

use bytes::Bytes;

use crate::family::{FamilyId, FamilySet};
use crate::text::{write_escaped_label_value, write_sample_value};

/// One object's series, grouped by family, in one allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderedObject {
    bytes: Bytes,
    parts: Vec<(FamilyId, Range<usize>)>,
    series: usize,
    truncated: usize,
}

impl RenderedObject {
    /// Number of series.
    pub fn series(&self) -> usize {
        self.series
    }

    /// Label values cut to [`crate::MAX_LABEL_VALUE_BYTES`].
    pub fn truncated(&self) -> usize {
        self.truncated
    }

    /// Bytes of all series.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when the object yields no series.
    pub fn is_empty(&self) -> bool {
        self.series == 0
    }

    /// Each family the object has series in, with those series' lines.
    pub fn parts(&self) -> impl Iterator<Item = (FamilyId, Bytes)> + '_ {
        self.parts
            .iter()
            .map(|(id, range)| (*id, self.bytes.slice(range.clone())))
    }
}

/// Reusable buffers for rendering objects one after another.
#[derive(Debug)]
pub struct ObjectRenderer {
    names: Vec<Box<[u8]>>,
    scratch: Vec<Vec<u8>>,
    touched: Vec<FamilyId>,
    series: usize,
    truncated: usize,
}

impl ObjectRenderer {
    /// A renderer for the families of `set`.
    pub fn new(set: &FamilySet) -> Self {
        Self {
            names: set
                .families()
                .iter()
                .map(|f| f.desc.name.as_bytes().into())
                .collect(),
            scratch: vec![Vec::new(); set.len()],
            touched: Vec::new(),
            series: 0,
            truncated: 0,
        }
    }

    /// Starts a series of `family`; add labels, then [`SeriesWriter::finish`] with its value.
    /// An id from another set is ignored (writes go nowhere) rather than panicking.
    pub fn series(&mut self, family: FamilyId) -> SeriesWriter<'_> {
        let Some(buf) = self.scratch.get_mut(family.index()) else {
            return SeriesWriter {
                buf: None,
                first: true,
                series: &mut self.series,
                truncated: &mut self.truncated,
            };
        };
        if buf.is_empty() {
            self.touched.push(family);
        }
        buf.extend_from_slice(&self.names[family.index()]);
        SeriesWriter {
            buf: Some(buf),
            first: true,
            series: &mut self.series,
            truncated: &mut self.truncated,
        }
    }

    /// Collects what was written since the last call into one [`RenderedObject`] and resets.
    pub fn finish(&mut self) -> RenderedObject {
        self.touched.sort_unstable();
        let total = self
            .touched
            .iter()
            .map(|id| self.scratch[id.index()].len())
            .sum();
        let mut bytes = Vec::with_capacity(total);
        let mut parts = Vec::with_capacity(self.touched.len());
        for id in self.touched.drain(..) {
            let buf = &mut self.scratch[id.index()];
            let start = bytes.len();
            bytes.extend_from_slice(buf);
            parts.push((id, start..bytes.len()));
            buf.clear();
        }
        RenderedObject {
            bytes: Bytes::from(bytes),
            parts,
            series: std::mem::take(&mut self.series),
            truncated: std::mem::take(&mut self.truncated),
        }
    }
}

/// One series being written: the name is out, labels follow, the value ends it.
#[derive(Debug)]
pub struct SeriesWriter<'a> {
    buf: Option<&'a mut Vec<u8>>,
    first: bool,
    series: &'a mut usize,
    truncated: &'a mut usize,
}

impl SeriesWriter<'_> {
    /// Adds a label. The name must already be a valid label name; the value is escaped here.
    pub fn label(mut self, name: &str, value: &str) -> Self {
        if let Some(buf) = self.buf.as_deref_mut() {
            buf.push(if self.first { b'{' } else { b',' });
            self.first = false;
            buf.extend_from_slice(name.as_bytes());
            buf.extend_from_slice(b"=\"");
            if !write_escaped_label_value(buf, value) {
                *self.truncated += 1;
            }
            buf.push(b'"');
        }
        self
    }

    /// Ends the series with its value.
    pub fn finish(self, value: f64) {
        if let Some(buf) = self.buf {
            if !self.first {
                buf.push(b'}');
            }
            buf.push(b' ');
            write_sample_value(buf, value);
            buf.push(b'\n');
            *self.series += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::{FamilyDesc, MetricType};

    fn set() -> (FamilySet, Vec<FamilyId>) {
        let d = |n: &str| FamilyDesc {
            name: n.into(),
            help: String::new(),
            kind: MetricType::Gauge,
            state_label: None,
        };
        FamilySet::new(&[d("z_status"), d("a_info")]).unwrap()
    }

    #[test]
    fn series_group_by_family_in_family_order() {
        let (set, ids) = set();
        let mut r = ObjectRenderer::new(&set);
        r.series(ids[0])
            .label("type", "Ready")
            .label("status", "True")
            .finish(1.0);
        r.series(ids[1]).label("name", "a\"b").finish(1.0);
        r.series(ids[0]).finish(0.5);
        let obj = r.finish();
        assert_eq!(obj.series(), 3);
        let parts: Vec<_> = obj.parts().collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, ids[1]);
        assert_eq!(&parts[0].1[..], b"a_info{name=\"a\\\"b\"} 1\n");
        assert_eq!(
            &parts[1].1[..],
            b"z_status{type=\"Ready\",status=\"True\"} 1\nz_status 0.5\n"
        );
        assert!(r.finish().is_empty(), "finish resets");
    }

    #[test]
    fn foreign_ids_write_nothing() {
        let (set, _) = set();
        let mut r = ObjectRenderer::new(&set);
        r.series(FamilyId(9)).label("a", "b").finish(1.0);
        assert!(r.finish().is_empty());
    }
}
