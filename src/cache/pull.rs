//! Pulling a body into a flight: the one routine every fill uses (objects,
//! sidecars, encoding variants), and the length check every body passes.
//!
//! The body is pulled by a task of its own, so a client that goes away does
//! not stop the fill; every waiter (the leader's client included) reads it
//! from the flight as it arrives. A body that fits the memory tier is shared as
//! the chunks received; one that goes to disk only is written into its cache
//! file as it arrives and shared from there. A body longer or shorter than
//! announced fails the flight, and nothing is stored.

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};

use super::{DiskWriter, FlightGuard};
use crate::origin::{BodyStream, OriginError};

/// Counts a body's bytes against the length it announced (`None`: a body
/// being encoded now, whose length is whatever it turns out to be).
#[derive(Debug, Clone, Copy)]
pub struct LengthCheck {
    expected: Option<u64>,
    seen: u64,
}

impl LengthCheck {
    pub fn new(expected: Option<u64>) -> LengthCheck {
        LengthCheck { expected, seen: 0 }
    }

    /// `len` more bytes arrived: an error once the body runs past its length.
    pub fn add(&mut self, len: usize) -> Result<(), OriginError> {
        self.seen += len as u64;
        match self.expected {
            Some(expected) if self.seen > expected => Err(OriginError::Invalid(format!(
                "body longer than its Content-Length {expected}"
            ))),
            _ => Ok(()),
        }
    }

    /// The body ended: its length, or an error when it was cut short.
    pub fn end(&self) -> Result<u64, OriginError> {
        match self.expected {
            Some(expected) if self.seen < expected => Err(OriginError::Invalid(format!(
                "body cut short after {} of {expected} bytes",
                self.seen
            ))),
            _ => Ok(self.seen),
        }
    }
}

/// Where a pulled body is kept while it streams to the flight's followers.
pub(super) enum Sink {
    /// In memory, as the chunks received.
    Memory,
    /// In its disk-tier file, as it arrives (the flight was put in spill mode
    /// with the writer's reader before it was published).
    Disk(DiskWriter),
}

/// A body pulled whole and exactly as long as announced.
pub(super) enum Pulled {
    Memory {
        chunks: Vec<Bytes>,
        len: u64,
    },
    /// In its file, to be finished (renamed into place) by the caller.
    Disk(DiskWriter),
    /// The disk failed mid-fill (the tier is now off): every follower got
    /// the body, from memory, and there is nothing to store.
    Delivered,
}

/// Most bytes gathered from the origin for one write to a spill file.
const SPILL_BATCH: usize = 1 << 20;

/// Pulls `body` into the flight of `guard`, checking its length. Each step
/// takes what the origin has sent so far (up to [`SPILL_BATCH`]), so a slow
/// origin's bytes are not held back. On error the caller finishes the flight
/// with it; nothing was stored.
pub(super) async fn pull(
    guard: &FlightGuard,
    mut body: BodyStream,
    expected: Option<u64>,
    sink: Sink,
) -> Result<Pulled, OriginError> {
    let mut check = LengthCheck::new(expected);
    let (mut kept, mut writer) = match sink {
        Sink::Memory => (Some(Vec::new()), None),
        Sink::Disk(writer) => (None, Some(writer)),
    };
    let mut ended = false;
    while !ended {
        let mut batch: Vec<Bytes> = Vec::new();
        let mut batched = 0usize;
        let mut next = body.next().await;
        loop {
            match next {
                Some(Ok(chunk)) => {
                    check.add(chunk.len())?;
                    batched += chunk.len();
                    batch.push(chunk);
                }
                Some(Err(e)) => return Err(e),
                None => ended = true,
            }
            if ended || batched >= SPILL_BATCH {
                break;
            }
            match body.next().now_or_never() {
                Some(item) => next = item,
                None => break,
            }
        }
        writer = match writer.take() {
            Some(writer) => spill(guard, writer, batch).await?,
            None => {
                if let Some(kept) = kept.as_mut() {
                    kept.extend(batch.iter().cloned());
                }
                batch.into_iter().for_each(|c| guard.push(c));
                None
            }
        };
    }
    let len = check.end()?;
    Ok(match (kept, writer) {
        (Some(chunks), _) => Pulled::Memory { chunks, len },
        (None, Some(writer)) => Pulled::Disk(writer),
        (None, None) => Pulled::Delivered,
    })
}

/// Writes `chunks` to the spill file and tells the followers. On a write
/// error the chunks go to the followers from memory and the writer is dropped
/// (its file removed): `Ok(None)`.
async fn spill(
    guard: &FlightGuard,
    writer: DiskWriter,
    chunks: Vec<Bytes>,
) -> Result<Option<DiskWriter>, OriginError> {
    let written = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        let result = chunks.iter().try_for_each(|c| writer.append(c));
        (writer, result, chunks)
    })
    .await
    .map_err(|e| OriginError::Invalid(format!("a cache fill's disk write failed: {e}")))?;
    match written {
        (writer, Ok(()), chunks) => {
            guard.spilled(chunks.iter().map(|c| c.len() as u64).sum());
            Ok(Some(writer))
        }
        (_, Err(_), chunks) => {
            chunks.into_iter().for_each(|c| guard.push(c));
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_must_be_exactly_as_long_as_announced() {
        let mut exact = LengthCheck::new(Some(5));
        assert!(exact.add(3).is_ok());
        assert!(exact.end().is_err(), "cut short");
        assert!(exact.add(2).is_ok());
        assert_eq!(exact.end().unwrap(), 5);
        assert!(exact.add(1).is_err(), "longer than announced");
        let mut unsized_body = LengthCheck::new(None);
        assert!(unsized_body.add(1 << 20).is_ok());
        assert_eq!(unsized_body.end().unwrap(), 1 << 20);
    }
}
