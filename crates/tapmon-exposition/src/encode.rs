//! The two exposition formats and choosing between them.

use bytes::Bytes;

use crate::family::Family;

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` to send with a scrape in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    pub(crate) fn header(self, family: &Family) -> &Bytes {
        match self {
            Format::Text => &family.text_header,
            Format::OpenMetrics => &family.openmetrics_header,
        }
    }

    /// What ends a scrape in this format (OpenMetrics' `# EOF`).
    pub fn trailer(self) -> &'static [u8] {
        match self {
            Format::Text => b"",
            Format::OpenMetrics => b"# EOF\n",
        }
    }
}

/// Picks the format for an `Accept` header: OpenMetrics when the client ranks it at least as
/// high as plain text, text otherwise (and when there is no header).
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text;
    };
    let mut best_openmetrics = None::<f32>;
    let mut best_text = None::<f32>;
    for range in accept.split(',') {
        let mut params = range.split(';').map(str::trim);
        let media = params.next().unwrap_or_default().to_ascii_lowercase();
        let mut q = 1.0f32;
        let mut version = None;
        for param in params {
            if let Some((k, v)) = param.split_once('=') {
                match k.trim() {
                    "q" => q = v.trim().parse().unwrap_or(0.0),
                    "version" => version = Some(v.trim().to_owned()),
                    _ => {}
                }
            }
        }
        if q <= 0.0 {
            continue;
        }
        let slot = match media.as_str() {
            "application/openmetrics-text"
                if matches!(version.as_deref(), None | Some("1.0.0") | Some("0.0.1")) =>
            {
                &mut best_openmetrics
            }
            "text/plain" | "*/*" | "text/*" => &mut best_text,
            _ => continue,
        };
        *slot = Some(slot.map_or(q, |b| b.max(q)));
    }
    match (best_openmetrics, best_text) {
        (Some(om), Some(text)) if om >= text => Format::OpenMetrics,
        (Some(_), None) => Format::OpenMetrics,
        _ => Format::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(None), Format::Text);
        assert_eq!(negotiate(Some("text/plain")), Format::Text);
        assert_eq!(
            negotiate(Some("application/openmetrics-text")),
            Format::OpenMetrics
        );
        // What Prometheus sends by default.
        assert_eq!(
            negotiate(Some(
                "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some(
                "application/openmetrics-text;version=1.0.0;q=0.2,text/plain;version=0.0.4;q=0.9"
            )),
            Format::Text
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;version=2.0.0")),
            Format::Text
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0")),
            Format::Text
        );
    }
}
