//! Streaming encoders: a body is compressed chunk by chunk as it arrives from
//! the origin, never buffered whole.
//!
//! Flush policy: after each input chunk the bytes the encoder has produced are
//! handed on at once, and every [`FLUSH_AFTER`] bytes of input the encoder is
//! flushed (deflate sync flush; brotli `BROTLI_OPERATION_FLUSH`). Left alone,
//! an encoder holds input back to compress it better: deflate emits a block
//! every few tens of KiB, but brotli (quality 4 and up) merges input into one
//! metablock of up to 2^(window + 1) bytes, 8 MiB with [`BROTLI_WINDOW`],
//! before writing anything. A flush ends the current block but keeps the
//! window, so later input still refers back to earlier input. So every byte of
//! input can be decoded from the output at most `FLUSH_AFTER` bytes of input
//! later: a client on a cache miss never waits for the whole object. The cost
//! (table on [`FLUSH_AFTER`]): 0.1% in size for gzip and br q8, 0.7-0.9% for
//! br q10 and q11, on bodies longer than `FLUSH_AFTER` only.
//!
//! Compression is CPU work: inside a tokio runtime each step runs on the
//! blocking pool (`spawn_blocking`) so that an actix worker keeps serving
//! other connections meanwhile; outside a runtime it runs inline.

use std::io::Write;

use brotli::enc::encode::{
    BrotliEncoderOperation, BrotliEncoderParameter, BrotliEncoderStateStruct,
};
use brotli::enc::StandardAlloc;
use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use futures_util::{Stream, StreamExt};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::ContentCoding;
use crate::origin::{BodyStream, OriginError};

/// gzip level of cached variants.
///
/// Measured with flate2 1.1 (miniz_oxide) and brotli 9.1 in an optimised
/// build, fed in 16 KiB chunks as here, on four ~100 KiB files: synthetic JS,
/// rustdoc's `search.js` and CSS, an mdBook HTML page. Ratio is output over
/// input for the four together; time is CPU per MiB of input, the best of 3
/// runs on a shared 2-core machine (runs differed by up to 30%); peak heap is
/// one encoder's.
///
/// | coding      | ms/MiB | ratio | peak heap |
/// |-------------|-------:|------:|----------:|
/// | gzip 1      |    4.7 | 0.244 |   0.4 MiB |
/// | gzip 4      |   15.4 | 0.179 |   0.4 MiB |
/// | gzip 6      |   22.1 | 0.173 |   0.4 MiB |
/// | gzip 9      |   23.6 | 0.173 |   0.4 MiB |
/// | br q1 w22   |    6.4 | 0.255 |   0.2 MiB |
/// | br q4 w22   |   15.8 | 0.181 |   9.6 MiB |
/// | br q5 w22   |   24.3 | 0.164 |  10.1 MiB |
/// | br q6 w22   |   28.2 | 0.161 |  11.1 MiB |
/// | br q7 w22   |     97 | 0.160 |  17.1 MiB |
/// | br q8 w22   |     37 | 0.159 |  25.1 MiB |
/// | br q9 w22   |    246 | 0.158 |  41.7 MiB |
/// | br q10 w22  |    699 | 0.150 |  44.9 MiB |
/// | br q10 w17  |    662 | 0.150 |   6.0 MiB |
/// | br q11 w22  |   1420 | 0.146 |  48.4 MiB |
/// | br q11 w17  |   1438 | 0.146 |   9.5 MiB |
///
/// Level 9 costs what 6 costs here, so the one-off cost buys the last bit.
pub const GZIP_LEVEL: u32 = 9;

/// brotli quality of cached variants (table on [`GZIP_LEVEL`]).
///
/// A variant is compressed once and served from the cache many times, so the
/// knee of the curve is worth it: q10 is 5.7% smaller than q8 for ~0.7 s of
/// CPU per MiB, once (q9 costs 7x q8 for 0.6% in this brotli port). q11 saves
/// another 2.7% for 2-2.5x the CPU of q10, and on a cache miss the first
/// client receives the body at the encoder's pace: ~1.4 MiB/s of content at
/// q10, ~0.6 MiB/s at q11, slower than the network for large objects.
pub const BROTLI_QUALITY: u32 = 10;

/// brotli quality of an answer compressed for one client and not stored (an
/// object that may not be cached, `no-store` or `private`): paid on every
/// such answer, so the knee for speed (table on [`GZIP_LEVEL`]): q5 costs
/// a twenty-ninth of q10's CPU for output 9% larger. gzip keeps its level,
/// which costs what level 6 costs.
pub const BROTLI_QUALITY_UNSTORED: u32 = 5;
/// brotli window (log2 of bytes) when the body's length is unknown or large:
/// 4 MiB, the brotli default. On 2 MiB of HTML, 22 bits is 3.3% smaller than
/// 20 bits at q10 and q11; its cost is memory, ~55 MiB per encoder at q10
/// against ~26 MiB (the q10/q11 match finder is sized by the window, not by
/// the input). A known length shrinks the window to fit ([`Level::for_cache`]).
pub const BROTLI_WINDOW: u32 = 22;

/// The smallest window brotli allows (1 KiB).
const BROTLI_MIN_WINDOW: u32 = 10;

/// The largest brotli window an encoder at the qualities of cached variants
/// (9 and up) gets without a [`LargeWindow`]: 128 KiB, 6.0 MiB of heap at
/// q10 (table on [`GZIP_LEVEL`]), the window of a body of up to 128 KiB
/// anyway. A larger one costs up to 45 MiB of heap per encoder for the
/// encoder's life (the whole fill), so at most [`LARGE_WINDOWS`] run at once:
/// eight cold misses of large JS bundles compressed together took the RSS
/// from 37 to 259 MiB. The others get this window, which costs them a few
/// percent in size (3.3% from 22 bits to 20 on 2 MiB of HTML).
pub const SHARED_WINDOW: u32 = 17;

/// Brotli encoders with a window over [`SHARED_WINDOW`] at once.
pub const LARGE_WINDOWS: usize = 1;

/// The large windows, process-wide.
static LARGE_WINDOW_PERMITS: Semaphore = Semaphore::const_new(LARGE_WINDOWS);

/// A large brotli window, given back when dropped.
type LargeWindow = SemaphorePermit<'static>;

/// `level` as an encoder may run it now: a heavy brotli level keeps a window
/// over [`SHARED_WINDOW`] only with one of `permits`, held until the encoder
/// is dropped; without one it gets [`SHARED_WINDOW`].
fn admit(
    permits: &'static Semaphore,
    coding: ContentCoding,
    level: Level,
) -> (Level, Option<LargeWindow>) {
    let heavy =
        coding == ContentCoding::Brotli && level.quality >= 9 && level.window > SHARED_WINDOW;
    if !heavy {
        return (level, None);
    }
    match permits.try_acquire() {
        Ok(large) => (level, Some(large)),
        Err(_) => (
            Level {
                window: SHARED_WINDOW,
                ..level
            },
            None,
        ),
    }
}

/// Input between two flushes of an encoder (module doc). Output / input on
/// 2 MiB of HTML, by flush interval (a body shorter than this is never
/// flushed, so most assets pay nothing):
///
/// | coding     |  never | 1 MiB  | 256 KiB | 64 KiB |
/// |------------|-------:|-------:|--------:|-------:|
/// | gzip 9     | 0.2112 | 0.2112 |  0.2114 | 0.2115 |
/// | br q8 w22  | 0.1334 | 0.1333 |  0.1335 | 0.1340 |
/// | br q10 w22 | 0.1232 | 0.1234 |  0.1243 | 0.1263 |
/// | br q11 w22 | 0.1206 | 0.1208 |  0.1214 | 0.1228 |
pub const FLUSH_AFTER: usize = 256 * 1024;

/// How much room brotli gets for each step of output.
const BROTLI_OUTPUT_STEP: usize = 16 * 1024;

/// Encoder settings: the gzip level (0-9) or brotli quality (0-11), and the
/// brotli window in bits (10-24; gzip's window is fixed at 32 KiB). Values
/// out of range are clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub quality: u32,
    pub window: u32,
}

impl Level {
    /// The settings for a variant that will be cached: [`GZIP_LEVEL`] or
    /// [`BROTLI_QUALITY`], with a brotli window just large enough for a body of
    /// `length` bytes (less memory and set-up time for small objects, the same
    /// output size), or [`BROTLI_WINDOW`] when the length is unknown.
    pub fn for_cache(coding: ContentCoding, length: Option<u64>) -> Level {
        match coding {
            ContentCoding::Gzip => Level {
                quality: GZIP_LEVEL,
                window: 15,
            },
            ContentCoding::Brotli => Level {
                quality: BROTLI_QUALITY,
                window: length.map_or(BROTLI_WINDOW, fitted_window),
            },
        }
    }

    /// The settings for an answer compressed for itself and not stored
    /// ([`BROTLI_QUALITY_UNSTORED`]); a `length` of 0 is unknown.
    pub fn for_one_answer(coding: ContentCoding, length: u64) -> Level {
        let level = Level::for_cache(coding, (length > 0).then_some(length));
        match coding {
            ContentCoding::Gzip => level,
            ContentCoding::Brotli => Level {
                quality: BROTLI_QUALITY_UNSTORED,
                ..level
            },
        }
    }
}

/// The smallest brotli window that holds `length` bytes (a window of `w` bits
/// holds 2^w - 16 bytes, RFC 7932 section 9.1), within the allowed range.
fn fitted_window(length: u64) -> u32 {
    let bits = length
        .saturating_add(16)
        .checked_next_power_of_two()
        .map_or(u64::BITS, u64::trailing_zeros);
    bits.clamp(BROTLI_MIN_WINDOW, BROTLI_WINDOW)
}

/// An encoder failed. In practice unreachable: both encoders write to memory,
/// and brotli only reports misuse of its API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{coding} encoder failed: {reason}")]
pub struct EncodeError {
    pub coding: ContentCoding,
    pub reason: String,
}

impl EncodeError {
    fn new(coding: ContentCoding, reason: impl ToString) -> EncodeError {
        EncodeError {
            coding,
            reason: reason.to_string(),
        }
    }
}

impl From<EncodeError> for OriginError {
    /// The body type carries only origin errors; the encoder's (unreachable)
    /// failure ends the response like a broken origin body would (502).
    fn from(error: EncodeError) -> OriginError {
        OriginError::Invalid(error.to_string())
    }
}

/// Encodes an origin body as a cached variant of unknown length.
pub fn encode(body: BodyStream, coding: ContentCoding) -> BodyStream {
    Box::pin(encode_stream(body, coding, Level::for_cache(coding, None)))
}

/// Encodes an origin body of `length` bytes (`ObjectMeta::content_length`)
/// as a cached variant; a wrong length costs compression, never correctness.
pub fn encode_sized(body: BodyStream, coding: ContentCoding, length: u64) -> BodyStream {
    Box::pin(encode_stream(
        body,
        coding,
        Level::for_cache(coding, Some(length)),
    ))
}

/// Encodes an origin body of `length` bytes for one answer that is not
/// stored ([`Level::for_one_answer`]).
pub fn encode_one_answer(body: BodyStream, coding: ContentCoding, length: u64) -> BodyStream {
    Box::pin(encode_stream(
        body,
        coding,
        Level::for_one_answer(coding, length),
    ))
}

/// Encodes a stream of chunks as it arrives (flush policy in the module doc).
///
/// The output is the complete encoded body once `input` ends. An input error
/// is passed on as the last item and nothing is read after it: the output is
/// then truncated and must not be stored. Empty input chunks are skipped.
pub fn encode_stream<S, E>(
    input: S,
    coding: ContentCoding,
    level: Level,
) -> impl Stream<Item = Result<Bytes, E>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
    E: From<EncodeError> + Send + 'static,
{
    let start = Running {
        input,
        encoder: Encoder::new(coding, level),
    };
    futures_util::stream::unfold(Some(start), |state| async move {
        let item = state?.step().await;
        Some(item)
    })
    .fuse()
}

/// The state of an encoding stream that has not ended.
struct Running<S> {
    input: S,
    encoder: Encoder,
}

impl<S, E> Running<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
    E: From<EncodeError> + Send + 'static,
{
    /// Reads input until the encoder produces output, the input ends, or fails.
    async fn step(self) -> (Result<Bytes, E>, Option<Running<S>>) {
        let Running {
            mut input,
            mut encoder,
        } = self;
        let coding = encoder.coding;
        loop {
            let chunk = match input.next().await {
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => chunk,
                Some(Err(error)) => return (Err(error), None),
                None => {
                    let last = off_executor(coding, move || encoder.finish()).await;
                    return (
                        last.and_then(|last| last).map(Bytes::from).map_err(E::from),
                        None,
                    );
                }
            };
            let pushed = off_executor(coding, move || {
                let out = encoder.push(&chunk);
                (encoder, out)
            })
            .await;
            match pushed {
                Ok((back, Ok(out))) if out.is_empty() => encoder = back,
                Ok((back, Ok(out))) => {
                    return (
                        Ok(Bytes::from(out)),
                        Some(Running {
                            input,
                            encoder: back,
                        }),
                    )
                }
                Ok((_, Err(error))) | Err(error) => return (Err(error.into()), None),
            }
        }
    }
}

/// Runs CPU-bound work on tokio's blocking pool when inside a runtime, so the
/// calling worker stays responsive; inline otherwise.
async fn off_executor<T, F>(coding: ContentCoding, work: F) -> Result<T, EncodeError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime
            .spawn_blocking(work)
            .await
            .map_err(|error| EncodeError::new(coding, error)),
        Err(_) => Ok(work()),
    }
}

/// One encoder with the flush policy applied.
struct Encoder {
    coding: ContentCoding,
    state: EncoderState,
    /// Input taken since the last flush.
    unflushed_input: usize,
    /// Held for the encoder's life when its window is large.
    _large_window: Option<LargeWindow>,
}

enum EncoderState {
    /// flate2 buffers up to 32 KiB of output itself; `get_mut` takes the rest.
    Gzip(GzEncoder<Vec<u8>>),
    /// Boxed: the state struct is several KiB.
    Brotli(Box<BrotliEncoder>),
}

impl Encoder {
    fn new(coding: ContentCoding, level: Level) -> Encoder {
        let (level, large_window) = admit(&LARGE_WINDOW_PERMITS, coding, level);
        let state = match coding {
            ContentCoding::Gzip => EncoderState::Gzip(GzEncoder::new(
                Vec::new(),
                Compression::new(level.quality.min(9)),
            )),
            ContentCoding::Brotli => EncoderState::Brotli(Box::new(BrotliEncoder::new(level))),
        };
        Encoder {
            coding,
            state,
            unflushed_input: 0,
            _large_window: large_window,
        }
    }

    /// Feeds one chunk; answers the output produced so far (maybe empty).
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let coding = self.coding;
        let mut out = Vec::new();
        match &mut self.state {
            EncoderState::Gzip(gzip) => {
                gzip.write_all(chunk)
                    .map_err(|e| EncodeError::new(coding, e))?;
                out = std::mem::take(gzip.get_mut());
            }
            EncoderState::Brotli(brotli) => {
                if !brotli.run(
                    BrotliEncoderOperation::BROTLI_OPERATION_PROCESS,
                    chunk,
                    &mut out,
                ) {
                    return Err(EncodeError::new(coding, "brotli rejected the input"));
                }
            }
        }
        self.unflushed_input += chunk.len();
        if self.unflushed_input >= FLUSH_AFTER {
            self.flush(&mut out)?;
            self.unflushed_input = 0;
        }
        Ok(out)
    }

    /// Forces out everything the encoder holds, keeping its window.
    fn flush(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let coding = self.coding;
        match &mut self.state {
            EncoderState::Gzip(gzip) => {
                gzip.flush().map_err(|e| EncodeError::new(coding, e))?;
                out.append(gzip.get_mut());
            }
            EncoderState::Brotli(brotli) => {
                if !brotli.run(BrotliEncoderOperation::BROTLI_OPERATION_FLUSH, &[], out) {
                    return Err(EncodeError::new(coding, "brotli flush failed"));
                }
            }
        }
        Ok(())
    }

    /// Ends the encoded stream: the last bytes, trailer included.
    fn finish(self) -> Result<Vec<u8>, EncodeError> {
        let coding = self.coding;
        match self.state {
            EncoderState::Gzip(gzip) => gzip.finish().map_err(|e| EncodeError::new(coding, e)),
            EncoderState::Brotli(mut brotli) => {
                let mut out = Vec::new();
                if brotli.run(
                    BrotliEncoderOperation::BROTLI_OPERATION_FINISH,
                    &[],
                    &mut out,
                ) {
                    Ok(out)
                } else {
                    Err(EncodeError::new(coding, "brotli finish failed"))
                }
            }
        }
    }
}

/// brotli's streaming API with a buffer for its output.
struct BrotliEncoder {
    state: BrotliEncoderStateStruct<StandardAlloc>,
    scratch: Vec<u8>,
}

impl BrotliEncoder {
    fn new(level: Level) -> BrotliEncoder {
        let mut state = BrotliEncoderStateStruct::new(StandardAlloc::default());
        let quality = level.quality.min(11);
        let window = level.window.clamp(BROTLI_MIN_WINDOW, 24);
        state.set_parameter(BrotliEncoderParameter::BROTLI_PARAM_QUALITY, quality);
        state.set_parameter(BrotliEncoderParameter::BROTLI_PARAM_LGWIN, window);
        BrotliEncoder {
            state,
            scratch: vec![0; BROTLI_OUTPUT_STEP],
        }
    }

    /// Runs `op` until `input` is consumed and the operation is complete,
    /// appending the output to `out`; false when brotli refuses.
    fn run(&mut self, op: BrotliEncoderOperation, input: &[u8], out: &mut Vec<u8>) -> bool {
        let mut available_in = input.len();
        let mut input_offset = 0;
        loop {
            let mut available_out = self.scratch.len();
            let mut output_offset = 0;
            let ok = self.state.compress_stream(
                op,
                &mut available_in,
                input,
                &mut input_offset,
                &mut available_out,
                &mut self.scratch,
                &mut output_offset,
                &mut None,
                &mut |_, _, _, _| (),
            );
            out.extend_from_slice(&self.scratch[..output_offset]);
            if !ok {
                return false;
            }
            let done = match op {
                BrotliEncoderOperation::BROTLI_OPERATION_FINISH => self.state.is_finished(),
                _ => available_in == 0 && !self.state.has_more_output(),
            };
            if done {
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use futures_util::task::noop_waker_ref;

    use super::*;

    /// One heavy brotli encoder at a time keeps its large window; the others
    /// run with the shared one until it is given back. Light ones (gzip, q5,
    /// small bodies) are never held back.
    #[test]
    fn large_brotli_windows_are_bounded_and_given_back() {
        static BUDGET: Semaphore = Semaphore::const_new(1);
        let big = Level::for_cache(ContentCoding::Brotli, Some(4 << 20));
        assert_eq!(big.window, BROTLI_WINDOW);
        let (first, held) = admit(&BUDGET, ContentCoding::Brotli, big);
        assert_eq!(first, big);
        assert!(held.is_some());
        let (second, none) = admit(&BUDGET, ContentCoding::Brotli, big);
        assert_eq!(second.window, SHARED_WINDOW);
        assert_eq!(second.quality, BROTLI_QUALITY);
        assert!(none.is_none());
        for (coding, light) in [
            (
                ContentCoding::Gzip,
                Level::for_cache(ContentCoding::Gzip, None),
            ),
            (
                ContentCoding::Brotli,
                Level::for_one_answer(ContentCoding::Brotli, 4 << 20),
            ),
            (
                ContentCoding::Brotli,
                Level::for_cache(ContentCoding::Brotli, Some(100_000)),
            ),
        ] {
            let (admitted, large) = admit(&BUDGET, coding, light);
            assert_eq!(admitted, light);
            assert!(large.is_none());
        }
        drop(held);
        let (third, again) = admit(&BUDGET, ContentCoding::Brotli, big);
        assert_eq!(third, big);
        assert!(again.is_some());
    }

    const CODINGS: [ContentCoding; 2] = [ContentCoding::Brotli, ContentCoding::Gzip];

    /// Web-like text that does not repeat exactly: `lines` lines of JavaScript.
    fn javascript(lines: usize) -> Vec<u8> {
        let names = ["cart", "user", "order", "menu", "price", "theme", "route"];
        let mut text = String::new();
        for i in 0..lines {
            let name = names[i % names.len()];
            let value = i.wrapping_mul(2_654_435_761) % 100_003;
            text += &format!("export function {name}{i}(state) {{ return state.{name} + {value}; }} // {value:x}\n");
        }
        text.into_bytes()
    }

    fn json() -> Vec<u8> {
        let items: Vec<String> = (0..400)
            .map(|i| {
                format!(
                    r#"{{"id":{i},"name":"item {i}","tags":["a","b"],"price":{}.{:02}}}"#,
                    i * 7,
                    i % 100
                )
            })
            .collect();
        format!(r#"{{"items":[{}]}}"#, items.join(",")).into_bytes()
    }

    fn svg() -> Vec<u8> {
        let shapes: String = (0..300)
            .map(|i| {
                format!(
                    r##"<circle cx="{}" cy="{}" r="{}" fill="#{:06x}"/>"##,
                    i % 97,
                    i % 89,
                    i % 13 + 1,
                    i * 4099 % 0xffffff
                )
            })
            .collect();
        format!(r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">{shapes}</svg>"#)
            .into_bytes()
    }

    fn decode(coding: ContentCoding, encoded: &[u8]) -> Vec<u8> {
        let mut decoded = Vec::new();
        match coding {
            ContentCoding::Gzip => flate2::read::GzDecoder::new(encoded).read_to_end(&mut decoded),
            ContentCoding::Brotli => {
                brotli::Decompressor::new(encoded, 4096).read_to_end(&mut decoded)
            }
        }
        .unwrap_or_else(|e| panic!("{coding} output does not decode: {e}"));
        decoded
    }

    /// Decodes a stream cut short: whatever its complete blocks hold.
    fn decode_prefix(coding: ContentCoding, encoded: &[u8]) -> Vec<u8> {
        let mut reader: Box<dyn Read + '_> = match coding {
            ContentCoding::Gzip => Box::new(flate2::read::GzDecoder::new(encoded)),
            ContentCoding::Brotli => Box::new(brotli::Decompressor::new(encoded, 4096)),
        };
        let mut decoded = Vec::new();
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            decoded.extend_from_slice(&buf[..n]);
        }
        decoded
    }

    fn body(chunks: Vec<Result<Bytes, OriginError>>) -> BodyStream {
        Box::pin(futures_util::stream::iter(chunks))
    }

    /// Splits `data` into chunks of `size` bytes.
    fn chunked(data: &[u8], size: usize) -> BodyStream {
        body(
            data.chunks(size)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect(),
        )
    }

    async fn collect(mut stream: BodyStream) -> Result<Vec<u8>, OriginError> {
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn text_json_and_svg_round_trip_in_both_codings() {
        let cases = [
            ("JavaScript", javascript(600)),
            ("JSON", json()),
            ("SVG", svg()),
        ];
        for coding in CODINGS {
            for (name, data) in &cases {
                let encoded = collect(encode(chunked(data, 16 * 1024), coding))
                    .await
                    .unwrap();
                assert_eq!(decode(coding, &encoded), *data, "{coding} {name}");
                assert!(
                    encoded.len() < data.len() / 3,
                    "{coding} {name}: {} of {} bytes",
                    encoded.len(),
                    data.len()
                );
                let sized = collect(encode_sized(
                    chunked(data, 16 * 1024),
                    coding,
                    data.len() as u64,
                ))
                .await
                .unwrap();
                assert_eq!(decode(coding, &sized), *data, "{coding} {name}, sized");
            }
        }
    }

    #[tokio::test]
    async fn an_empty_body_round_trips() {
        for coding in CODINGS {
            for (name, input) in [
                ("no chunks", body(vec![])),
                (
                    "only empty chunks",
                    body(vec![Ok(Bytes::new()), Ok(Bytes::new())]),
                ),
            ] {
                let encoded = collect(encode(input, coding)).await.unwrap();
                assert!(
                    !encoded.is_empty(),
                    "{coding} {name}: a valid stream has a header"
                );
                assert_eq!(decode(coding, &encoded), b"", "{coding} {name}");
            }
        }
    }

    #[tokio::test]
    async fn a_body_in_many_tiny_chunks_round_trips() {
        let data = javascript(300);
        for coding in CODINGS {
            let tiny: Vec<_> = data
                .chunks(7)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let encoded = collect(encode(body(tiny), coding)).await.unwrap();
            assert_eq!(decode(coding, &encoded), data, "{coding}");
        }
    }

    #[tokio::test]
    async fn a_body_in_one_big_chunk_round_trips() {
        let data = javascript(8000);
        assert!(data.len() > 2 * FLUSH_AFTER);
        for coding in CODINGS {
            let encoded = collect(encode(chunked(&data, data.len()), coding))
                .await
                .unwrap();
            assert_eq!(decode(coding, &encoded), data, "{coding}");
        }
    }

    #[tokio::test]
    async fn a_body_longer_than_its_declared_length_still_round_trips() {
        let data = javascript(3000);
        let encoded = collect(encode_sized(
            chunked(&data, 16 * 1024),
            ContentCoding::Brotli,
            100,
        ))
        .await
        .unwrap();
        assert_eq!(decode(ContentCoding::Brotli, &encoded), data);
    }

    #[tokio::test]
    async fn an_input_error_is_passed_on_and_ends_the_stream() {
        let data = javascript(6000);
        for coding in CODINGS {
            let input = body(vec![
                Ok(Bytes::copy_from_slice(&data[..FLUSH_AFTER])),
                Err(OriginError::Timeout("body stalled".into())),
                Ok(Bytes::from_static(b"never read")),
            ]);
            let mut stream = encode(input, coding);
            let mut items = Vec::new();
            while let Some(item) = stream.next().await {
                items.push(item);
            }
            assert_eq!(
                items.last(),
                Some(&Err(OriginError::Timeout("body stalled".into()))),
                "{coding}"
            );
            assert!(
                items[..items.len() - 1].iter().all(Result::is_ok),
                "{coding}: one error, last"
            );
            assert!(stream.next().await.is_none(), "{coding}: stays ended");
        }
    }

    #[tokio::test]
    async fn output_arrives_before_the_input_ends() {
        let data = javascript(6000);
        for coding in CODINGS {
            let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, OriginError>>(64);
            let input = futures_util::stream::unfold(receiver, |mut receiver| async move {
                let chunk = receiver.recv().await?;
                Some((chunk, receiver))
            });
            let mut stream = encode(Box::pin(input), coding);
            for chunk in data[..FLUSH_AFTER].chunks(16 * 1024) {
                sender
                    .send(Ok(Bytes::copy_from_slice(chunk)))
                    .await
                    .unwrap();
            }
            // The sender stays open: the input has not ended, yet everything
            // sent so far must come out decodable.
            let mut encoded = Vec::new();
            while decode_prefix(coding, &encoded).len() < FLUSH_AFTER {
                let next = tokio::time::timeout(Duration::from_secs(60), stream.next()).await;
                let next = next.unwrap_or_else(|_| {
                    let decoded = decode_prefix(coding, &encoded).len();
                    panic!("{coding}: only {decoded} of {FLUSH_AFTER} bytes came out")
                });
                encoded.extend_from_slice(&next.expect("the stream has not ended").unwrap());
            }
            assert_eq!(
                decode_prefix(coding, &encoded),
                data[..FLUSH_AFTER],
                "{coding}"
            );
            drop(sender);
        }
    }

    #[test]
    fn without_a_runtime_the_encoder_runs_inline() {
        let data = json();
        for coding in CODINGS {
            let mut stream = encode(chunked(&data, 1000), coding);
            let mut context = Context::from_waker(noop_waker_ref());
            let mut encoded = Vec::new();
            loop {
                match stream.poll_next_unpin(&mut context) {
                    Poll::Ready(Some(chunk)) => encoded.extend_from_slice(&chunk.unwrap()),
                    Poll::Ready(None) => break,
                    Poll::Pending => panic!("{coding}: ready input must not pend"),
                }
            }
            assert_eq!(decode(coding, &encoded), data, "{coding}");
        }
    }

    #[test]
    fn the_brotli_window_fits_the_declared_length() {
        let cases = [
            (
                "an empty body gets the smallest window",
                Some(0),
                BROTLI_MIN_WINDOW,
            ),
            ("1000 bytes fit in 1 KiB", Some(1000), 10),
            ("1009 bytes need 2 KiB", Some(1009), 11),
            ("100 KiB fit in 128 KiB", Some(100 * 1024), 17),
            ("128 KiB need 256 KiB", Some(128 * 1024), 18),
            (
                "10 MiB get the largest window",
                Some(10 * 1024 * 1024),
                BROTLI_WINDOW,
            ),
            (
                "u64::MAX gets the largest window",
                Some(u64::MAX),
                BROTLI_WINDOW,
            ),
            (
                "an unknown length gets the largest window",
                None,
                BROTLI_WINDOW,
            ),
        ];
        for (name, length, window) in cases {
            let level = Level::for_cache(ContentCoding::Brotli, length);
            assert_eq!(
                level,
                Level {
                    quality: BROTLI_QUALITY,
                    window
                },
                "{name}"
            );
        }
        assert_eq!(
            Level::for_cache(ContentCoding::Gzip, Some(10)).quality,
            GZIP_LEVEL
        );
    }

    #[test]
    fn an_encoder_failure_is_a_502() {
        let error = OriginError::from(EncodeError::new(ContentCoding::Brotli, "boom"));
        assert_eq!(error.http_status(), 502);
        assert_eq!(
            error.to_string(),
            "invalid answer from the origin: br encoder failed: boom"
        );
    }
}
