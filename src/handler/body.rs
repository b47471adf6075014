//! Response bodies: HEAD bodies, length-checked origin streams, and the wrapper
//! that writes the access log line when a body is done.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::access_log::AccessRecord;
use crate::cache::LengthCheck;
use crate::metrics::SiteMetrics;
use crate::origin::{BodyStream, OriginError};
use crate::state::AppState;

/// The body of a HEAD response: announces the GET body's length, sends nothing.
pub(super) struct HeadBody(pub u64);

impl MessageBody for HeadBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.0)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(None)
    }
}

/// Passes a body on, failing if it ends before or runs past the announced
/// length ([`LengthCheck`]), so a short body is never presented as complete.
pub(super) struct LengthChecked {
    inner: BodyStream,
    check: LengthCheck,
}

impl LengthChecked {
    pub(super) fn new(inner: BodyStream, expected: u64) -> LengthChecked {
        LengthChecked {
            inner,
            check: LengthCheck::new(Some(expected)),
        }
    }
}

impl Stream for LengthChecked {
    type Item = Result<Bytes, OriginError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                Poll::Ready(Some(self.check.add(bytes.len()).map(|()| bytes)))
            }
            Poll::Ready(None) => match self.check.end() {
                Ok(_) => Poll::Ready(None),
                Err(e) => {
                    // Reported once: the stream ends after the error.
                    self.check = LengthCheck::new(None);
                    Poll::Ready(Some(Err(e)))
                }
            },
            other => other,
        }
    }
}

/// Wraps a response body: counts the bytes sent and, when the body is dropped
/// (sent, failed or abandoned), writes the metrics and the access log line.
pub(super) struct LoggedBody {
    pub inner: Option<BoxBody>,
    /// Bytes the HTTP/1 dispatcher sent from the body's file with `sendfile`
    /// instead of polling the body (`object::send_from_file`).
    pub sent_from_file: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// The site's counters (`-` when no site matched).
    pub site_metrics: Arc<SiteMetrics>,
    pub status: u16,
    /// A HEAD response: its announced length is never sent.
    pub head: bool,
    /// Body bytes sent so far.
    pub bytes: u64,
    /// `false` once the body failed or was cut short.
    pub complete: bool,
    /// The body said it had no more (a body of unknown length, sent
    /// chunked, is complete only then).
    pub ended: bool,
    /// The access log line, built only when the access log is on (its
    /// `bytes`, `complete` and `duration_ms` are filled in at the end).
    pub record: Option<AccessRecord>,
    pub started: Instant,
    pub state: Arc<AppState>,
}

impl MessageBody for LoggedBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.inner.as_ref().map_or(BodySize::None, |b| b.size())
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                self.bytes += bytes.len() as u64;
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.complete = false;
                tracing::warn!("response body failed: {e}");
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(sent) = &self.sent_from_file {
            let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
            self.state.metrics.sendfile_bytes.inc_by(sent);
            self.bytes = self.bytes.max(sent);
        }
        match (self.size(), self.head) {
            (BodySize::Sized(len), false) if self.bytes < len => self.complete = false,
            // A body of unknown length dropped before its end: the client
            // left, or the connection broke. Not for a status that has no
            // body (204, 304, 1xx), which the dispatchers never read.
            (BodySize::Stream, false)
                if !self.ended && !matches!(self.status, 100..=199 | 204 | 304) =>
            {
                self.complete = false
            }
            _ => {}
        }
        self.site_metrics
            .response(&self.state.metrics, self.status, self.bytes);
        self.site_metrics.observe_duration(self.started.elapsed());
        if let Some(mut record) = self.record.take() {
            record.bytes = self.bytes;
            record.complete = self.complete;
            record.duration_ms = self.started.elapsed();
            self.state.access_log.record(&record);
        }
    }
}

/// A piece of a response body assembled from an origin body: literal bytes
/// (multipart headers) or a byte range of the origin body.
#[derive(Debug, Clone)]
pub(super) enum Piece {
    Literal(Bytes),
    /// Inclusive byte offsets into the origin body; pieces come in ascending order.
    Range {
        start: u64,
        end: u64,
    },
}

/// Streams `pieces` out of `body`: skips the bytes between ranges, copies the bytes
/// inside them (as zero-copy slices of the origin's chunks), and stops reading the
/// origin once the last range is complete.
pub(super) fn select(body: LengthChecked, pieces: Vec<Piece>) -> BodyStream {
    struct State {
        body: LengthChecked,
        pieces: std::collections::VecDeque<Piece>,
        /// The current origin chunk and the offset of its first byte.
        chunk: Bytes,
        chunk_start: u64,
    }
    let state = State {
        body,
        pieces: pieces.into(),
        chunk: Bytes::new(),
        chunk_start: 0,
    };
    Box::pin(futures_util::stream::unfold(state, |mut s| async move {
        loop {
            match s.pieces.front().cloned()? {
                Piece::Literal(bytes) => {
                    s.pieces.pop_front();
                    return Some((Ok(bytes), s));
                }
                Piece::Range { start, end } => {
                    let chunk_end = s.chunk_start + s.chunk.len() as u64;
                    if start >= chunk_end {
                        // Need the next origin chunk.
                        s.chunk_start = chunk_end;
                        match s.body.next().await {
                            Some(Ok(bytes)) => s.chunk = bytes,
                            Some(Err(e)) => {
                                s.pieces.clear();
                                return Some((Err(e), s));
                            }
                            None => {
                                s.pieces.clear();
                                let e = OriginError::Invalid("body ended before the range".into());
                                return Some((Err(e), s));
                            }
                        }
                        continue;
                    }
                    let from = (start.max(s.chunk_start) - s.chunk_start) as usize;
                    let to = ((end + 1).min(chunk_end) - s.chunk_start) as usize;
                    let slice = s.chunk.slice(from..to);
                    let next_start = s.chunk_start + to as u64;
                    if next_start > end {
                        s.pieces.pop_front();
                    } else if let Some(Piece::Range { start, .. }) = s.pieces.front_mut() {
                        *start = next_start;
                    }
                    if slice.is_empty() {
                        continue;
                    }
                    return Some((Ok(slice), s));
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(data: &[u8], size: usize) -> LengthChecked {
        let parts: Vec<Result<Bytes, OriginError>> = data
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        LengthChecked::new(
            Box::pin(futures_util::stream::iter(parts)),
            data.len() as u64,
        )
    }

    async fn collect(stream: BodyStream) -> Result<Vec<u8>, OriginError> {
        let mut out = Vec::new();
        let mut stream = stream;
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[actix_rt::test]
    async fn ranges_are_cut_out_of_any_chunking() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for chunk_size in [1, 7, 100, 1000] {
            let pieces = vec![
                Piece::Literal(Bytes::from_static(b"<a>")),
                Piece::Range { start: 0, end: 0 },
                Piece::Literal(Bytes::from_static(b"<b>")),
                Piece::Range {
                    start: 95,
                    end: 205,
                },
                Piece::Range {
                    start: 999,
                    end: 999,
                },
                Piece::Literal(Bytes::from_static(b"<end>")),
            ];
            let got = collect(select(chunks(&data, chunk_size), pieces))
                .await
                .expect("ok");
            let mut want = b"<a>".to_vec();
            want.push(data[0]);
            want.extend_from_slice(b"<b>");
            want.extend_from_slice(&data[95..=205]);
            want.push(data[999]);
            want.extend_from_slice(b"<end>");
            assert_eq!(got, want, "chunk size {chunk_size}");
        }
    }

    #[actix_rt::test]
    async fn a_short_origin_body_fails_the_selection() {
        let data = [1u8; 10];
        let parts: Vec<Result<Bytes, OriginError>> = data
            .chunks(3)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let body = LengthChecked::new(Box::pin(futures_util::stream::iter(parts)), 20);
        let result = collect(select(body, vec![Piece::Range { start: 5, end: 15 }])).await;
        assert!(result.is_err());
    }
}
